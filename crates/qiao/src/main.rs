//! `qiao`: the one binary of the Qiao federated real-world-data platform.
//!
//! A thin shell over the library crates: parse the command line, run one subcommand, print the
//! whole error chain once. A broken pipe (e.g. `qiao stats | head`) is not an error.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod cmd;

#[derive(Parser)]
#[command(
    name = "qiao",
    version,
    about = "Qiao (桥): a federated OMOP CDM real-world-data platform"
)]
struct Cli {
    /// Log filter (e.g. `info`, `qiao=debug`); also read from QIAO_LOG.
    #[arg(long, global = true, env = "QIAO_LOG", default_value = "warn")]
    log: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// The main job on built-in data: a hub and 3 hospital sites on loopback answering a
    /// feasibility query (synthesized from the bundled GiBleed CDM).
    Demo(cmd::demo::Args),
    /// Read a hospital's OMOP CDM (CSV folder or PostgreSQL schema) into a Qiao store.
    Ingest(cmd::ingest::Args),
    /// Print what a store holds: rows per table, persons, date range, top concepts.
    Stats(cmd::stats::Args),
    /// The store file itself: `qiao store verify STORE` checks every byte of it.
    #[command(subcommand)]
    Store(cmd::store::Command),
    /// Write synthetic hospitals (OMOP CSV folders) resampled from a source CDM.
    Synth(cmd::synth::Args),
    /// Run, explain or check OHDSI ATLAS/Circe cohort definitions on a store.
    #[command(subcommand)]
    Cohort(cmd::cohort::Command),
    /// Analyze cohorts on a store: characterization, incidence, survival, regression.
    #[command(subcommand)]
    Analyze(cmd::analyze::Command),
    /// Run the alliance's hub (HTTP API, site protocol, audit) and administer its state.
    #[command(subcommand)]
    Hub(cmd::hub::Command),
    /// Ask the network through a hub: per-site and total results of a cohort definition.
    Query(cmd::query::Args),
    /// Run a hospital's site: enroll, pull jobs from the hub, policy, approvals, pre-screening, audit.
    #[command(subcommand)]
    Site(cmd::site::Command),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // The demo's sites talk plain HTTP on loopback on purpose: not worth a warning each.
    let log = match (&cli.command, cli.log.as_str()) {
        (Command::Demo(_), "warn") => "warn,qiao_site::client=error",
        (_, l) => l,
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_new(log).unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let result = match cli.command {
        Command::Demo(a) => cmd::demo::run(a),
        Command::Ingest(a) => cmd::ingest::run(a),
        Command::Stats(a) => cmd::stats::run(a),
        Command::Store(c) => cmd::store::run(c),
        Command::Synth(a) => cmd::synth::run(a),
        Command::Cohort(c) => cmd::cohort::run(c),
        Command::Analyze(c) => cmd::analyze::run(c),
        Command::Hub(c) => cmd::hub::run(c),
        Command::Query(a) => cmd::query::run(a),
        Command::Site(c) => cmd::site::run(c),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", chain_once(&e));
            ExitCode::FAILURE
        }
    }
}

/// The error and its causes, each cause once: one that the text so far already says (an OS error
/// a library put in its own message and also gave as the source) is not repeated.
fn chain_once(e: &anyhow::Error) -> String {
    let mut msg = e.to_string();
    for cause in e.chain().skip(1) {
        let c = cause.to_string();
        if !msg.contains(&c) {
            msg.push_str(": ");
            msg.push_str(&c);
        }
    }
    msg
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}
