//! `qiao analyze characterize` (to be built).

#[derive(clap::Args)]
pub struct Args {}

pub fn run(_a: Args) -> anyhow::Result<()> {
    anyhow::bail!("qiao analyze characterize: not built yet")
}
