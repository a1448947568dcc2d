//! Synthetic hospitals: resampled person timelines with new ids, shifted dates, and per-hospital
//! size, age mix and case mix (see the crate docs).

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Instant;

use rand::distributions::{Distribution, WeightedIndex};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

use crate::error::{io, Error, Result};
use crate::out::{copy, write_rowcounts, OutFile};
use crate::source::{load, Loaded, People, SourceFile};
use crate::template::{Mode, Template, NULL};
use crate::{id_offset, report, run_tasks, same_dir, TableSummary, Written};

/// Largest hospital [`hospitals`] draws (its plan is held in memory before writing).
pub const MAX_HOSPITAL_PERSONS: u64 = 100_000_000;
/// Largest [`HospitalOptions::shift_years`].
pub const MAX_SHIFT_YEARS: u32 = 100;

/// Options of [`hospitals`]; [`HospitalOptions::new`] gives the defaults.
#[derive(Debug, Clone)]
pub struct HospitalOptions {
    /// Source CDM CSV folder.
    pub from: PathBuf,
    /// Output folder; hospitals go to `out/hospital_1`, `out/hospital_2`, ….
    pub out: PathBuf,
    /// Number of hospitals (at least 1). Default 3.
    pub hospitals: u32,
    /// Geometric mean of the hospital sizes, in persons. Default 1,000.
    pub persons: u64,
    /// Seed of every random choice. Default 42.
    pub seed: u64,
    /// Ratio of the largest to the smallest hospital (at least 1; 1 = all of `persons`). Default 4.
    pub size_spread: f64,
    /// Marker concepts boosted per hospital (0 = same case mix everywhere). Default 3.
    pub case_mix: u32,
    /// Each copy's timeline moves by a whole number of years in `-shift_years..=shift_years` plus up
    /// to ±182 days; 0 leaves all dates as in the source. Default 5, at most [`MAX_SHIFT_YEARS`].
    pub shift_years: u32,
    /// Print a line per table written to stderr.
    pub progress: bool,
}

impl HospitalOptions {
    pub fn new(from: impl Into<PathBuf>, out: impl Into<PathBuf>) -> HospitalOptions {
        HospitalOptions {
            from: from.into(),
            out: out.into(),
            hospitals: 3,
            persons: 1000,
            seed: 42,
            size_spread: 4.0,
            case_mix: 3,
            shift_years: 5,
            progress: false,
        }
    }
}

/// A marker concept whose holders a hospital draws more often.
#[derive(Debug, Clone, PartialEq)]
pub struct CaseMixBoost {
    /// `condition_occurrence` or `drug_exposure`.
    pub table: String,
    pub concept_id: i64,
    /// From the source `concept` table, when it has the concept.
    pub concept_name: Option<String>,
    /// Weight multiplier of a source person holding the concept.
    pub factor: f64,
    /// Source persons holding the concept.
    pub source_persons: u64,
}

/// What [`hospitals`] wrote for one hospital.
#[derive(Debug, Clone)]
pub struct HospitalSummary {
    /// `hospital_1`, ….
    pub name: String,
    pub dir: PathBuf,
    /// Persons drawn (= [`hospital_sizes`]); rows of its `person.csv` if every source person has one.
    pub persons: u64,
    /// Rows of every table written.
    pub rows: u64,
    /// Rows of the person and clinical tables (without vocabulary and reference tables).
    pub clinical_rows: u64,
    pub bytes: u64,
    /// Copy `c` (0-based) added `(c + 1) * id_offset` to every id.
    pub id_offset: i64,
    /// In `[-1, 1]`: > 0 favours the young, < 0 the old.
    pub age_tilt: f64,
    /// Draw weight per birth decade (e.g. `(1950, 1.4)`), before case mix.
    pub birth_decade_weights: Vec<(i64, f64)>,
    pub case_mix: Vec<CaseMixBoost>,
    /// Tables written, sorted by name.
    pub tables: Vec<TableSummary>,
    /// Source tables not written (outside the schema and not reference data).
    pub skipped: Vec<String>,
}

/// Persons per hospital: hospital `i` of `n` (0-based) gets `round(persons * spread^(1/2 - i/(n-1)))`
/// (at least 1 when `persons > 0`): a geometric spread with geometric mean `persons`, largest first.
pub fn hospital_sizes(persons: u64, hospitals: u32, spread: f64) -> Vec<u64> {
    (0..hospitals)
        .map(|i| {
            if persons == 0 {
                return 0;
            }
            let x = if hospitals <= 1 {
                0.0
            } else {
                0.5 - i as f64 / (hospitals - 1) as f64
            };
            ((persons as f64 * spread.powf(x)).round() as u64).max(1)
        })
        .collect()
}

