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
use crate::projects::{Denied, Projects};
use crate::users::{LocalRole, Users};

/// Authenticates `user` as an investigator, checks the access rule for `project`
/// ([`admit`]) and that `definition` is a cohort the site received for that project, runs it on
/// `store` and returns the cohort rows (person id, cohort start, cohort end). Audited.
pub fn prescreen(
    dir: &SiteDir,
    store: &Store,
    user: &str,
    password: &str,
    project: &str,
    definition: &str,
    label: &str,
) -> anyhow::Result<Vec<CohortRow>> {
    let digest = hex_encode(&Sha256::digest(definition.as_bytes()));
    if let Err(e) = Users::authenticate(dir, user, password, LocalRole::Investigator) {
        audit::append(
            dir,
            EntryDraft::new(now_unix(), audit::user(user), "prescreen.deny")
                .project(project.to_owned())
                .decision(format!("refused: {e} ({label}, sha256:{digest})")),
        )?;
        return Err(e);
    }
    let value: serde_json::Value =
        serde_json::from_str(definition).with_context(|| format!("{label}: not JSON"))?;
    let received = crate::cohorts::digest(&value);
    if crate::cohorts::get(dir, project, &received)?.is_none() {
        audit::append(
            dir,
            EntryDraft::new(now_unix(), audit::user(user), "prescreen.deny")
                .project(project.to_owned())
                .decision(format!(
                    "refused: not a cohort received for project {project} ({label}, sha256:{received})"
                )),
        )?;
        anyhow::bail!("{label} is not a cohort this site received for project {project}");
    }
    list_for(dir, store, user, project, &value.to_string(), label)
}

/// The access rule ([`Projects::check`]): `Ok(Err(denied))` when `user` may not open lists of
/// `project` here, audited as `prescreen.deny` (who, project, cohort digest, why).
pub fn admit(
    dir: &SiteDir,
    user: &str,
    project: &str,
    digest: &str,
    label: &str,
) -> anyhow::Result<Result<(), Denied>> {
    let rule = Projects::load(dir)?.check(project, user);
    if let Err(d) = &rule {
        audit::append(
            dir,
            EntryDraft::new(now_unix(), audit::user(user), "prescreen.deny")
                .project(project.to_owned())
                .decision(format!("refused: {d} ({label}, sha256:{digest})")),
        )?;
    }
    Ok(rule)
}

/// Runs `definition` on `store` for `user`, an investigator already authenticated (a `qiao site
/// ui` session), if the access rule lets them open lists of `project` ([`admit`]), and returns
/// the cohort rows. Audited: who, project, digest and how many rows and persons were shown.
pub fn list_for(
    dir: &SiteDir,
    store: &Store,
    user: &str,
    project: &str,
    definition: &str,
    label: &str,
) -> anyhow::Result<Vec<CohortRow>> {
    let digest = hex_encode(&Sha256::digest(definition.as_bytes()));
    if let Err(d) = admit(dir, user, project, &digest, label)? {
        return Err(d.into());
    }
    let value: serde_json::Value =
        serde_json::from_str(definition).with_context(|| format!("{label}: not JSON"))?;
    let run = match run_definition(store, &value) {
        Ok(r) => r,
        Err(e) => {
            audit::append(
                dir,
                EntryDraft::new(now_unix(), audit::user(user), "prescreen.fail")
                    .project(project.to_owned())
                    .decision(format!("failed: {e} ({label}, sha256:{digest})")),
            )?;
            return Err(anyhow::anyhow!("{label}: {e}"));
        }
    };
    let persons = subject_ids(&run.rows).count();
    audit::append(
        dir,
        EntryDraft::new(now_unix(), audit::user(user), "prescreen.list")
            .project(project.to_owned())
            .decision(format!(
                "listed {} cohort rows of {persons} persons to investigator {user} ({label}, sha256:{digest})",
                run.rows.len()
            ))
            .released_text("local only: patient ids shown to the investigator, never sent to the hub"),
    )?;
    Ok(run.rows)
}
