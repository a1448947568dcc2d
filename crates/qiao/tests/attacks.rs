//! The attack suite of issue 12 through real processes: `qiao hub serve` and two
//! `qiao site serve` over loopback HTTP, both serving one small synthetic CDM
//! ([`support::cdm`], fixed seed, ingested with `qiao ingest`) with planted patients whose
//! admission days the attacker knows. The attacker is one sponsor account using the hub's
//! HTTP API only.
//!
//! Site `open` runs a policy with the noise off (exact counts above the threshold); site
//! `guarded` runs the default policy of a new site. Every attack runs a fixed number of
//! seeded trials within a fixed query allowance against each site and measures the
//! attacker's accuracy: it must succeed against `open` (≥ 0.9: the test can fail) and fail
//! against `guarded` (≤ 0.6 or the bound stated with the attack). The lockout oracle (g) needs
//! a lockout to succeed against: its `open` site runs the legacy SHRINE policy instead.
//!
//! The rate limit of both sites is raised so the suite runs in minutes: a rate limit only
//! makes a patient attacker wait, it protects nothing.
//!
//! Run with `-- --nocapture` to see the measured accuracies.

mod support;

use std::path::PathBuf;
use std::sync::OnceLock;
use std::thread;
use std::time::Duration;

use qiao_hub::api::QueryRequest;
use qiao_hub::protocol::{JobId, ProjectId, QueryType, SiteId};
use qiao_hub::{report, HubClient};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::Value;
use support::cdm::{self, Admission, World};
use support::circe::{self, admitted, definition, diagnosed, diagnosed_in};
use support::{qiao, s, Network, Project, User};

/// Queries each attacking account may send.
const ALLOWANCE: usize = 120;
/// Accuracy an attack must reach against the policy with the noise off.
const SUCCEEDS: f64 = 0.9;
/// Accuracy an attack may reach against the default policy.
const FAILS: f64 = 0.6;
const OPEN: &str = "open";
const GUARDED: &str = "guarded";
const ORG: &str = "Pharma";

// ---------------------------------------------------------------------------------------------
// The laboratory: the CDM (made once per test binary) and a fresh network per attack.

struct Data {
    _dir: tempfile::TempDir,
    store: PathBuf,
    world: World,
}

fn data() -> &'static Data {
    static DATA: OnceLock<Data> = OnceLock::new();
    DATA.get_or_init(|| {
        let dir = tempfile::tempdir().expect("tempdir");
        let cdm_dir = dir.path().join("cdm");
        let world = cdm::write(&cdm_dir, 20_261_206);
        let store = dir.path().join("attack.qiao");
        qiao(&[
            "ingest",
            "--cdm",
            s(&cdm_dir),
            "--no-vocabulary",
            "--out",
            s(&store),
        ]);
        Data {
            _dir: dir,
            store,
            world,
        }
    })
}

/// The policy of the `open` site, against which an attack must succeed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Unprotected {
    /// No noise: exact counts, the threshold on the true count (`--obfuscation off`, i.e.
    /// `--release exact`), no lockout.
    NoNoise,
    /// The legacy SHRINE policy (`--obfuscation on`, i.e. `--release shrine`): obfuscation, the
    /// threshold and the lockout decided on true counts.
    LegacyLockout,
}

impl Unprotected {
    fn label(self) -> &'static str {
        match self {
            Unprotected::NoNoise => "with the noise off",
            Unprotected::LegacyLockout => "under the legacy lockout (shrine)",
        }
    }
}

/// A network for one attack: sites `open` and `guarded` on the same store, fresh ledgers.
struct Lab {
    net: Network,
    unprotected: Unprotected,
    _dir: tempfile::TempDir,
}

impl Lab {
    /// `users` are sponsors of [`ORG`], members of every project in `projects`; the `open` site
    /// runs the `unprotected` policy.
    fn start(users: &[&str], projects: &[&str], unprotected: Unprotected) -> Lab {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = data().store.clone();
        let sites = [
            (OPEN.to_owned(), store.clone()),
            (GUARDED.to_owned(), store),
        ];
        let users: Vec<User<'_>> = users
            .iter()
            .map(|id| User {
                id,
                institution: ORG,
            })
            .collect();
        let member_ids: Vec<&str> = users.iter().map(|u| u.id).collect();
        let projects: Vec<Project<'_>> = projects
            .iter()
            .map(|id| Project {
                id,
                members: &member_ids,
            })
            .collect();
        // The `open` site runs without noise, which no alliance floor on the loss per release
        // allows: this hub states none (the `guarded` site's default policy is above the
        // default floors anyway, so they change nothing for it).
        let net = support::network(
            dir.path(),
            &sites,
            &users,
            &projects,
            Some(2026),
            &["--floor-max-rho-per-release", "none"],
        );
        match unprotected {
            Unprotected::NoNoise => {
                support::policy(
                    &net,
                    0,
                    &["--obfuscation", "off", "--rate-limit", "1000000"],
                );
                no_lockout(&net.sites[0].data);
            }
            Unprotected::LegacyLockout => {
                support::policy(&net, 0, &["--obfuscation", "on", "--rate-limit", "1000000"]);
            }
        }
        // The guarded site: the default policy.
        support::policy(&net, 1, &["--rate-limit", "1000000"]);
        Lab {
            net,
            unprotected,
            _dir: dir,
        }
    }

