//! `qiao analyze regress` (to be built).

#[derive(clap::Args)]
pub struct Args {}

pub fn run(_a: Args) -> anyhow::Result<()> {
    anyhow::bail!("qiao analyze regress: not built yet")
}
