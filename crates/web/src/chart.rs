//! Server-made SVG charts: horizontal bars (site ranking, funnel), an age pyramid and a line
//! chart (enrollment against target). Each chart is an `<svg role="img">` whose `<title>` names
//! it, and each bar or point carries its own `<title>` (label and value) for screen readers and
//! tooltips. Colours come from CSS classes in the embedded stylesheet (no inline style, so the
//! CSP holds). Labels and values arrive translated and formatted: this module knows no language.

use maud::{html, Markup};

/// One bar.
#[derive(Clone, Debug, PartialEq)]
pub struct Bar {
    /// The label (left of the bar).
    pub label: String,
    /// The value (bar length).
    pub value: f64,
    /// The value as shown (formatted per locale, with any mark).
    pub display: String,
    /// Draw it in the highlight colour.
    pub highlight: bool,
}

impl Bar {
    /// A bar.
    pub fn new(label: impl Into<String>, value: f64, display: impl Into<String>) -> Self {
        Self {
            label: label.into(),
            value,
            display: display.into(),
            highlight: false,
        }
    }
}

const WIDTH: f64 = 640.0;
const ROW: f64 = 26.0;
const LABEL_W: f64 = 200.0;
const VALUE_W: f64 = 110.0;
/// The widest label column of a bar chart.
const MAX_LABEL_W: f64 = 300.0;

fn fmt_num(x: f64) -> String {
    format!("{:.1}", if x.is_finite() { x } else { 0.0 })
}

fn clean(x: f64) -> f64 {
    if x.is_finite() && x > 0.0 {
        x
    } else {
        0.0
    }
}

/// Horizontal bars, longest = the largest value. `id` must be unique on the page.
pub fn bars(id: &str, title: &str, bars: &[Bar]) -> Markup {
    let max = bars.iter().map(|b| clean(b.value)).fold(0.0, f64::max);
    // Room right of the longest bar for the longest value text (at 12 px, about 7 px an
    // ASCII character and 12 px a wide one such as CJK punctuation), so a long value such as
    // a range is not clipped.
    let text_w = |t: &str| -> f64 {
        t.chars()
            .map(|c| if c.is_ascii() { 7.0 } else { 12.0 })
            .sum()
    };
    let longest = bars.iter().map(|b| text_w(&b.display)).fold(0.0, f64::max);
    // The label column fits the longest label (up to a limit; a longer label is cut with an
    // ellipsis, its full text in the bar's title), so no label runs off the left edge.
    let label_w = bars
        .iter()
        .map(|b| text_w(&b.label) + 16.0)
        .fold(LABEL_W, f64::max)
        .min(MAX_LABEL_W);
    let fit = |label: &str| -> String {
        if text_w(label) + 16.0 <= label_w {
            return label.to_owned();
        }
        let mut out = String::new();
        for c in label.chars() {
            if text_w(&out) + text_w(&c.to_string()) + 7.0 + 16.0 > label_w {
                break;
            }
            out.push(c);
        }
        out.push('…');
        out
    };
    let value_w = VALUE_W.max(longest + 10.0).min(WIDTH - label_w - 100.0);
    let plot = WIDTH - label_w - value_w;
    // A caption row on top (the chart's title, visible), then one row per bar.
    let height = ROW * (bars.len() as f64 + 1.0) + 10.0;
    let title_id = format!("{id}-title");
    html! {
        svg.chart.bars id=(id) role="img" aria-labelledby=(title_id) xmlns="http://www.w3.org/2000/svg"
            viewBox=(format!("0 0 {WIDTH} {}", fmt_num(height))) width=(WIDTH) height=(fmt_num(height)) {
            title id=(title_id) { (title) }
            text.caption x="10" y=(fmt_num(ROW * 0.7)) { (title) }
            @for (i, b) in bars.iter().enumerate() {
                @let y = 5.0 + ROW * (i as f64 + 1.0);
                @let w = if max > 0.0 { plot * clean(b.value) / max } else { 0.0 };
                g.bar.highlight[b.highlight] {
                    title { (b.label) ": " (b.display) }
                    text.label x=(fmt_num(label_w - 8.0)) y=(fmt_num(y + ROW * 0.65)) text-anchor="end" { (fit(&b.label)) }
                    rect x=(fmt_num(label_w)) y=(fmt_num(y + 3.0)) width=(fmt_num(w.max(1.0))) height=(fmt_num(ROW - 6.0)) rx="2" {}
                    text.value x=(fmt_num(label_w + w + 6.0)) y=(fmt_num(y + ROW * 0.65)) { (b.display) }
                }
            }
        }
    }
}