    fn oracle(&self, user: &str, project: &str, site: &str) -> Oracle {
        Oracle {
            client: support::client(&self.net, user),
            project: ProjectId::new(project).expect("project id"),
            site: SiteId::new(site).expect("site id"),
            used: 0,
            answered: 0,
        }
    }
}

/// Turns the lockout on repeated true counts off (edits the site's policy file: there is no
/// flag for it).
fn no_lockout(site_data: &std::path::Path) {
    let path = site_data.join("policy.json");
    let mut p: Value =
        serde_json::from_str(&qiao(&["site", "policy", "show", "--data", s(site_data)]))
            .expect("policy JSON");
    if p["lockout"].is_object() {
        p["lockout"]["max_same_result"] = Value::from(u32::MAX);
    }
    std::fs::write(&path, serde_json::to_string_pretty(&p).expect("JSON")).expect("policy.json");
}

// ---------------------------------------------------------------------------------------------
// The attacker's view: one site's released funnel, or its refusal.

/// One released number as the attacker reads it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Shown {
    /// A number (the point value, whatever the rule that made it).
    Value(u64),
    /// Withheld ("< T", "suppressed", …), with the threshold if stated.
    Withheld(Option<u64>),
}

impl Shown {
    fn parse(v: &Value) -> Shown {
        let t = v.as_str().unwrap_or_default();
        let digits: String = t.chars().take_while(char::is_ascii_digit).collect();
        if let Ok(n) = digits.parse() {
            return Shown::Value(n);
        }
        let threshold = t
            .strip_prefix("< ")
            .and_then(|r| r.split_whitespace().next())
            .and_then(|n| n.parse().ok());
        Shown::Withheld(threshold)
    }

    fn value(self) -> Option<u64> {
        match self {
            Shown::Value(v) => Some(v),
            Shown::Withheld(_) => None,
        }
    }
}

/// What one query told the attacker.
#[derive(Clone, Debug)]
struct Answer {
    /// The released funnel, or `None` if the site refused or failed.
    funnel: Option<Funnel>,
}

#[derive(Clone, Debug)]
struct Funnel {
    entries: Shown,
    subjects: Shown,
    /// Persons remaining after each inclusion rule.
    rules: Vec<Shown>,
}

impl Answer {
    fn of(site: &Value) -> Answer {
        let status = site["status"].as_str().unwrap_or_default();
        let funnel = (status == "done").then(|| Funnel {
            entries: Shown::parse(&site["entries"]),
            subjects: Shown::parse(&site["subjects"]),
            rules: site["rules"]
                .as_array()
                .map(|r| r.iter().map(|x| Shown::parse(&x["persons"])).collect())
                .unwrap_or_default(),
        });
        Answer { funnel }
    }

    fn subjects(&self) -> Option<Shown> {
        self.funnel.as_ref().map(|f| f.subjects)
    }

    fn threshold(&self) -> Option<u64> {
        let f = self.funnel.as_ref()?;
        [f.entries, f.subjects]
            .into_iter()
            .chain(f.rules.iter().copied())
            .find_map(|s| match s {
                Shown::Withheld(t) => t,
                Shown::Value(_) => None,
            })
    }
}

/// One attacking account asking one site under one project through the hub's API.
struct Oracle {
    client: HubClient,
    project: ProjectId,
    site: SiteId,
    used: usize,
    /// Queries the site answered (not refused).
    answered: usize,
}

