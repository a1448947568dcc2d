//! `qiao site audit verify` and `qiao site audit hub-heads`: the site's side of the audit
//! heads exchanged with the hub ([`crate::audit_heads`]).

use std::path::PathBuf;

use anyhow::Context;
use qiao_protocol::SignedHead;

use crate::audit_heads;
use crate::data::SiteDir;

/// `qiao site audit` subcommands.
#[derive(clap::Subcommand, Debug)]
pub enum SiteAuditAction {
    /// Verify the site's audit log against the signed heads of it that the hub kept
    /// (`qiao hub audit site-heads --site ID > heads.jsonl`): detects entries removed from the
    /// end and entries edited with the chain recomputed, up to the newest head. Exit status 1
    /// names the missing or altered sequence numbers.
    Verify {
        /// The site's data directory.
        #[arg(long)]
        data: PathBuf,
        /// The hub's record: signed heads, one JSON head a line.
        #[arg(long)]
        heads: PathBuf,
    },
    /// Print the hub's signed audit heads kept by this site, one JSON head a line (for
    /// `qiao hub audit verify --heads`).
    HubHeads {
        /// The site's data directory.
        #[arg(long)]
        data: PathBuf,
    },
}

/// Runs a `qiao site audit` subcommand.
pub fn run(action: SiteAuditAction) -> anyhow::Result<()> {
    match action {
        SiteAuditAction::Verify { data, heads } => {
            let dir = SiteDir::open(&data)?;
            let text = std::fs::read_to_string(&heads)
                .with_context(|| format!("reading {}", heads.display()))?;
            let heads =
                SignedHead::parse_lines(&text).with_context(|| heads.display().to_string())?;
            if heads.is_empty() {
                anyhow::bail!("no signed heads to verify against");
            }
            let (report, checked) = audit_heads::verify_against(&dir, &heads)?;
            println!(
                "audit log verified: {} entries; contains all {} signed heads on record (newest #{}); {} entries after it not yet covered",
                report.entries,
                checked.heads,
                checked.newest.unwrap_or(0),
                checked.unchecked_after
            );
            Ok(())
        }
        SiteAuditAction::HubHeads { data } => {
            let dir = SiteDir::open(&data)?;
            for h in audit_heads::read_hub_heads(&dir)? {
                println!("{}", h.to_json());
            }
            Ok(())
        }
    }
}
