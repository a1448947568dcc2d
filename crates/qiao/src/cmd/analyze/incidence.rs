//! `qiao analyze incidence` (to be built).

#[derive(clap::Args)]
pub struct Args {}

pub fn run(_a: Args) -> anyhow::Result<()> {
    anyhow::bail!("qiao analyze incidence: not built yet")
}