impl Oracle {
    /// Sends every definition (one cohort-count job each, all submitted before waiting) and
    /// returns the site's answers in order.
    fn ask(&mut self, definitions: Vec<Value>) -> Vec<Answer> {
        self.used += definitions.len();
        assert!(
            self.used <= ALLOWANCE,
            "the attack exceeds its allowance of {ALLOWANCE} queries"
        );
        let jobs: Vec<JobId> = definitions
            .into_iter()
            .map(|definition| {
                let req = QueryRequest {
                    query: QueryType::CohortCount,
                    definition,
                    sites: Some(vec![self.site.clone()]),
                };
                self.client
                    .submit_query(&self.project, &req)
                    .unwrap_or_else(|e| panic!("submitting a query: {e}"))
                    .job_id
            })
            .collect();
        let answers: Vec<Answer> = jobs
            .iter()
            .map(|id| {
                let view = self
                    .client
                    .wait_job(id, Duration::from_secs(120))
                    .unwrap_or_else(|e| panic!("job {id}: {e}"));
                assert!(view.complete, "job {id} not answered in time");
                let v = report::to_json(&view);
                Answer::of(&v["sites"][0])
            })
            .collect();
        self.answered += answers.iter().filter(|a| a.funnel.is_some()).count();
        answers
    }

    fn ask_one(&mut self, definition: Value) -> Answer {
        self.ask(vec![definition]).remove(0)
    }
}

// ---------------------------------------------------------------------------------------------
// Measuring.

/// What an attack achieved against one site.
#[derive(Clone, Copy, Debug)]
struct Outcome {
    /// Right guesses (½ for a trial without information).
    correct: f64,
    trials: usize,
    /// Queries sent per attacking account (at most).
    queries: usize,
    /// Queries sent in all, and how many of them were answered (not refused).
    sent: usize,
    answered: usize,
}

impl Outcome {
    fn accuracy(&self) -> f64 {
        self.correct / self.trials as f64
    }
}

/// An attack's outcome against both sites.
#[derive(Clone, Copy, Debug)]
struct Both {
    open: Outcome,
    guarded: Outcome,
    /// The policy of the open site, in words.
    unprotected: &'static str,
}

/// Runs `attack(site, rng)` against both sites at once (two threads), with the same seed.
fn against_both(
    name: &str,
    lab: &Lab,
    attack: impl Fn(&str, &mut ChaCha8Rng) -> Outcome + Sync,
) -> Both {
    let seed = 12;
    let unprotected = lab.unprotected.label();
    let (open, guarded) = thread::scope(|sc| {
        let a = sc.spawn(|| attack(OPEN, &mut ChaCha8Rng::seed_from_u64(seed)));
        let b = sc.spawn(|| attack(GUARDED, &mut ChaCha8Rng::seed_from_u64(seed)));
        (
            a.join().expect("attack on the open site"),
            b.join().expect("attack on the guarded site"),
        )
    });
    println!(
        "attack {name}: accuracy {:.2} {unprotected}, {:.2} under the default policy \
         ({} trials, {} queries per account, {} in all; answered {} {unprotected}, {} under \
         the default policy)",
        open.accuracy(),
        guarded.accuracy(),
        open.trials,
        open.queries,
        open.sent,
        open.answered,
        guarded.answered
    );
    Both {
        open,
        guarded,
        unprotected,
    }
}

fn assert_succeeds(name: &str, b: &Both) {
    assert!(
        b.open.accuracy() >= SUCCEEDS,
        "{name} must succeed {}: {b:?}",
        b.unprotected
    );
}

fn assert_fails(name: &str, b: &Both, bound: f64) {
    assert!(
        b.guarded.accuracy() <= bound,
        "{name} succeeds under the default policy: {b:?}"
    );
}

/// Days of 2021 the targets are admitted on: windows of ± [`RADIUS`] days stay in 2021.
const TARGET_DAYS: (i32, i32) = (18_668, 18_951);
/// Smallest half-width of the windows around a target's day.
const RADIUS: i32 = 40;

/// `n` targets among the 2021 admissions, members and non-members alternating (so that a
/// constant guess scores 0.5 on every run of consecutive trials, such as the trials left
/// after a budget runs out).
fn balanced_targets(rng: &mut ChaCha8Rng, n: usize) -> Vec<Admission> {
    let w = &data().world;
    let pick = |member: bool, rng: &mut ChaCha8Rng| -> Vec<Admission> {
        let mut v: Vec<Admission> = w
            .admissions
            .iter()
            .filter(|a| a.member == member && TARGET_DAYS.0 <= a.day && a.day <= TARGET_DAYS.1)
            .cloned()
            .collect();
        v.shuffle(rng);
        v.truncate(n / 2);
        v
    };
    let members = pick(true, rng);
    let others = pick(false, rng);
    let members_first = rng.gen_bool(0.5);
    members
        .into_iter()
        .zip(others)
        .flat_map(|(m, o)| if members_first { [m, o] } else { [o, m] })
        .collect()
}