/// A table's rows grouped by source person: the table is reordered so that person `p`'s rows
/// are `starts[p]..starts[p + 1]` (in source order); orphan rows are left out.
struct Grouped {
    table: Template,
    starts: Vec<usize>,
    orphans: u64,
}

impl Grouped {
    fn new(t: &Template, people: &People) -> Result<Grouped> {
        if t.person_hole.is_none() {
            let col = t.spec.event.map_or("person_id", |e| e.person);
            return Err(Error::Invalid(format!(
                "{}: no {col} column",
                t.path.display()
            )));
        }
        let of: Vec<Option<u32>> = (0..t.rows).map(|r| people.of(t, r)).collect();
        let mut starts = vec![0usize; people.ids.len() + 1];
        for p in of.iter().flatten() {
            starts[*p as usize + 1] += 1;
        }
        for i in 1..starts.len() {
            starts[i] += starts[i - 1];
        }
        let mut fill = starts.clone();
        let mut order = vec![0u32; starts[people.ids.len()]];
        let mut orphans = 0;
        for (r, p) in of.iter().enumerate() {
            match p {
                Some(p) => {
                    order[fill[*p as usize]] = r as u32;
                    fill[*p as usize] += 1;
                }
                None => orphans += 1,
            }
        }
        Ok(Grouped {
            table: t.reorder(&order),
            starts,
            orphans,
        })
    }

    /// Rows of person `p` in `self.table`.
    fn of(&self, p: u32) -> std::ops::Range<usize> {
        self.starts[p as usize]..self.starts[p as usize + 1]
    }
}

/// A marker concept of the case-mix pool.
struct Marker {
    table: &'static str,
    concept: i64,
    /// Source persons holding it.
    holders: Vec<u32>,
}

const MARKER_TABLES: [&str; 2] = ["condition_occurrence", "drug_exposure"];
const MARKERS_PER_TABLE: usize = 10;

fn marker_pool(grouped: &[Grouped], n: usize) -> Vec<Marker> {
    let mut pool = Vec::new();
    for table in MARKER_TABLES {
        let Some(g) = grouped.iter().find(|g| g.table.name == table) else {
            continue;
        };
        let Some(concepts) = &g.table.concepts else {
            continue;
        };
        let mut holders: HashMap<i64, Vec<u32>> = HashMap::new();
        let mut mine = Vec::new();
        for p in 0..n as u32 {
            mine.clear();
            mine.extend(g.of(p).map(|r| concepts[r]));
            mine.sort_unstable();
            mine.dedup();
            for &c in &mine {
                if c != NULL && c != 0 {
                    holders.entry(c).or_default().push(p);
                }
            }
        }
        let mut cands: Vec<(i64, Vec<u32>)> = holders
            .into_iter()
            .filter(|(_, h)| h.len() * 100 >= n && h.len() * 2 <= n)
            .collect();
        cands.sort_by(|a, b| b.1.len().cmp(&a.1.len()).then(a.0.cmp(&b.0)));
        pool.extend(
            cands
                .into_iter()
                .take(MARKERS_PER_TABLE)
                .map(|(concept, holders)| Marker {
                    table,
                    concept,
                    holders,
                }),
        );
    }
    pool
}

/// Names of `ids` from the source `concept` table (best effort: none if it cannot be read).
fn concept_names(src: &Loaded, ids: &[i64]) -> HashMap<i64, String> {
    let mut names = HashMap::new();
    let Some((f, _)) = src.copied.iter().find(|(f, _)| f.name == "concept") else {
        return names;
    };
    let Ok(mut rdr) = csv::ReaderBuilder::new().flexible(true).from_path(&f.path) else {
        return names;
    };
    let Ok(header) = rdr.byte_headers() else {
        return names;
    };
    let col = |name: &str| {
        header
            .iter()
            .position(|h| String::from_utf8_lossy(h).trim().eq_ignore_ascii_case(name))
    };
    let (Some(id_col), Some(name_col)) = (col("concept_id"), col("concept_name")) else {
        return names;
    };
    let mut rec = csv::ByteRecord::new();
    while let Ok(true) = rdr.read_byte_record(&mut rec) {
        let id = rec
            .get(id_col)
            .and_then(|v| crate::template::parse_int(v).ok());
        if let (Some(id), Some(name)) = (id, rec.get(name_col)) {
            if ids.contains(&id) {
                names.insert(id, String::from_utf8_lossy(name).into_owned());
            }
        }
    }
    names
}

/// One hospital's draw.
struct Plan {
    name: String,
    dir: PathBuf,
    /// Source person index of each copy.
    picks: Vec<u32>,
    /// Day shift of each copy.
    shifts: Vec<i32>,
    age_tilt: f64,
    decade_weights: Vec<(i64, f64)>,
    boosts: Vec<(usize, f64)>,
}

