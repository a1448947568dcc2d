//! `qiao analyze survival` (to be built).

#[derive(clap::Args)]
pub struct Args {}

pub fn run(_a: Args) -> anyhow::Result<()> {
    anyhow::bail!("qiao analyze survival: not built yet")
}
