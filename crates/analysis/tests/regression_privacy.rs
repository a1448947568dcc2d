//! Federated logistic regression under differential privacy, in process: three sites of
//! GiBleed's size (2,700 units in all) answer every round with one vector release through the
//! site's `Discloser` (the default policy, σ = 6), exactly as a site under the default policy
//! does (`network::regression`). The fit lands within a stated tolerance of the exact fit, and a
//! differencing attack that reads one person's outcome from exact sums learns nothing from the
//! noisy ones.

use qiao_analysis::regression::private::{Privacy, DP_ROUNDS, LOGLIK_CLIP};
use qiao_analysis::regression::{fit, Guard, Model, SiteData, SiteSums, SumsSource};
use qiao_disclosure::{Discloser, Policy, Question, SiteSecret, Statistic};

fn lcg(seed: u64) -> impl FnMut() -> f64 {
    let mut s = seed;
    move || {
        s = s
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (s >> 11) as f64 / (1u64 << 53) as f64
    }
}

fn names() -> Vec<String> {
    ["treatment", "age (per 10 years)", "gender = male"]
        .map(String::from)
        .to_vec()
}

/// One site's units: treatment, age in decades, male; the outcome from a logistic model.
fn site_columns(n: usize, seed: u64) -> (Vec<Vec<f64>>, Vec<bool>) {
    let mut next = lcg(seed);
    let mut cols = vec![vec![], vec![], vec![]];
    let mut y = vec![];
    for _ in 0..n {
        let (t, a, m) = (
            (next() < 0.4) as u8 as f64,
            2.0 + next() * 7.0,
            (next() < 0.5) as u8 as f64,
        );
        let eta = -2.0 + 0.5 * t + 0.15 * a - 0.3 * m;
        y.push(next() < 1.0 / (1.0 + (-eta).exp()));
        cols[0].push(t);
        cols[1].push(a);
        cols[2].push(m);
    }
    (cols, y)
}

/// As `network::regression::privacy_of` gives it for treatment, age and gender with a
/// comparator: age clipped to 0–10 decades and centred at 5.
fn privacy() -> Privacy {
    Privacy {
        ranges: vec![(1.0, 1.0), (0.0, 1.0), (-5.0, 5.0), (0.0, 1.0)],
        centers: vec![0.0, 0.0, 5.0, 0.0],
        units_per_person: 2,
    }
}

/// The columns as a site under DP fits them: age centred at 5 decades (all ages here are in
/// the clip range already).
fn centered(cols: &[Vec<f64>]) -> Vec<Vec<f64>> {
    let mut c = cols.to_vec();
    c[1].iter_mut().for_each(|a| *a -= 5.0);
    c
}

/// A site under the default policy answering rounds as `network::regression` does.
struct NoisySite<'a> {
    data: &'a SiteData,
    discloser: Discloser,
    persons: qiao_disclosure::PersonSetDigest,
    round: u32,
}

impl NoisySite<'_> {
    fn release(&self, sums: &SiteSums, question: &Question) -> SiteSums {
        let privacy = privacy();
        let sigma = self.discloser.policy().dp.sigma;
        let stat = Statistic::vector("regression round sums", privacy.sensitivity(sigma).unwrap());
        let values = privacy.encode(sums, sigma).unwrap();
        let (noisy, _) = self
            .discloser
            .release_vector(question, &stat, &self.persons, &values)
            .unwrap();
        let (mut s, counts) = privacy.decode(Model::Logistic, &noisy, sigma).unwrap();
        s.n = counts[0].round().max(0.0) as u64;
        s.events = counts[1].round().max(0.0) as u64;
        s
    }
}

impl SumsSource for NoisySite<'_> {
    type Error = std::convert::Infallible;
    fn sums(&mut self, beta: &[f64]) -> Result<SiteSums, Self::Error> {
        let q = Question::of(format!("run 1 round {} at {beta:?}", self.round).as_bytes());
        self.round += 1;
        Ok(self.release(&self.data.sums(beta), &q))
    }
}

/// Sites under the default policy over `data` (site k with its own secret), each of `n` persons.
fn noisy_sites(data: &[SiteData], n: i64) -> Vec<NoisySite<'_>> {
    data.iter()
        .enumerate()
        .map(|(k, d)| {
            let discloser = discloser(k as u8);
            let persons = discloser.digest(0..n);
            NoisySite {
                data: d,
                discloser,
                persons,
                round: 0,
            }
        })
        .collect()
}