/// An attrition funnel: the steps as bars, each scaled to the first, with its share of the
/// first shown after the value (`share` formats a fraction 0..=1).
pub fn funnel(id: &str, title: &str, steps: &[Bar], share: impl Fn(f64) -> String) -> Markup {
    let first = steps.first().map(|b| clean(b.value)).unwrap_or(0.0);
    let with_share: Vec<Bar> = steps
        .iter()
        .map(|b| {
            let mut b = b.clone();
            if first > 0.0 {
                b.display = format!("{} ({})", b.display, share(clean(b.value) / first));
            }
            b
        })
        .collect();
    bars(id, title, &with_share)
}

/// One row of an age pyramid.
#[derive(Clone, Debug, PartialEq)]
pub struct PyramidRow {
    /// The band label (`40–49`).
    pub band: String,
    /// Left side value (e.g. male).
    pub left: f64,
    /// Left value as shown.
    pub left_display: String,
    /// Right side value (e.g. female).
    pub right: f64,
    /// Right value as shown.
    pub right_display: String,
}

/// An age pyramid: bands top (oldest) to bottom as given, left and right halves.
pub fn pyramid(
    id: &str,
    title: &str,
    left_name: &str,
    right_name: &str,
    rows: &[PyramidRow],
) -> Markup {
    let max = rows
        .iter()
        .flat_map(|r| [clean(r.left), clean(r.right)])
        .fold(0.0, f64::max);
    let mid = WIDTH / 2.0;
    let band_w = 70.0;
    let half = mid - band_w / 2.0 - 70.0;
    let height = ROW * (rows.len() as f64 + 1.0) + 10.0;
    let title_id = format!("{id}-title");
    html! {
        svg.chart.pyramid id=(id) role="img" aria-labelledby=(title_id) xmlns="http://www.w3.org/2000/svg"
            viewBox=(format!("0 0 {WIDTH} {}", fmt_num(height))) width=(WIDTH) height=(fmt_num(height)) {
            title id=(title_id) { (title) }
            text.legend x=(fmt_num(mid - band_w / 2.0 - 4.0)) y="16" text-anchor="end" { (left_name) }
            text.legend x=(fmt_num(mid + band_w / 2.0 + 4.0)) y="16" { (right_name) }
            @for (i, r) in rows.iter().enumerate() {
                @let y = ROW * (i as f64 + 1.0) + 5.0;
                @let lw = if max > 0.0 { half * clean(r.left) / max } else { 0.0 };
                @let rw = if max > 0.0 { half * clean(r.right) / max } else { 0.0 };
                g.row {
                    text.label x=(fmt_num(mid)) y=(fmt_num(y + ROW * 0.65)) text-anchor="middle" { (r.band) }
                    g.bar.left {
                        title { (r.band) " · " (left_name) ": " (r.left_display) }
                        rect x=(fmt_num(mid - band_w / 2.0 - lw)) y=(fmt_num(y + 3.0)) width=(fmt_num(lw.max(1.0))) height=(fmt_num(ROW - 6.0)) {}
                        text.value x=(fmt_num(mid - band_w / 2.0 - lw - 4.0)) y=(fmt_num(y + ROW * 0.65)) text-anchor="end" { (r.left_display) }
                    }
                    g.bar.right {
                        title { (r.band) " · " (right_name) ": " (r.right_display) }
                        rect x=(fmt_num(mid + band_w / 2.0)) y=(fmt_num(y + 3.0)) width=(fmt_num(rw.max(1.0))) height=(fmt_num(ROW - 6.0)) {}
                        text.value x=(fmt_num(mid + band_w / 2.0 + rw + 4.0)) y=(fmt_num(y + ROW * 0.65)) { (r.right_display) }
                    }
                }
            }
        }
    }
}

/// One line of a [`line`] chart.
#[derive(Clone, Debug, PartialEq)]
pub struct Series {
    /// Legend label.
    pub label: String,
    /// CSS class (`s0`, `s1`, `target`, ...).
    pub class: &'static str,
    /// One value per x label (`None`: no point).
    pub values: Vec<Option<f64>>,
}