fn plan(
    h: u32,
    size: u64,
    opts: &HospitalOptions,
    people: &People,
    pool: &[Marker],
) -> Result<Plan> {
    let mut rng = ChaCha8Rng::seed_from_u64(opts.seed);
    rng.set_stream(h as u64);
    let age_tilt: f64 = rng.gen_range(-1.0..=1.0);
    let mut decades: Vec<i64> = people
        .year_of_birth
        .iter()
        .filter(|&&y| y != NULL)
        .map(|y| y.div_euclid(10) * 10)
        .collect();
    decades.sort_unstable();
    decades.dedup();
    let z = |i: usize| {
        if decades.len() > 1 {
            2.0 * i as f64 / (decades.len() - 1) as f64 - 1.0
        } else {
            0.0
        }
    };
    let decade_weights: Vec<(i64, f64)> = decades
        .iter()
        .enumerate()
        .map(|(i, &d)| (d, 2f64.powf(age_tilt * z(i))))
        .collect();
    let mut weights: Vec<f64> = people
        .year_of_birth
        .iter()
        .map(|&y| {
            if y == NULL {
                return 1.0;
            }
            let d = y.div_euclid(10) * 10;
            decade_weights
                .binary_search_by_key(&d, |&(d, _)| d)
                .map_or(1.0, |i| decade_weights[i].1)
        })
        .collect();
    let m = (opts.case_mix as usize).min(pool.len());
    let mut boosts = Vec::new();
    for i in rand::seq::index::sample(&mut rng, pool.len(), m).into_iter() {
        let factor: f64 = rng.gen_range(2.0..4.0);
        for &p in &pool[i].holders {
            weights[p as usize] *= factor;
        }
        boosts.push((i, factor));
    }
    let (mut picks, mut shifts) = (Vec::new(), Vec::new());
    if size > 0 {
        let dist = WeightedIndex::new(&weights).map_err(|e| {
            Error::Invalid(format!("{}: cannot draw persons: {e}", opts.from.display()))
        })?;
        let max_years = opts.shift_years as i32;
        picks.reserve(size as usize);
        shifts.reserve(size as usize);
        for _ in 0..size {
            picks.push(dist.sample(&mut rng) as u32);
            shifts.push(if max_years == 0 {
                0
            } else {
                let years = rng.gen_range(-max_years..=max_years);
                let days = rng.gen_range(-182..=182);
                (years as f64 * 365.2425).round() as i32 + days
            });
        }
    }
    let name = format!("hospital_{}", h + 1);
    Ok(Plan {
        dir: opts.out.join(&name),
        name,
        picks,
        shifts,
        age_tilt,
        decade_weights,
        boosts,
    })
}

enum Task<'a> {
    Linked(&'a Plan, &'a Grouped),
    Copy(&'a Plan, &'a SourceFile, u64),
}

