//! The recruitment pre-screening list: the site's own patients of a cohort, for its own
//! investigators, through the local CLI only.
//!
//! Nothing here talks to the hub, and nothing the hub can send asks for it: there is no
//! pre-screening query type in the protocol, and the result types cannot hold an id list. Every
//! access (granted or refused) is in the site's audit log, without the ids.

use anyhow::Context;
use qiao_audit::EntryDraft;
use qiao_cohort::CohortRow;
use qiao_store::Store;
use sha2::{Digest, Sha256};

use crate::audit;
use crate::data::{hex_encode, now_unix, SiteDir};
use crate::exec::{run_definition, subject_ids};
use crate::users::{LocalRole, Users};

/// Authenticates `user` as an investigator, runs `definition` on `store` and returns the cohort
/// rows (person id, cohort start, cohort end). Audited.
pub fn prescreen(
    dir: &SiteDir,
    store: &Store,
    user: &str,
    password: &str,
    definition: &str,
    label: &str,
) -> anyhow::Result<Vec<CohortRow>> {
    let digest = hex_encode(&Sha256::digest(definition.as_bytes()));
    if let Err(e) = Users::authenticate(dir, user, password, LocalRole::Investigator) {
        audit::append(
            dir,
            EntryDraft::new(now_unix(), audit::user(user), "prescreen.deny")
                .decision(format!("refused: {e} ({label}, sha256:{digest})")),
        )?;
        return Err(e);
    }
    list_for(dir, store, user, definition, label)
}

/// Runs `definition` on `store` for `user`, an investigator already authenticated (a `qiao site
/// ui` session), and returns the cohort rows. Audited like [`prescreen`].
pub fn list_for(
    dir: &SiteDir,
    store: &Store,
    user: &str,
    definition: &str,
    label: &str,
) -> anyhow::Result<Vec<CohortRow>> {
    let digest = hex_encode(&Sha256::digest(definition.as_bytes()));
    let value: serde_json::Value =
        serde_json::from_str(definition).with_context(|| format!("{label}: not JSON"))?;
    let run = match run_definition(store, &value) {
        Ok(r) => r,
        Err(e) => {
            audit::append(
                dir,
                EntryDraft::new(now_unix(), audit::user(user), "prescreen.fail")
                    .decision(format!("failed: {e} ({label}, sha256:{digest})")),
            )?;
            return Err(anyhow::anyhow!("{label}: {e}"));
        }
    };
    let persons = subject_ids(&run.rows).count();
    audit::append(
        dir,
        EntryDraft::new(now_unix(), audit::user(user), "prescreen.list")
            .decision(format!(
                "listed {} cohort rows of {persons} persons to investigator {user} ({label}, sha256:{digest})",
                run.rows.len()
            ))
            .released_text("local only: patient ids shown to the investigator, never sent to the hub"),
    )?;
    Ok(run.rows)
}
