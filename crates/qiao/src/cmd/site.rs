//! `qiao site`: a hospital's site (the commands live in `qiao_site::cli`, shared with the
//! crate's own `qiao-site` binary).

pub use qiao_site::cli::Command;

pub fn run(c: Command) -> anyhow::Result<()> {
    qiao_site::cli::run(c)
}