/// Writes `opts.hospitals` synthetic hospitals under `opts.out` (see the crate docs).
pub fn hospitals(opts: &HospitalOptions) -> Result<Vec<HospitalSummary>> {
    if opts.hospitals == 0 {
        return Err(Error::Invalid("--hospitals needs at least 1".into()));
    }
    if !(opts.size_spread.is_finite() && opts.size_spread >= 1.0) {
        return Err(Error::Invalid(format!(
            "size spread must be a number >= 1, not {}",
            opts.size_spread
        )));
    }
    if opts.shift_years > MAX_SHIFT_YEARS {
        return Err(Error::Invalid(format!(
            "shift years must be at most {MAX_SHIFT_YEARS}"
        )));
    }
    let sizes = hospital_sizes(opts.persons, opts.hospitals, opts.size_spread);
    if let Some(big) = sizes.iter().find(|&&n| n > MAX_HOSPITAL_PERSONS) {
        return Err(Error::Invalid(format!(
            "a hospital of {big} persons is too big (at most {MAX_HOSPITAL_PERSONS}; lower --persons or --size-spread)"
        )));
    }
    let t0 = Instant::now();
    let src = load(&opts.from, Mode::Shift)?;
    tracing::debug!("loaded {} in {:?}", opts.from.display(), t0.elapsed());
    let Some(person) = src.table("person") else {
        return Err(Error::Invalid(format!(
            "{}: no person table (person.csv)",
            opts.from.display()
        )));
    };
    let people = People::new(Some(person));
    if people.ids.is_empty() && opts.persons > 0 {
        return Err(Error::Invalid(format!(
            "{}: person.csv has no persons to draw from",
            person.path.display()
        )));
    }
    let grouped: Vec<Grouped> = src
        .templates
        .par_iter()
        .map(|t| Grouped::new(t, &people))
        .collect::<Result<_>>()?;
    let max_size = sizes.iter().copied().max().unwrap_or(0);
    let offset = id_offset(
        src.templates.iter().map(|t| t.id_range),
        max_size,
        &opts.from.display().to_string(),
    )?;
    tracing::debug!("grouped at {:?}", t0.elapsed());
    let pool = marker_pool(&grouped, people.ids.len());
    tracing::debug!("marker pool at {:?}", t0.elapsed());
    let plans = (0..opts.hospitals)
        .into_par_iter()
        .map(|h| plan(h, sizes[h as usize], opts, &people, &pool))
        .collect::<Result<Vec<_>>>()?;
    for p in &plans {
        std::fs::create_dir_all(&p.dir).map_err(io(&p.dir))?;
        if same_dir(&opts.from, &p.dir) {
            return Err(Error::Invalid(format!(
                "{}: the output folder is the source folder",
                p.dir.display()
            )));
        }
    }

    tracing::debug!("planned at {:?}", t0.elapsed());
    let mut tasks: Vec<(u64, Task)> = Vec::new();
    for p in &plans {
        for g in &grouped {
            let est = g.table.literal_bytes() as u64 * p.picks.len() as u64
                / people.ids.len().max(1) as u64;
            tasks.push((est, Task::Linked(p, g)));
        }
        for (f, rows) in &src.copied {
            let est = std::fs::metadata(&f.path).map_or(0, |m| m.len());
            tasks.push((est, Task::Copy(p, f, *rows)));
        }
    }
    // Largest first, so that no big table is left to the end on one core.
    tasks.sort_by_key(|(est, _)| std::cmp::Reverse(*est));
    let written = run_tasks(&tasks, |(_, task)| {
        let started = Instant::now();
        let (plan, summary) = match *task {
            Task::Linked(plan, g) => (plan, write_resampled(plan, g, offset)?),
            Task::Copy(plan, f, rows) => {
                let path = plan.dir.join(format!("{}.csv", f.name));
                let summary = TableSummary {
                    name: f.name.clone(),
                    rows,
                    bytes: copy(&f.path, &path)?,
                    path,
                    written: Written::Copied,
                    orphan_rows: 0,
                };
                (plan, summary)
            }
        };
        report(opts.progress, &summary, started.elapsed().as_secs_f64());
        Ok((plan.name.clone(), summary))
    })?;

    let marker_ids: Vec<i64> = pool.iter().map(|m| m.concept).collect();
    let names = concept_names(&src, &marker_ids);
    let mut summaries = Vec::new();
    for p in &plans {
        let mut tables: Vec<TableSummary> = written
            .iter()
            .filter(|(h, _)| *h == p.name)
            .map(|(_, t)| t.clone())
            .collect();
        tables.sort_by(|a, b| a.name.cmp(&b.name));
        let counts: Vec<(String, u64)> = tables.iter().map(|t| (t.name.clone(), t.rows)).collect();
        write_rowcounts(&p.dir, &counts)?;
        summaries.push(HospitalSummary {
            name: p.name.clone(),
            dir: p.dir.clone(),
            persons: p.picks.len() as u64,
            rows: tables.iter().map(|t| t.rows).sum(),
            clinical_rows: tables
                .iter()
                .filter(|t| t.written != Written::Copied)
                .map(|t| t.rows)
                .sum(),
            bytes: tables.iter().map(|t| t.bytes).sum(),
            id_offset: offset,
            age_tilt: p.age_tilt,
            birth_decade_weights: p.decade_weights.clone(),
            case_mix: p
                .boosts
                .iter()
                .map(|&(i, factor)| CaseMixBoost {
                    table: pool[i].table.to_string(),
                    concept_id: pool[i].concept,
                    concept_name: names.get(&pool[i].concept).cloned(),
                    factor,
                    source_persons: pool[i].holders.len() as u64,
                })
                .collect(),
            tables,
            skipped: src.skipped.clone(),
        });
    }
    Ok(summaries)
}

fn write_resampled(plan: &Plan, g: &Grouped, offset: i64) -> Result<TableSummary> {
    let t = &g.table;
    let path: PathBuf = plan.dir.join(format!("{}.csv", t.name));
    let mut f = OutFile::create(&path)?;
    f.buf.extend_from_slice(&t.header);
    let mut rows = 0u64;
    for (c, (&p, &shift)) in plan.picks.iter().zip(&plan.shifts).enumerate() {
        let off = (c as i64 + 1) * offset;
        for r in g.of(p) {
            t.write_row(r, off, shift, &mut f.buf);
            rows += 1;
        }
        f.maybe_flush()?;
    }
    Ok(TableSummary {
        name: t.name.clone(),
        rows,
        bytes: f.finish()?,
        path,
        written: Written::Resampled,
        orphan_rows: g.orphans,
    })
}
