//! `qiao analyze`: real-world-evidence analyses of cohorts on a store (exact: the site's own
//! analysts; network runs release through disclosure control via `qiao query`).

mod characterize;
pub(crate) mod incidence;
mod regress;
mod survival;

#[derive(clap::Subcommand)]
pub enum Command {
    /// Cohort characterization: OHDSI FeatureExtraction aggregated covariates (target vs comparator, SMD).
    Characterize(characterize::Args),
    /// Incidence proportions and rates: OHDSI CohortIncidence designs.
    Incidence(incidence::Args),
    /// Time to event: Kaplan–Meier curves, median survival, log-rank test.
    Survival(survival::Args),
    /// Logistic or Cox proportional-hazards regression.
    Regress(regress::Args),
}

pub fn run(c: Command) -> anyhow::Result<()> {
    match c {
        Command::Characterize(a) => characterize::run(a),
        Command::Incidence(a) => incidence::run(a),
        Command::Survival(a) => survival::run(a),
        Command::Regress(a) => regress::run(a),
    }
}