/// Two attackers' membership decisions from the differences (with − without the target) they
/// saw: member if the mean difference is at least ½ (averages noise out); member if any
/// difference is not 0 (noise keyed on the person set repeats exactly when the target is
/// not in the set). Without any difference, no decision.
fn decide(diffs: &[i64]) -> [Option<bool>; 2] {
    if diffs.is_empty() {
        return [None; 2];
    }
    [
        Some(2 * diffs.iter().sum::<i64>() >= diffs.len() as i64),
        Some(diffs.iter().any(|&d| d != 0)),
    ]
}

/// Whether a membership decision is right; `None` if the attacker learnt nothing (refused).
fn judge<const N: usize>(decisions: [Option<bool>; N], member: bool) -> [Option<bool>; N] {
    decisions.map(|d| d.map(|m| m == member))
}

/// Scores the guesses of an attack, one per trial and attacker (the best attacker counts):
/// right 1, wrong 0, no information ½ (what a coin flip scores on average: a yes/no trial the
/// site refused to answer tells the attacker nothing). The accounts sent at most `queries`
/// each, `sent` in all, of which `answered` were answered.
fn score<const N: usize>(
    guesses: impl IntoIterator<Item = [Option<bool>; N]>,
    queries: usize,
    sent: usize,
    answered: usize,
) -> Outcome {
    let mut correct = [0.0; N];
    let mut trials = 0;
    for g in guesses {
        trials += 1;
        for (c, right) in correct.iter_mut().zip(g) {
            *c += right.map_or(0.5, f64::from);
        }
    }
    Outcome {
        correct: correct.into_iter().fold(0.0, f64::max),
        trials,
        queries,
        sent,
        answered,
    }
}

/// The two tests of an attack: it succeeds against the unprotected policy (`open`), and stays
/// within `bound` under the default policy (`guarded`).
macro_rules! attack_tests {
    ($attack:ident, $name:literal, $bound:expr, $open:ident, $guarded:ident) => {
        #[test]
        fn $open() {
            assert_succeeds($name, $attack());
        }

        #[test]
        fn $guarded() {
            assert_fails($name, $attack(), $bound);
        }
    };
}

// ---------------------------------------------------------------------------------------------
// (a) Tracker padding: the exact count of a small group ("< 10") from where the answer flips
// when k trackers (persons admitted on days the attacker knows) are added to the cohort.

fn tracker_padding() -> &'static Both {
    static R: OnceLock<Both> = OnceLock::new();
    R.get_or_init(|| {
        let lab = Lab::start(&["sponsor"], &["p1"], Unprotected::NoNoise);
        let w = &data().world;
        against_both("(a) tracker padding", &lab, |site, _rng| {
            let mut o = lab.oracle("sponsor", "p1", site);
            let mut guesses = Vec::new();
            for g in &w.suppressed {
                let defs = (0..=10)
                    .map(|k| {
                        let mut primary = vec![diagnosed(g.first, g.last)];
                        primary.extend(w.trackers[..k].iter().map(|t| admitted(t.day, t.day)));
                        definition(primary, vec![], None)
                    })
                    .collect();
                let answers = o.ask(defs);
                let threshold = answers.iter().find_map(Answer::threshold).unwrap_or(10);
                // Smallest padding released: the group has threshold − k persons.
                let flip = answers
                    .iter()
                    .position(|a| matches!(a.subjects(), Some(Shown::Value(_))));
                let by_flip = flip.map_or(0, |k| threshold.saturating_sub(k as u64));
                // Or: every released value less its padding estimates the group (averaged).
                let padded: Vec<i64> = answers
                    .iter()
                    .enumerate()
                    .filter_map(|(k, a)| Some(a.subjects()?.value()? as i64 - k as i64))
                    .collect();
                let by_values = if padded.is_empty() {
                    0
                } else {
                    let mean = padded.iter().sum::<i64>() as f64 / padded.len() as f64;
                    mean.round().max(0.0) as u64
                };
                guesses.push([Some(by_flip == g.count), Some(by_values == g.count)]);
            }
            score(guesses, o.used, o.used, o.answered)
        })
    })
}

attack_tests!(
    tracker_padding,
    "(a) tracker padding",
    FAILS,
    a_tracker_padding_recovers_a_suppressed_count_with_the_noise_off,
    a_tracker_padding_fails_under_the_default_policy
);