/// One site's data as fitted: logistic, no guard, the log-likelihood clipped.
fn site_data(names: &[String], c: &[Vec<f64>], y: &[bool]) -> SiteData {
    SiteData::new(
        Model::Logistic,
        names,
        c,
        &vec![1; y.len()],
        y,
        &Guard::none(),
    )
    .unwrap()
    .with_loglik_clip(LOGLIK_CLIP)
}

/// Three sites of 900 units (GiBleed's size in all): as given, and as a site under DP fits
/// them (age centred).
fn gibleed_sized(names: &[String]) -> (Vec<SiteData>, Vec<SiteData>) {
    let parts: Vec<_> = (0..3).map(|k| site_columns(900, 40 + k)).collect();
    let raw = parts.iter().map(|(c, y)| site_data(names, c, y)).collect();
    let data = parts
        .iter()
        .map(|(c, y)| site_data(names, &centered(c), y))
        .collect();
    (raw, data)
}

fn discloser(k: u8) -> Discloser {
    Discloser::new(
        Policy::default(),
        SiteSecret::from_bytes(&[k + 1; 32]).unwrap(),
    )
    .unwrap()
}

#[test]
fn a_fit_under_the_default_policy_is_close_to_the_exact_fit() {
    let names = names();
    let coef = Model::Logistic.coefficient_names(&names);
    let (raw, data) = gibleed_sized(&names);
    // Noise off: the exact fit (the clip changes no term at these values).
    let exact = fit(Model::Logistic, &coef, &mut raw.iter().collect::<Vec<_>>()).unwrap();
    assert!(exact.converged && exact.privacy.is_none());
    let mut sites = noisy_sites(&data, 900);
    let dp = fit(Model::Logistic, &coef, &mut sites).unwrap();
    let privacy = dp.privacy.as_ref().expect("noised");
    assert_eq!((dp.iterations, privacy.rounds), (DP_ROUNDS, DP_ROUNDS));
    assert!(!dp.converged);
    assert!((privacy.rho_per_round - 1.0 / 72.0).abs() < 1e-15);
    assert_eq!(privacy.clip[2].upper, 10.0);
    assert!(sites.iter().all(|s| s.round == DP_ROUNDS));
    // Counts: averaged over the rounds, within 4 standard deviations of the noise.
    let count_sd = privacy.count_noise_sd / f64::from(DP_ROUNDS).sqrt();
    assert!(
        (dp.n as f64 - 2700.0).abs() <= 4.0 * count_sd,
        "{} vs 2700 ± {count_sd}",
        dp.n
    );
    assert!((dp.events as f64 - exact.events as f64).abs() <= 4.0 * count_sd);
    for (a, b) in dp.coefficients.iter().zip(&exact.coefficients) {
        eprintln!(
            "{:<24} dp {:>8.4} (se {:.4})  exact {:>8.4} (se {:.4})",
            a.name, a.beta, a.se, b.beta, b.se
        );
        // The stated tolerance: within 3 of the reported standard errors (which include the
        // noise) of the exact estimate, and the reported SE at most 3 times the exact one.
        assert!(
            (a.beta - b.beta).abs() <= 3.0 * a.se,
            "{}: {} vs {} (se {})",
            a.name,
            a.beta,
            b.beta,
            a.se
        );
        assert!(a.se >= b.se * 0.9, "{a:?} {b:?}");
    }
    // The treatment's odds ratio keeps its direction and size (exact ≈ e^0.5).
    assert!(
        (dp.coefficients[1].beta - exact.coefficients[1].beta).abs() < 0.3,
        "{dp:?}"
    );
}

/// A site whose release goes through the same fixed-point encoding and decoding with the noise
/// off (σ → 0: the noise's variances scaled to nothing).
struct NoiselessSite<'a>(&'a SiteData);

impl SumsSource for NoiselessSite<'_> {
    type Error = std::convert::Infallible;
    fn sums(&mut self, beta: &[f64]) -> Result<SiteSums, Self::Error> {
        let privacy = privacy();
        let values = privacy.encode(&self.0.sums(beta), 6.0).unwrap();
        let (mut s, counts) = privacy.decode(Model::Logistic, &values, 6.0).unwrap();
        s.n = counts[0].round() as u64;
        s.events = counts[1].round() as u64;
        let noise = s.noise.as_mut().unwrap();
        noise.gradient_var *= 1e-30;
        noise.hessian_var *= 1e-30;
        noise.counts_var *= 1e-30;
        noise.loglik_var *= 1e-30;
        Ok(s)
    }
}