/// A line chart over categorical x labels (months), y from 0 to the largest value.
pub fn line(id: &str, title: &str, x_labels: &[String], series: &[Series]) -> Markup {
    let height = 260.0;
    let (left, right, top, bottom) = (60.0, 20.0, 30.0, 40.0);
    let plot_w = WIDTH - left - right;
    let plot_h = height - top - bottom;
    let max = series
        .iter()
        .flat_map(|s| s.values.iter().flatten())
        .map(|v| clean(*v))
        .fold(0.0, f64::max)
        .max(1.0);
    let n = x_labels.len().max(1);
    let x_at = |i: usize| {
        if n == 1 {
            left + plot_w / 2.0
        } else {
            left + plot_w * i as f64 / (n - 1) as f64
        }
    };
    let y_at = |v: f64| top + plot_h * (1.0 - clean(v) / max);
    let title_id = format!("{id}-title");
    let step = (n / 8).max(1);
    html! {
        svg.chart.line id=(id) role="img" aria-labelledby=(title_id) xmlns="http://www.w3.org/2000/svg"
            viewBox=(format!("0 0 {WIDTH} {height}")) width=(WIDTH) height=(height) {
            title id=(title_id) { (title) }
            line.axis x1=(left) y1=(fmt_num(top + plot_h)) x2=(fmt_num(left + plot_w)) y2=(fmt_num(top + plot_h)) {}
            line.axis x1=(left) y1=(top) x2=(left) y2=(fmt_num(top + plot_h)) {}
            text.tick x=(fmt_num(left - 6.0)) y=(fmt_num(top + 4.0)) text-anchor="end" { (fmt_num(max).trim_end_matches(".0")) }
            text.tick x=(fmt_num(left - 6.0)) y=(fmt_num(top + plot_h + 4.0)) text-anchor="end" { "0" }
            @for (i, l) in x_labels.iter().enumerate() {
                @if i % step == 0 || i + 1 == n {
                    text.tick x=(fmt_num(x_at(i))) y=(fmt_num(height - bottom + 18.0)) text-anchor="middle" { (l) }
                }
            }
            @for (si, s) in series.iter().enumerate() {
                @let pts: Vec<String> = s.values.iter().enumerate()
                    .filter_map(|(i, v)| v.map(|v| format!("{},{}", fmt_num(x_at(i)), fmt_num(y_at(v)))))
                    .collect();
                g class=(format!("series {}", s.class)) {
                    polyline fill="none" points=(pts.join(" ")) {}
                    @for (i, v) in s.values.iter().enumerate() {
                        @if let Some(v) = v {
                            circle cx=(fmt_num(x_at(i))) cy=(fmt_num(y_at(*v))) r="3" {
                                title { (s.label) " · " (x_labels.get(i).map(String::as_str).unwrap_or("")) ": " (fmt_num(*v).trim_end_matches(".0")) }
                            }
                        }
                    }
                    rect.key x=(fmt_num(left + 10.0 + 160.0 * si as f64)) y="8" width="12" height="12" {}
                    text.legend x=(fmt_num(left + 26.0 + 160.0 * si as f64)) y="18" { (s.label) }
                }
            }
        }
    }
}

/// One row of a [`forest`] plot: a point estimate with an optional interval.
#[derive(Clone, Debug, PartialEq)]
pub struct Interval {
    /// The label (left of the plot).
    pub label: String,
    /// The estimate.
    pub point: f64,
    /// The interval's ends, if known.
    pub low: Option<f64>,
    pub high: Option<f64>,
    /// The estimate and interval as shown (right of the plot).
    pub display: String,
}

/// The x axis of a [`forest`] plot over `[left, left + width]` pixels.
#[derive(Clone, Debug, PartialEq)]
pub struct ForestAxis {
    /// Ratios (odds, hazard) on a log scale, null line at 1; else differences on a linear
    /// scale, null line at 0.
    log: bool,
    /// The axis's ends (log: their logarithms), padded.
    lo: f64,
    hi: f64,
    /// Where the ticks are, in data units.
    ticks: Vec<f64>,
    left: f64,
    width: f64,
}

/// The log axis's exponent span (powers of 2) above which it ticks at powers of 10.
const MAX_BINARY_SPAN: i32 = 6;
/// The smallest ratio a log axis reaches (and the inverse the largest).
const MIN_RATIO: f64 = 1e-4;
/// The most ticks of a log axis (more: every other power).
const MAX_LOG_TICKS: usize = 7;