// ---------------------------------------------------------------------------------------------
// (b) Membership of a named patient, whose admission day the attacker knows.

/// Diagnosed persons admitted within `r` days of `day`: with the day, and without it.
fn window_pair(day: i32, r: i32) -> (Value, Value) {
    (
        diagnosed_in(&[(day - r, day + r)]),
        diagnosed_in(&[(day - r, day - 1), (day + 1, day + r)]),
    )
}

fn pair_differencing() -> &'static Both {
    static R: OnceLock<Both> = OnceLock::new();
    R.get_or_init(|| {
        let lab = Lab::start(&["sponsor"], &["p1"], Unprotected::NoNoise);
        against_both("(b) pair differencing", &lab, |site, rng| {
            let mut o = lab.oracle("sponsor", "p1", site);
            let targets = balanced_targets(rng, 14);
            let pairs = ALLOWANCE / 2 / targets.len();
            let mut defs = Vec::new();
            for t in &targets {
                for j in 0..pairs as i32 {
                    let (with, without) = window_pair(t.day, RADIUS + 4 * j);
                    defs.extend([with, without]);
                }
            }
            let answers = o.ask(defs);
            let guesses = targets.iter().zip(answers.chunks(2 * pairs)).map(|(t, a)| {
                let diffs: Vec<i64> = a
                    .chunks(2)
                    .filter_map(|p| {
                        let with = p[0].subjects()?.value()?;
                        let without = p[1].subjects()?.value()?;
                        Some(with as i64 - without as i64)
                    })
                    .collect();
                judge(decide(&diffs), t.member)
            });
            score(guesses.collect::<Vec<_>>(), o.used, o.used, o.answered)
        })
    })
}

attack_tests!(
    pair_differencing,
    "(b) pair differencing",
    FAILS,
    b_pair_differencing_decides_membership_with_the_noise_off,
    b_pair_differencing_fails_under_the_default_policy
);

/// The diagnosed persons admitted on the `n` days nearest to `day`, `day` itself excluded,
/// with `day` included if `with`.
fn nearest_days(day: i32, n: i32, with: bool) -> Value {
    let (before, after) = ((n + 1) / 2, n / 2);
    let mut ranges = Vec::new();
    if before > 0 {
        ranges.push((day - before, day - 1));
    }
    if with {
        ranges.push((day, day));
    }
    if after > 0 {
        ranges.push((day + 1, day + after));
    }
    diagnosed_in(&ranges)
}

fn binary_search() -> &'static Both {
    static R: OnceLock<Both> = OnceLock::new();
    R.get_or_init(|| {
        let lab = Lab::start(&["sponsor"], &["p1"], Unprotected::NoNoise);
        against_both("(b) binary search over a date window", &lab, |site, rng| {
            let mut o = lab.oracle("sponsor", "p1", site);
            let targets = balanced_targets(rng, 12);
            // The smallest window (days around the target's, without it) that is released
            // has one person more than the largest withheld one: just below the threshold.
            let mut bounds: Vec<(i32, i32)> = vec![(0, 400); targets.len()];
            while bounds.iter().any(|(lo, hi)| hi - lo > 1) {
                let (idx, defs): (Vec<usize>, Vec<Value>) = bounds
                    .iter()
                    .enumerate()
                    .filter(|(_, (lo, hi))| hi - lo > 1)
                    .map(|(i, (lo, hi))| (i, nearest_days(targets[i].day, (lo + hi) / 2, false)))
                    .unzip();
                for (i, a) in idx.into_iter().zip(o.ask(defs)) {
                    let (lo, hi) = bounds[i];
                    let mid = (lo + hi) / 2;
                    bounds[i] = if matches!(a.subjects(), Some(Shown::Value(_))) {
                        (lo, mid)
                    } else {
                        (mid, hi)
                    };
                }
            }
            // One more person tips the largest withheld window over: the target.
            let defs = targets
                .iter()
                .zip(&bounds)
                .map(|(t, (lo, _))| nearest_days(t.day, *lo, true))
                .collect();
            let answers = o.ask(defs);
            let guesses = targets.iter().zip(answers).map(|(t, a)| {
                // Refused: nothing learnt.
                let member = a.subjects().map(|s| matches!(s, Shown::Value(_)));
                judge([member], t.member)
            });
            score(guesses.collect::<Vec<_>>(), o.used, o.used, o.answered)
        })
    })
}

attack_tests!(
    binary_search,
    "(b) binary search",
    FAILS,
    b_binary_search_decides_membership_with_the_noise_off,
    b_binary_search_fails_under_the_default_policy
);