#[test]
fn with_the_noise_off_the_private_fit_is_the_exact_fit() {
    let names = names();
    let coef = Model::Logistic.coefficient_names(&names);
    let (raw, data) = gibleed_sized(&names);
    let exact = fit(Model::Logistic, &coef, &mut raw.iter().collect::<Vec<_>>()).unwrap();
    let mut sites: Vec<NoiselessSite> = data.iter().map(NoiselessSite).collect();
    let private = fit(Model::Logistic, &coef, &mut sites).unwrap();
    assert_eq!(private.iterations, DP_ROUNDS);
    assert_eq!((private.n, private.events), (exact.n, exact.events));
    for (a, b) in private.coefficients.iter().zip(&exact.coefficients) {
        // The fixed-point resolution (1/4096 of a block's bound) is the only difference.
        assert!((a.beta - b.beta).abs() < 1e-3, "{a:?} {b:?}");
        assert!((a.se - b.se).abs() < 1e-3 * b.se.max(0.1), "{a:?} {b:?}");
    }
}

/// The differencing attack: the sums over a site with and without one person, at β = 0, differ
/// in the intercept's gradient by `y − ½` — the person's outcome. From exact sums it is read
/// every time; from noisy ones (each release its own question, as every new job is) its
/// accuracy stays at the Gaussian-DP bound Φ(√(ρ/2)) ≈ 0.55 for the two releases it uses.
#[test]
fn one_persons_outcome_is_visible_in_exact_sums_and_masked_in_noisy_ones() {
    let names = names();
    let (cols, y) = site_columns(400, 99);
    let cols = centered(&cols);
    let d = discloser(7);
    let (mut exact_right, mut dp_right) = (0, 0);
    let trials = 200;
    for target in 0..trials {
        let keep: Vec<usize> = (0..y.len()).filter(|&i| i != target).collect();
        let without_cols: Vec<Vec<f64>> = cols
            .iter()
            .map(|c| keep.iter().map(|&i| c[i]).collect())
            .collect();
        let without_y: Vec<bool> = keep.iter().map(|&i| y[i]).collect();
        let site = |c: &[Vec<f64>], y: &[bool]| site_data(&names, c, y);
        let with = site(&cols, &y).sums(&[0.0; 4]);
        let without = site(&without_cols, &without_y).sums(&[0.0; 4]);
        let guess = |a: &SiteSums, b: &SiteSums| a.gradient[0] - b.gradient[0] > 0.0;
        exact_right += (guess(&with, &without) == y[target]) as u32;
        let noisy = |s: &SiteSums, n: usize, tag: &str| {
            NoisySite {
                data: &site(&cols, &y),
                discloser: d.clone(),
                persons: d.digest(0..n as i64),
                round: 0,
            }
            .release(
                s,
                &Question::of(format!("attack {target} {tag}").as_bytes()),
            )
        };
        let (a, b) = (
            noisy(&with, y.len(), "with"),
            noisy(&without, y.len() - 1, "without"),
        );
        dp_right += (guess(&a, &b) == y[target]) as u32;
    }
    assert_eq!(
        exact_right, trials as u32,
        "exact sums give the outcome away"
    );
    let accuracy = f64::from(dp_right) / trials as f64;
    // Φ(√(ρ/2)) with ρ = 2/72 is 0.547; 3 binomial standard deviations above it.
    assert!(
        accuracy < 0.547 + 3.0 * (0.25f64 / trials as f64).sqrt(),
        "{accuracy}"
    );
    eprintln!("differencing attack: exact 1.00, under DP {accuracy:.3}");
}

/// Too few units for the noise: the released sums do not determine the model, and the fit says
/// so instead of returning noise as estimates.
#[test]
fn a_fit_whose_information_is_below_the_noise_is_an_error() {
    let names = names();
    let coef = Model::Logistic.coefficient_names(&names);
    let parts: Vec<_> = (0..3).map(|k| site_columns(60, 70 + k)).collect();
    let data: Vec<SiteData> = parts
        .iter()
        .map(|(c, y)| site_data(&names, &centered(c), y))
        .collect();
    let mut sites = noisy_sites(&data, 60);
    let err = fit(Model::Logistic, &coef, &mut sites).unwrap_err();
    assert!(
        matches!(
            err,
            qiao_analysis::regression::FitError::NoiseDominated { .. }
        ),
        "{err}"
    );
}
