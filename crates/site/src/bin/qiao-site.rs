//! `qiao-site`: the same commands as `qiao site …`, as a binary of this crate (the crate's
//! process-level tests run it; operators use `qiao site`).

use std::process::ExitCode;

use clap::Parser;

#[derive(Parser)]
#[command(name = "qiao-site", version, about = "Qiao site (same as `qiao site`)")]
struct Cli {
    /// Log filter (e.g. `info`); also read from QIAO_LOG.
    #[arg(long, global = true, env = "QIAO_LOG", default_value = "warn")]
    log: String,
    #[command(subcommand)]
    command: qiao_site::cli::Command,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_new(&cli.log).unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    match qiao_site::cli::run(cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