// ---------------------------------------------------------------------------------------------
// (c) Funnel-line differences: one query whose rule 2 excludes the target's admission day;
// the two funnel lines differ by the target.

fn funnel_lines() -> &'static Both {
    static R: OnceLock<Both> = OnceLock::new();
    R.get_or_init(|| {
        let lab = Lab::start(&["sponsor"], &["p1"], Unprotected::NoNoise);
        against_both("(c) funnel-line differences", &lab, |site, rng| {
            let mut o = lab.oracle("sponsor", "p1", site);
            let targets = balanced_targets(rng, 30);
            let per = ALLOWANCE / targets.len();
            let mut defs = Vec::new();
            for t in &targets {
                for j in 0..per as i32 {
                    let r = RADIUS + 4 * j;
                    defs.push(definition(
                        vec![diagnosed(t.day - r, t.day + r)],
                        vec![circe::rule_any_age(), circe::rule_not_diagnosed_on(t.day)],
                        None,
                    ));
                }
            }
            let answers = o.ask(defs);
            let guesses = targets.iter().zip(answers.chunks(per)).map(|(t, a)| {
                let diffs: Vec<i64> = a
                    .iter()
                    .filter_map(|a| {
                        let f = a.funnel.as_ref()?;
                        let one = f.rules.first()?.value()?;
                        let two = f.rules.get(1)?.value()?;
                        Some(one as i64 - two as i64)
                    })
                    .collect();
                judge(decide(&diffs), t.member)
            });
            score(guesses.collect::<Vec<_>>(), o.used, o.used, o.answered)
        })
    })
}

attack_tests!(
    funnel_lines,
    "(c) funnel lines",
    FAILS,
    c_funnel_line_differences_decide_membership_with_the_noise_off,
    c_funnel_line_differences_fail_under_the_default_policy
);

// ---------------------------------------------------------------------------------------------
// (d) Entries vs subjects: one person with 12 episodes (admissions on days the attacker
// knows) adds 12 to `entries` while `subjects` stays below the threshold.

fn entries_vs_subjects() -> &'static Both {
    static R: OnceLock<Both> = OnceLock::new();
    R.get_or_init(|| {
        let lab = Lab::start(&["sponsor"], &["p1"], Unprotected::NoNoise);
        let w = &data().world;
        against_both("(d) entries vs subjects", &lab, |site, rng| {
            let mut o = lab.oracle("sponsor", "p1", site);
            let mut persons: Vec<&cdm::Episodic> = w.episodic.iter().collect();
            persons.shuffle(rng);
            let per = ALLOWANCE / persons.len();
            let mut defs = Vec::new();
            for p in &persons {
                // All the episodes, then all but one (a different one each time).
                for skip in 0..per {
                    let days = p.days.iter().enumerate().filter(|&(i, _)| i + 1 != skip);
                    let primary = days.map(|(_, &d)| diagnosed(d, d)).collect();
                    defs.push(definition(primary, vec![], Some(0)));
                }
            }
            let answers = o.ask(defs);
            let guesses = persons.iter().zip(answers.chunks(per)).map(|(p, a)| {
                // Member if most answers show at least half the episodes as entries.
                let big = a
                    .iter()
                    .filter(|a| {
                        let f = a.funnel.as_ref();
                        f.and_then(|f| f.entries.value())
                            .is_some_and(|e| e as usize >= cdm::EPISODES / 2)
                    })
                    .count();
                let answered = a.iter().filter(|a| a.funnel.is_some()).count();
                judge([(answered > 0).then_some(2 * big > answered)], p.member)
            });
            score(guesses.collect::<Vec<_>>(), o.used, o.used, o.answered)
        })
    })
}

attack_tests!(
    entries_vs_subjects,
    "(d) entries vs subjects",
    FAILS,
    d_entries_reveal_a_multi_episode_person_with_the_noise_off,
    d_entries_do_not_reveal_a_multi_episode_person_under_the_default_policy
);

// ---------------------------------------------------------------------------------------------
// (e) Averaging: the same persons asked through reworded definitions and end-strategy
// variants; the mean of the released numbers estimates the count within ±1 (independent noise
// draws average out; noise keyed on the person set does not).