impl ForestAxis {
    /// A linear axis over `values` that always includes 0 (and the band's ends), padded by 4%
    /// of its range either side; ticks at the data's ends and 0.
    pub fn linear(values: &[f64], left: f64, width: f64) -> ForestAxis {
        let (mut lo, mut hi) = values
            .iter()
            .copied()
            .filter(|x| x.is_finite())
            .chain([0.0])
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), x| {
                (l.min(x), h.max(x))
            });
        if hi - lo < 1e-12 {
            hi = lo + 1.0;
        }
        let ticks = vec![lo, 0.0, hi];
        let pad = (hi - lo) * 0.04;
        (lo, hi) = (lo - pad, hi + pad);
        ForestAxis {
            log: false,
            lo,
            hi,
            ticks,
            left,
            width,
        }
    }

    /// A log axis over the positive `values` that always includes ½ to 2 (the null line at 1
    /// in the middle of that), widened to the enclosing powers of 2 — ticks at 0.25, 0.5, 1,
    /// 2, 4 … — or, when that spans more than 2⁶, of 10 (every other power past seven ticks),
    /// padded by 4% of its log range either side; it stops at 10⁻⁴ and 10⁴. Values that are not
    /// positive are not on it.
    pub fn log(values: &[f64], left: f64, width: f64) -> ForestAxis {
        let (lo, hi) = values
            .iter()
            .copied()
            .filter(|x| x.is_finite() && *x > 0.0)
            .chain([0.5, 2.0])
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), x| {
                (l.min(x), h.max(x))
            });
        // A ratio beyond 10⁻⁴ or 10⁴ (a separated covariate) sits at the axis's end.
        let (lo, hi) = (lo.max(MIN_RATIO), hi.min(1.0 / MIN_RATIO));
        let powers = |base: f64| {
            let a = (lo.ln() / base.ln() + 1e-9).floor() as i32;
            let b = (hi.ln() / base.ln() - 1e-9).ceil() as i32;
            (a, b)
        };
        let (mut base, (mut a, mut b)) = (2.0f64, powers(2.0));
        if b - a > MAX_BINARY_SPAN {
            base = 10.0;
            (a, b) = powers(10.0);
        }
        let step = if (b - a + 1) as usize > MAX_LOG_TICKS {
            2
        } else {
            1
        };
        let ticks = (a..=b)
            .filter(|k| k.rem_euclid(step) == 0)
            .map(|k| base.powi(k))
            .collect();
        let (lo, hi) = (f64::from(a) * base.ln(), f64::from(b) * base.ln());
        let pad = (hi - lo) * 0.04;
        ForestAxis {
            log: true,
            lo: lo - pad,
            hi: hi + pad,
            ticks,
            left,
            width,
        }
    }

    /// The x position of `v`, clamped to the axis (on a log axis a value that is not positive
    /// sits at the left end).
    pub fn x(&self, v: f64) -> f64 {
        let u = if self.log {
            if v > 0.0 {
                v.ln()
            } else {
                self.lo
            }
        } else {
            v
        };
        self.left + self.width * ((u.clamp(self.lo, self.hi) - self.lo) / (self.hi - self.lo))
    }

    /// Whether `v` can be drawn (finite; positive on a log axis).
    pub fn shows(&self, v: f64) -> bool {
        v.is_finite() && (!self.log || v > 0.0)
    }

    /// The null value: 1 for ratios, 0 for differences.
    pub fn null(&self) -> f64 {
        if self.log {
            1.0
        } else {
            0.0
        }
    }

    /// The ticks, in data units.
    pub fn ticks(&self) -> &[f64] {
        &self.ticks
    }

    /// A tick's label: a ratio as its shortest decimal (0.25, 0.5, 1, 2, 10), a difference
    /// to two decimals.
    pub fn tick_label(&self, v: f64) -> String {
        if self.log {
            return format!("{v}");
        }
        let s = format!("{v:.2}");
        if s == "-0.00" {
            "0.00".to_owned()
        } else {
            s
        }
    }
}

/// A forest plot of differences: one row per estimate, a dot with its interval as whiskers on
/// a common linear x axis that always includes 0 (dashed); `band` (from, to) is shaded behind
/// the rows (e.g. |SMD| < 0.1). Standardized differences and rates (incidence per stratum) use
/// it; ratios use [`ratio_forest`].
pub fn forest(id: &str, title: &str, rows: &[Interval], band: Option<(f64, f64)>) -> Markup {
    let mut values = interval_values(rows);
    values.extend(band.into_iter().flat_map(|(a, b)| [a, b]));
    let axis = ForestAxis::linear(&values, LABEL_W, FOREST_PLOT_W);
    forest_on(id, title, rows, band, &axis)
}

/// A forest plot of ratios (odds ratios, hazard ratios) on a log x axis (see
/// [`ForestAxis::log`]), the null line at 1.
pub fn ratio_forest(id: &str, title: &str, rows: &[Interval]) -> Markup {
    let axis = ForestAxis::log(&interval_values(rows), LABEL_W, FOREST_PLOT_W);
    forest_on(id, title, rows, None, &axis)
}

/// Width of a forest plot's value column, and of its plot.
const FOREST_VALUE_W: f64 = 150.0;
const FOREST_PLOT_W: f64 = WIDTH - LABEL_W - FOREST_VALUE_W;

/// Every estimate and interval end of the rows.
fn interval_values(rows: &[Interval]) -> Vec<f64> {
    rows.iter()
        .flat_map(|r| [Some(r.point), r.low, r.high])
        .flatten()
        .collect()
}

