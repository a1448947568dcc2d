//! `qiao hub audit verify` and `qiao hub audit site-heads`: the hub's side of the audit heads
//! exchanged with the sites (`qiao_protocol::audit_head`).

use std::io::Write;
use std::path::PathBuf;

use anyhow::{bail, Context};
use qiao_hub::protocol::{SignedHead, SiteId};

use super::StoreArgs;

/// `qiao hub audit` subcommands.
#[derive(clap::Subcommand)]
pub enum HubAuditAction {
    /// Verify the hub's audit chain against the hub's signed heads that a site kept
    /// (`qiao site audit hub-heads --data DIR > heads.jsonl`): detects entries removed from the
    /// end and entries edited with the chain recomputed, up to the newest head. Exit status 1
    /// names the missing or altered sequence numbers.
    Verify {
        #[command(flatten)]
        store: StoreArgs,
        /// The site's record: signed heads, one JSON head a line.
        #[arg(long)]
        heads: PathBuf,
    },
    /// Print the signed audit heads the hub kept for a site, one JSON head a line (for
    /// `qiao site audit verify --heads`).
    SiteHeads {
        #[command(flatten)]
        store: StoreArgs,
        /// The site.
        #[arg(long)]
        site: SiteId,
    },
}

/// Runs a `qiao hub audit` subcommand.
pub fn hub(action: HubAuditAction) -> anyhow::Result<()> {
    match action {
        HubAuditAction::Verify { store, heads } => {
            let text = std::fs::read_to_string(&heads)
                .with_context(|| format!("reading {}", heads.display()))?;
            let parsed =
                SignedHead::parse_lines(&text).with_context(|| heads.display().to_string())?;
            if parsed.is_empty() {
                bail!("{}: no signed heads to verify against", heads.display());
            }
            let store = store.open()?;
            match qiao_hub::service::audit_heads::verify_against(store.as_ref(), &parsed)? {
                Ok((report, checked)) => {
                    println!(
                        "audit chain verified: {} entries; contains all {} signed heads on record (newest #{}); {} entries after it not yet covered",
                        report.entries,
                        checked.heads,
                        checked.newest.unwrap_or(0),
                        checked.unchecked_after
                    );
                    Ok(())
                }
                Err(why) => bail!(
                    "the hub's audit chain does not contain the signed heads on record:\n{why}"
                ),
            }
        }
        HubAuditAction::SiteHeads { store, site } => {
            let store = store.open()?;
            let mut out = std::io::stdout().lock();
            for h in store.site_heads(&site)? {
                writeln!(out, "{}", h.to_json())?;
            }
            Ok(())
        }
    }
}