fn averaging() -> &'static Both {
    static R: OnceLock<Both> = OnceLock::new();
    R.get_or_init(|| {
        let lab = Lab::start(&["sponsor"], &["p1"], Unprotected::NoNoise);
        let w = &data().world;
        against_both("(e) averaging over variants", &lab, |site, _rng| {
            let mut o = lab.oracle("sponsor", "p1", site);
            let start = cdm::day(2021, 1, 1);
            let windows: Vec<(i32, i32)> = (0..6)
                .map(|i| (start + 50 * i, start + 50 * i + 59))
                .collect();
            let per = ALLOWANCE / windows.len();
            let mut defs = Vec::new();
            for &(f, l) in &windows {
                for v in 0..per as i32 {
                    defs.push(match v {
                        // Reworded: a rule every person passes.
                        0 => definition(vec![diagnosed(f, l)], vec![circe::rule_any_age()], None),
                        // Reworded: the window split in two criteria.
                        1 => definition(
                            vec![diagnosed(f, f + 9), diagnosed(f + 10, l)],
                            vec![],
                            None,
                        ),
                        // End strategy: `v - 1` days after the start.
                        _ => definition(vec![diagnosed(f, l)], vec![], Some(v - 1)),
                    });
                }
            }
            let answers = o.ask(defs);
            let guesses = windows.iter().zip(answers.chunks(per)).map(|(&(f, l), a)| {
                let values: Vec<u64> = a
                    .iter()
                    .filter_map(|a| a.funnel.as_ref())
                    .flat_map(|f| [f.entries.value(), f.subjects.value()])
                    .flatten()
                    .collect();
                let truth = w.members_in(&[(f, l)]);
                if values.is_empty() {
                    return [Some(false)];
                }
                let mean = values.iter().sum::<u64>() as f64 / values.len() as f64;
                [Some((mean - truth as f64).abs() <= 1.0)]
            });
            score(guesses.collect::<Vec<_>>(), o.used, o.used, o.answered)
        })
    })
}

attack_tests!(
    averaging,
    "(e) averaging",
    FAILS,
    e_averaging_recovers_counts_with_the_noise_off,
    e_averaging_fails_under_the_default_policy
);

// ---------------------------------------------------------------------------------------------
// (f) Budget reset: pair differencing (b) spread over three projects and two users of the
// same organization, each account sending its full allowance.

fn budget_reset() -> &'static Both {
    static R: OnceLock<Both> = OnceLock::new();
    R.get_or_init(|| {
        let users = ["sponsor", "colleague"];
        let projects = ["p1", "p2", "p3"];
        let lab = Lab::start(&users, &projects, Unprotected::NoNoise);
        against_both(
            "(f) budget reset by new projects and users",
            &lab,
            |site, rng| {
                let targets = balanced_targets(rng, 10);
                let contexts: Vec<(&str, &str)> = users
                    .iter()
                    .flat_map(|u| projects.iter().map(move |p| (*u, *p)))
                    .collect();
                // Every context asks the same number of pairs about every target, as if no other
                // context existed; each user sends its whole allowance.
                let per_context = ALLOWANCE / projects.len() / 2 / targets.len();
                let mut diffs = vec![Vec::new(); targets.len()];
                let mut used = Vec::new();
                for (c, &(user, project)) in contexts.iter().enumerate() {
                    let mut o = lab.oracle(user, project, site);
                    let mut defs = Vec::new();
                    for t in &targets {
                        for j in 0..per_context {
                            let (with, without) =
                                window_pair(t.day, RADIUS + (c * per_context + j) as i32);
                            defs.extend([with, without]);
                        }
                    }
                    let answers = o.ask(defs);
                    for (i, a) in answers.chunks(2 * per_context).enumerate() {
                        for p in a.chunks(2) {
                            if let (Some(Shown::Value(w)), Some(Shown::Value(wo))) =
                                (p[0].subjects(), p[1].subjects())
                            {
                                diffs[i].push(w as i64 - wo as i64);
                            }
                        }
                    }
                    used.push((user, o.used, o.answered));
                }
                let per_user = users
                    .iter()
                    .map(|u| {
                        used.iter()
                            .filter(|(x, _, _)| x == u)
                            .map(|(_, n, _)| n)
                            .sum::<usize>()
                    })
                    .max()
                    .unwrap_or(0);
                let guesses = targets
                    .iter()
                    .zip(&diffs)
                    .map(|(t, d)| judge(decide(d), t.member));
                let sent = used.iter().map(|(_, n, _)| n).sum();
                let answered = used.iter().map(|(_, _, a)| a).sum();
                score(guesses.collect::<Vec<_>>(), per_user, sent, answered)
            },
        )
    })
}