fn forest_on(
    id: &str,
    title: &str,
    rows: &[Interval],
    band: Option<(f64, f64)>,
    axis: &ForestAxis,
) -> Markup {
    let shows = |x: f64| axis.shows(x).then_some(x);
    let (label_w, plot) = (LABEL_W, FOREST_PLOT_W);
    let height = ROW * (rows.len() as f64 + 2.0) + 10.0;
    let bottom = ROW * (rows.len() as f64 + 1.0) + 5.0;
    let title_id = format!("{id}-title");
    let null = axis.x(axis.null());
    html! {
        svg.chart.forest.log[axis.log] id=(id) role="img" aria-labelledby=(title_id) xmlns="http://www.w3.org/2000/svg"
            viewBox=(format!("0 0 {WIDTH} {}", fmt_num(height))) width=(WIDTH) height=(fmt_num(height)) {
            title id=(title_id) { (title) }
            text.caption x="10" y=(fmt_num(ROW * 0.7)) { (title) }
            @if let Some((a, b)) = band {
                rect.band x=(fmt_num(axis.x(a))) y=(fmt_num(ROW)) width=(fmt_num((axis.x(b) - axis.x(a)).max(0.0))) height=(fmt_num(bottom - ROW)) {}
            }
            line.zero x1=(fmt_num(null)) y1=(fmt_num(ROW)) x2=(fmt_num(null)) y2=(fmt_num(bottom)) {}
            line.axis x1=(fmt_num(label_w)) y1=(fmt_num(bottom)) x2=(fmt_num(label_w + plot)) y2=(fmt_num(bottom)) {}
            @for &v in axis.ticks() {
                text.tick x=(fmt_num(axis.x(v))) y=(fmt_num(bottom + 16.0)) text-anchor="middle" { (axis.tick_label(v)) }
            }
            @for (i, r) in rows.iter().enumerate() {
                @let y = ROW * (i as f64 + 1.0) + ROW / 2.0;
                g.row {
                    title { (r.label) ": " (r.display) }
                    text.label x=(fmt_num(label_w - 8.0)) y=(fmt_num(y + 4.0)) text-anchor="end" { (r.label.chars().take(30).collect::<String>()) }
                    @if let (Some(a), Some(b)) = (r.low.and_then(shows), r.high.and_then(shows)) {
                        line.whisker x1=(fmt_num(axis.x(a))) y1=(fmt_num(y)) x2=(fmt_num(axis.x(b))) y2=(fmt_num(y)) {}
                    }
                    @if shows(r.point).is_some() {
                        circle cx=(fmt_num(axis.x(r.point))) cy=(fmt_num(y)) r="4" {}
                    }
                    text.value x=(fmt_num(label_w + plot + 8.0)) y=(fmt_num(y + 4.0)) { (r.display) }
                }
            }
        }
    }
}

/// One curve of a [`km`] chart: a step function from (0, 1) with its pointwise interval.
#[derive(Clone, Debug, PartialEq)]
pub struct StepCurve {
    /// Legend label.
    pub label: String,
    /// CSS class (`s0`, `s1`).
    pub class: &'static str,
    /// (time, survival, lower, upper) at each time the curve steps, times ascending; an
    /// interval end that is not a number is drawn at the survival.
    pub points: Vec<(f64, f64, f64, f64)>,
}