attack_tests!(
    budget_reset,
    "(f) budget reset",
    FAILS,
    f_budget_reset_lets_membership_through_with_the_noise_off,
    f_budget_reset_fails_under_the_default_policy
);

// ---------------------------------------------------------------------------------------------
// (g) The lockout/refusal oracle: ten questions known to be empty, then "is the target
// diagnosed on its admission day?". A refusal where the empty questions were answered means
// the target's answer is empty too. One bit per account: one fresh account per trial.

const LOCKOUT_TRIALS: usize = 12;

fn refusal_oracle() -> &'static Both {
    static R: OnceLock<Both> = OnceLock::new();
    R.get_or_init(|| {
        let users: Vec<String> = (0..LOCKOUT_TRIALS).map(|i| format!("asker{i}")).collect();
        let ids: Vec<&str> = users.iter().map(String::as_str).collect();
        // The oracle is the lockout on true counts: the legacy policy's.
        let lab = Lab::start(&ids, &["p1"], Unprotected::LegacyLockout);
        let (first, _) = data().world.empty;
        against_both("(g) lockout/refusal oracle", &lab, |site, rng| {
            let targets = balanced_targets(rng, LOCKOUT_TRIALS);
            let mut oracles: Vec<Oracle> = ids.iter().map(|u| lab.oracle(u, "p1", site)).collect();
            // Each account: ten differently worded empty questions (all at once)…
            let empties: Vec<Vec<Answer>> = thread::scope(|sc| {
                let hs: Vec<_> = oracles
                    .iter_mut()
                    .enumerate()
                    .map(|(i, o)| {
                        sc.spawn(move || {
                            let defs = (0..10)
                                .map(|j| {
                                    diagnosed_in(&[(
                                        first + 30 * (i as i32 % 10) + j,
                                        first + 30 * (i as i32 % 10) + 20 + j,
                                    )])
                                })
                                .collect();
                            o.ask(defs)
                        })
                    })
                    .collect();
                hs.into_iter()
                    .map(|h| h.join().expect("empty questions"))
                    .collect()
            });
            // …then the target question.
            let guesses = targets
                .iter()
                .zip(&mut oracles)
                .zip(&empties)
                .map(|((t, o), e)| {
                    let a = o.ask_one(diagnosed_in(&[(t.day, t.day)]));
                    let answered = e.iter().all(|x| x.funnel.is_some());
                    // Refused after answered empty questions: the target question was empty too.
                    let member = !(answered && a.funnel.is_none());
                    // Every question refused: nothing learnt.
                    let informed = answered || a.funnel.is_some();
                    judge([informed.then_some(member)], t.member)
                });
            let g: Vec<[Option<bool>; 1]> = guesses.collect();
            let sent = oracles.iter().map(|o| o.used).sum();
            let answered = oracles.iter().map(|o| o.answered).sum();
            score(g, 11, sent, answered)
        })
    })
}

attack_tests!(
    refusal_oracle,
    "(g) lockout oracle",
    FAILS,
    g_lockout_oracle_reveals_membership_under_the_legacy_lockout,
    g_lockout_oracle_fails_under_the_default_policy
);

// ---------------------------------------------------------------------------------------------

/// The planted data is what the attacks assume: distinct admission days, small groups below
/// the threshold, windows large enough to be released.
#[test]
fn the_synthetic_cdm_has_the_planted_structure() {
    let w = &data().world;
    let mut days: Vec<i32> = w.admissions.iter().map(|a| a.day).collect();
    days.dedup();
    assert_eq!(days.len(), 200);
    let members = w.admissions.iter().filter(|a| a.member).count();
    assert!((80..=120).contains(&members), "{members}");
    assert!(w.suppressed.iter().all(|g| g.count < 10));
    assert!(
        w.suppressed
            .iter()
            .map(|g| g.count)
            .collect::<std::collections::BTreeSet<_>>()
            .len()
            >= 5
    );
    assert_eq!(TARGET_DAYS, (cdm::day(2021, 2, 10), cdm::day(2021, 11, 20)));
    for a in w
        .admissions
        .iter()
        .filter(|a| TARGET_DAYS.0 <= a.day && a.day <= TARGET_DAYS.1)
    {
        // Released with and without the target (noise off).
        assert!(
            w.members_in(&[(a.day - RADIUS, a.day + RADIUS)]) >= 11,
            "{a:?}"
        );
    }
    let start = cdm::day(2021, 1, 1);
    for i in 0..6 {
        let n = w.members_in(&[(start + 50 * i, start + 50 * i + 59)]);
        assert!(n >= 10, "averaging window {i}: {n}");
    }
}