/// A Kaplan–Meier chart: each curve as steps from survival 1 at time 0, its interval as a
/// shaded band of the same steps, x from 0 to the last time (labelled `x_title`), y from 0 to 1.
/// Each curve carries its label as a `<title>`; the numbers are in the page's tables.
pub fn km(id: &str, title: &str, x_title: &str, curves: &[StepCurve]) -> Markup {
    let height = 300.0;
    let (left, right, top, bottom) = (50.0, 20.0, 30.0, 45.0);
    let plot_w = WIDTH - left - right;
    let plot_h = height - top - bottom;
    let t_max = curves
        .iter()
        .flat_map(|c| c.points.iter().map(|p| clean(p.0)))
        .fold(0.0, f64::max)
        .max(1.0);
    let x_at = |t: f64| left + plot_w * clean(t).min(t_max) / t_max;
    let y_at = |v: f64| top + plot_h * (1.0 - clean(v).min(1.0));
    // The steps through (t, v) points from (0, 1) to the right end, as SVG coordinates.
    let steps = |values: &[(f64, f64)]| -> Vec<(f64, f64)> {
        let mut out = vec![(x_at(0.0), y_at(1.0))];
        let mut last = 1.0;
        for &(t, v) in values {
            out.push((x_at(t), y_at(last)));
            out.push((x_at(t), y_at(v)));
            last = v;
        }
        out.push((x_at(t_max), y_at(last)));
        out
    };
    let pts = |v: &[(f64, f64)]| -> String {
        v.iter()
            .map(|(x, y)| format!("{},{}", fmt_num(*x), fmt_num(*y)))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let or = |x: f64, s: f64| if x.is_finite() { x } else { s };
    // Per curve: the band (upper steps forward, lower steps back) and the line.
    let drawn: Vec<(String, String)> = curves
        .iter()
        .map(|c| {
            let upper: Vec<(f64, f64)> = c.points.iter().map(|p| (p.0, or(p.3, p.1))).collect();
            let lower: Vec<(f64, f64)> = c.points.iter().map(|p| (p.0, or(p.2, p.1))).collect();
            let line: Vec<(f64, f64)> = c.points.iter().map(|p| (p.0, p.1)).collect();
            let mut band = steps(&upper);
            band.extend(steps(&lower).into_iter().rev());
            (pts(&band), pts(&steps(&line)))
        })
        .collect();
    let title_id = format!("{id}-title");
    html! {
        svg.chart.km id=(id) role="img" aria-labelledby=(title_id) xmlns="http://www.w3.org/2000/svg"
            viewBox=(format!("0 0 {WIDTH} {height}")) width=(WIDTH) height=(height) {
            title id=(title_id) { (title) }
            line.axis x1=(left) y1=(fmt_num(top + plot_h)) x2=(fmt_num(left + plot_w)) y2=(fmt_num(top + plot_h)) {}
            line.axis x1=(left) y1=(top) x2=(left) y2=(fmt_num(top + plot_h)) {}
            @for v in [0.0, 0.25, 0.5, 0.75, 1.0] {
                text.tick x=(fmt_num(left - 6.0)) y=(fmt_num(y_at(v) + 4.0)) text-anchor="end" { (format!("{v:.2}")) }
            }
            @for i in 0..=4 {
                @let t = (t_max * f64::from(i) / 4.0).round();
                text.tick x=(fmt_num(x_at(t))) y=(fmt_num(top + plot_h + 16.0)) text-anchor="middle" { (t) }
            }
            text.tick x=(fmt_num(left + plot_w / 2.0)) y=(fmt_num(height - 6.0)) text-anchor="middle" { (x_title) }
            @for (i, (c, (band, line))) in curves.iter().zip(&drawn).enumerate() {
                g class=(format!("curve {}", c.class)) {
                    title { (c.label) }
                    polygon.band points=(band) {}
                    polyline points=(line) {}
                    rect.key x=(fmt_num(left + 10.0 + 200.0 * i as f64)) y="8" width="12" height="12" {}
                    text.legend x=(fmt_num(left + 26.0 + 200.0 * i as f64)) y="18" { (c.label) }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bar_labels_are_never_clipped() {
        let long = "Demo hospital_1 (1000 persons)";
        let svg = bars("b", "T", &[Bar::new(long, 10.0, "10")]).into_string();
        // The label column widens to the label: its right end (text-anchor end) leaves room.
        let x: f64 = svg
            .split("text-anchor=\"end\"")
            .next()
            .and_then(|s| s.rsplit("x=\"").next())
            .and_then(|s| s.split('"').next())
            .and_then(|s| s.parse().ok())
            .unwrap_or(0.0);
        assert!(x >= 7.0 * long.len() as f64, "{x}: {svg}");
        assert!(svg.contains(&format!(">{long}</text>")), "{svg}");
        // Too long for any column: cut with an ellipsis, the full text in the title.
        let huge = "x".repeat(80);
        let svg = bars("b", "T", &[Bar::new(huge.clone(), 10.0, "10")]).into_string();
        assert!(svg.contains("…</text>"), "{svg}");
        assert!(svg.contains(&format!("<title>{huge}: 10</title>")), "{svg}");
    }

    #[test]
    fn bars_scale_to_the_largest_and_carry_titles() {
        let svg = bars(
            "c",
            "Sites <&>",
            &[
                Bar::new("A", 100.0, "100"),
                Bar::new("B", 50.0, "50"),
                Bar::new("C", f64::NAN, "–"),
            ],
        )
        .into_string();
        assert!(
            svg.contains("<title id=\"c-title\">Sites &lt;&amp;&gt;</title>"),
            "{svg}"
        );
        // plot width 640 - 200 - 110 = 330: A full, B half.
        assert!(svg.contains("width=\"330.0\""), "{svg}");
        assert!(svg.contains("width=\"165.0\""), "{svg}");
        assert!(svg.contains("<title>B: 50</title>"), "{svg}");
        assert!(!svg.contains("NaN"), "{svg}");
        // The title is also visible, and the values are drawn after the bars.
        assert!(
            svg.contains("<text class=\"caption\" x=\"10\" y=\"18.2\">Sites &lt;&amp;&gt;</text>"),
            "{svg}"
        );
        assert!(
            svg.contains(">100</text>") && svg.contains(">50</text>"),
            "{svg}"
        );
    }

    #[test]
    fn a_long_value_leaves_room_for_itself() {
        let long = "1,150 (563–1,200)† (100%)"; // 23 ASCII x 7 + 2 wide x 12 = 185 px
        let svg = bars("c", "T", &[Bar::new("A", 100.0, long)]).into_string();
        // plot = 640 - 200 - (185 + 10) = 245; the text starts 6 px after the bar and ends inside.
        assert!(svg.contains("width=\"245.0\""), "{svg}");
        assert!(svg.contains("<text class=\"value\" x=\"451.0\""), "{svg}");
    }

    /// Inline SVG is parsed as HTML: an element written `<rect …>` without its end tag swallows
    /// what follows as its children, which browsers don't draw (the value labels vanished).
    #[test]
    fn every_shape_is_closed() {
        let rows = vec![PyramidRow {
            band: "40–49".into(),
            left: 3.0,
            left_display: "3".into(),
            right: 4.0,
            right_display: "4".into(),
        }];
        let svgs = [
            bars(
                "b",
                "B",
                &[Bar::new("A", 1.0, "1"), Bar::new("B", 2.0, "2")],
            )
            .into_string(),
            pyramid("p", "P", "M", "F", &rows).into_string(),
            line(
                "l",
                "L",
                &["Jan".into(), "Feb".into()],
                &[Series {
                    label: "S".into(),
                    class: "s0",
                    values: vec![Some(1.0), Some(2.0)],
                }],
            )
            .into_string(),
        ];
        for svg in svgs {
            for tag in ["rect", "line", "circle", "polyline"] {
                let open = svg.matches(&format!("<{tag} ")).count();
                let close = svg.matches(&format!("</{tag}>")).count();
                assert_eq!(open, close, "<{tag}> not closed: {svg}");
            }
        }
    }

    #[test]
    fn funnel_shows_share_of_the_first_step() {
        let svg = funnel(
            "f",
            "Funnel",
            &[Bar::new("All", 200.0, "200"), Bar::new("Kept", 50.0, "50")],
            |x| format!("{:.0}%", x * 100.0),
        )
        .into_string();
        assert!(svg.contains("<title>Kept: 50 (25%)</title>"), "{svg}");
        assert!(svg.contains("<title>All: 200 (100%)</title>"), "{svg}");
    }

    #[test]
    fn pyramid_and_line_render_every_point() {
        let rows = vec![
            PyramidRow {
                band: "60+".into(),
                left: 10.0,
                left_display: "10".into(),
                right: 20.0,
                right_display: "20".into(),
            },
            PyramidRow {
                band: "0–59".into(),
                left: 5.0,
                left_display: "5".into(),
                right: 0.0,
                right_display: "0".into(),
            },
        ];
        let svg = pyramid("p", "Ages", "M", "F", &rows).into_string();
        assert_eq!(svg.matches("<rect").count(), 4);
        assert!(svg.contains("<title>60+ · F: 20</title>"), "{svg}");
        let xs: Vec<String> = ["Jan", "Feb", "Mar"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let svg = line(
            "l",
            "Enrollment",
            &xs,
            &[
                Series {
                    label: "Enrolled".into(),
                    class: "s0",
                    values: vec![Some(1.0), Some(3.0), None],
                },
                Series {
                    label: "Target".into(),
                    class: "target",
                    values: vec![Some(2.0), Some(4.0), Some(6.0)],
                },
            ],
        )
        .into_string();
        assert_eq!(svg.matches("<circle").count(), 5);
        assert!(svg.contains("<title>Target · Mar: 6</title>"), "{svg}");
        // The largest value (6) is at the top of the plot (y = 30).
        assert!(svg.contains("cy=\"30.0\""), "{svg}");
    }
    #[test]
    fn forest_rows_sit_on_one_axis_with_the_band_behind() {
        let row = |label: &str, point, low, high| Interval {
            label: label.into(),
            point,
            low,
            high,
            display: format!("{point}"),
        };
        let svg = forest(
            "f",
            "SMD",
            &[
                row("a", 0.5, Some(0.25), Some(0.75)),
                row("b", -0.5, None, None),
            ],
            Some((-0.1, 0.1)),
        )
        .into_string();
        // x from -0.55 to 0.80 (the range -0.5..0.75 padded by 4%) over 290 px from x = 200:
        // 0 at 318.1, 0.5 at 425.6, -0.1 at 296.7.
        assert!(svg.contains("<line class=\"zero\" x1=\"318.1\""), "{svg}");
        assert!(svg.contains("<circle cx=\"425.6\""), "{svg}");
        assert_eq!(svg.matches("class=\"whisker\"").count(), 1, "{svg}");
        assert!(svg.contains("<rect class=\"band\" x=\"296.7\""), "{svg}");
        assert!(svg.contains("<title>b: -0.5</title>"), "{svg}");
    }

    #[test]
    fn log_axis_maps_ratios_symmetrically_with_ticks_at_powers() {
        // Ratios 0.3 to 3.5: the axis spans 0.25 to 4 (powers of 2), padded by 4% of its log
        // range (ln 16) either side, over 290 px from x = 200.
        let axis = ForestAxis::log(&[0.3, 1.2, 3.5], 200.0, 290.0);
        assert_eq!(axis.ticks(), [0.25, 0.5, 1.0, 2.0, 4.0]);
        assert_eq!(
            axis.ticks()
                .iter()
                .map(|&v| axis.tick_label(v))
                .collect::<Vec<_>>(),
            ["0.25", "0.5", "1", "2", "4"]
        );
        // 1 in the middle; each doubling the same distance (290 / 1.08 / 4 = 67.13 px).
        let step = 290.0 / 1.08 / 4.0;
        assert!((axis.x(1.0) - 345.0).abs() < 1e-9, "{}", axis.x(1.0));
        for k in -2..=2 {
            let v = 2f64.powi(k);
            assert!(
                (axis.x(v) - (345.0 + step * f64::from(k))).abs() < 1e-9,
                "{v}"
            );
        }
        assert!((axis.x(0.25) - (200.0 + 290.0 * 0.04 / 1.08)).abs() < 1e-9);
        // Clamped at the padded ends; nothing positive is off the plot, zero and below at
        // the left end and not drawn.
        assert_eq!(axis.x(1e9), 490.0);
        assert_eq!(axis.x(0.0), 200.0);
        assert!(!axis.shows(0.0) && !axis.shows(f64::NAN) && axis.shows(1e-9));
        assert_eq!(axis.null(), 1.0);
        // Ratios near 1: the axis still spans ½ to 2.
        assert_eq!(
            ForestAxis::log(&[0.97, 1.04], 0.0, 1.0).ticks(),
            [0.5, 1.0, 2.0]
        );
        // A wide range ticks at powers of 10, every other one past seven ticks.
        assert_eq!(
            ForestAxis::log(&[0.02, 30.0], 0.0, 1.0).ticks(),
            [0.01, 0.1, 1.0, 10.0, 100.0]
        );
        assert_eq!(
            ForestAxis::log(&[1e-3, 1e4], 0.0, 1.0).ticks(),
            [0.01, 1.0, 100.0, 1e4]
        );
        // Beyond 10⁻⁴ and 10⁴ (a separated covariate): the axis stops there.
        assert_eq!(
            ForestAxis::log(&[1e-300, 1e300], 0.0, 1.0).ticks(),
            [1e-4, 0.01, 1.0, 100.0, 1e4]
        );
        // The linear axis keeps its 0 and its data ends.
        let lin = ForestAxis::linear(&[0.5, -0.5, 0.75], 200.0, 290.0);
        assert_eq!(lin.ticks(), [-0.5, 0.0, 0.75]);
        assert_eq!(lin.null(), 0.0);
    }

    #[test]
    fn ratio_forest_draws_on_the_log_axis() {
        let svg = ratio_forest(
            "hr",
            "Hazard ratios",
            &[
                Interval {
                    label: "treatment".into(),
                    point: 2.0,
                    low: Some(1.0),
                    high: Some(4.0),
                    display: "2.00 (1.00–4.00)".into(),
                },
                Interval {
                    label: "bad".into(),
                    point: 0.0,
                    low: None,
                    high: None,
                    display: "—".into(),
                },
            ],
        )
        .into_string();
        // Axis ½ to 4 (3 doublings, padded by 0.12 of one either side): 1 at
        // 200 + 290 · 1.12 / 3.24 = 300.2, 2 at 200 + 290 · 2.12 / 3.24 = 389.8.
        assert!(svg.contains("class=\"chart forest log\""), "{svg}");
        assert!(svg.contains("<line class=\"zero\" x1=\"300.2\""), "{svg}");
        assert!(svg.contains("<circle cx=\"389.8\""), "{svg}");
        assert_eq!(svg.matches("<circle").count(), 1, "{svg}");
        assert!(
            svg.contains(">0.5</text>") && svg.contains(">4</text>"),
            "{svg}"
        );
    }

    #[test]
    fn km_steps_from_one_with_its_band() {
        let curve = StepCurve {
            label: "Target".into(),
            class: "s0",
            points: vec![
                (0.0, 1.0, f64::NAN, f64::NAN),
                (10.0, 0.5, 0.25, 0.75),
                (20.0, 0.25, 0.1, 0.5),
            ],
        };
        let svg = km("k", "KM", "days", &[curve]).into_string();
        // x: 50 + 570·t/20; y: 30 + 225·(1 − v). The curve: (50,30) → (50,30) (time 0, no
        // step) → (335,30) → (335,142.5) → (620,142.5) → (620,198.8) → right end (620,198.8).
        assert!(
            svg.contains("<polyline points=\"50.0,30.0 50.0,30.0 50.0,30.0 335.0,30.0 335.0,142.5 620.0,142.5 620.0,198.8 620.0,198.8\">"),
            "{svg}"
        );
        // The band: upper steps forward (0.75 at 10, 0.5 at 20), lower back (0.1 at 20 first).
        assert!(svg.contains("<polygon class=\"band\" points=\"50.0,30.0 50.0,30.0 50.0,30.0 335.0,30.0 335.0,86.2 620.0,86.2 620.0,142.5 620.0,142.5 620.0,232.5 620.0,232.5 620.0,198.8"), "{svg}");
        assert!(
            svg.contains("<title>Target</title>") && !svg.contains("NaN"),
            "{svg}"
        );
    }
}
