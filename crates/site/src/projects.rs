//! Which hub projects this site has accepted, and which local investigators are assigned to
//! each (`DIR/projects.json`): the rule for pre-screening lists. A list opens only for a project
//! the site's data steward has accepted, to an investigator the steward assigned to that
//! project. Every change is audited (`project.accept`, `project.revoke`, `project.assign`,
//! `project.unassign`), naming the steward.
//!
//! Set with `qiao site project accept|revoke|assign|unassign|show` (steward's password).

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use anyhow::bail;
use qiao_audit::EntryDraft;
use serde::{Deserialize, Serialize};

use crate::audit;
use crate::data::{read_json, write_json, SiteDir};
use crate::users::{LocalRole, Users};

/// One acceptance.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Acceptance {
    /// The steward who accepted the project.
    pub by: String,
    /// When (unix seconds).
    pub at: i64,
}

/// `DIR/projects.json`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Projects {
    /// Accepted projects, by hub project id.
    #[serde(default)]
    pub accepted: BTreeMap<String, Acceptance>,
    /// Local investigators assigned to each project.
    #[serde(default)]
    pub assigned: BTreeMap<String, BTreeSet<String>>,
}

/// Why a pre-screening list does not open.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Denied {
    /// The site has not accepted the project (or revoked it).
    #[error("project {0} is not accepted at this site")]
    NotAccepted(String),
    /// The investigator is not assigned to the project here.
    #[error("investigator {user} is not assigned to project {project} at this site")]
    NotAssigned {
        /// The investigator.
        user: String,
        /// The project.
        project: String,
    },
}

fn path(dir: &SiteDir) -> PathBuf {
    dir.root().join("projects.json")
}

impl Projects {
    /// Loads the record (empty if the file does not exist).
    pub fn load(dir: &SiteDir) -> anyhow::Result<Self> {
        Ok(read_json(&path(dir))?.unwrap_or_default())
    }

    /// Whether `user` may open pre-screening lists of `project`.
    pub fn check(&self, project: &str, user: &str) -> Result<(), Denied> {
        if !self.accepted.contains_key(project) {
            return Err(Denied::NotAccepted(project.to_owned()));
        }
        if !self.assigned.get(project).is_some_and(|s| s.contains(user)) {
            return Err(Denied::NotAssigned {
                user: user.to_owned(),
                project: project.to_owned(),
            });
        }
        Ok(())
    }

    fn change(
        dir: &SiteDir,
        steward: &str,
        action: &str,
        decision: String,
        f: impl FnOnce(&mut Projects) -> anyhow::Result<()>,
    ) -> anyhow::Result<()> {
        dir.locked(|| {
            let mut p = Self::load(dir)?;
            f(&mut p)?;
            write_json(&path(dir), &p)
        })?;
        audit::append(
            dir,
            EntryDraft::new(crate::data::now_unix(), audit::user(steward), action)
                .decision(decision),
        )?;
        Ok(())
    }

    /// The steward accepts `project` at this site. Audited.
    pub fn accept(dir: &SiteDir, project: &str, steward: &str, now: i64) -> anyhow::Result<()> {
        valid_project(project)?;
        Self::change(
            dir,
            steward,
            "project.accept",
            format!("accepted project {project}"),
            |p| {
                p.accepted.insert(
                    project.to_owned(),
                    Acceptance {
                        by: steward.to_owned(),
                        at: now,
                    },
                );
                Ok(())
            },
        )
    }

    /// The steward revokes the acceptance (assignments stay, and apply again if the project is
    /// accepted again). Audited.
    pub fn revoke(dir: &SiteDir, project: &str, steward: &str) -> anyhow::Result<()> {
        Self::change(
            dir,
            steward,
            "project.revoke",
            format!("revoked project {project}"),
            |p| {
                if p.accepted.remove(project).is_none() {
                    bail!("project {project} is not accepted");
                }
                Ok(())
            },
        )
    }

    /// The steward assigns a local investigator to `project`. Audited.
    pub fn assign(
        dir: &SiteDir,
        project: &str,
        investigator: &str,
        steward: &str,
    ) -> anyhow::Result<()> {
        valid_project(project)?;
        let users = Users::load(dir)?;
        match users.role_of(investigator) {
            Some(LocalRole::Investigator) => {}
            Some(r) => bail!("user {investigator} is a {r}, not an investigator"),
            None => bail!("no local user {investigator}"),
        }
        Self::change(
            dir,
            steward,
            "project.assign",
            format!("assigned investigator {investigator} to project {project}"),
            |p| {
                p.assigned
                    .entry(project.to_owned())
                    .or_default()
                    .insert(investigator.to_owned());
                Ok(())
            },
        )
    }

    /// The steward removes an investigator from `project`. Audited.
    pub fn unassign(
        dir: &SiteDir,
        project: &str,
        investigator: &str,
        steward: &str,
    ) -> anyhow::Result<()> {
        Self::change(
            dir,
            steward,
            "project.unassign",
            format!("removed investigator {investigator} from project {project}"),
            |p| {
                if !p
                    .assigned
                    .get_mut(project)
                    .is_some_and(|s| s.remove(investigator))
                {
                    bail!("investigator {investigator} is not assigned to project {project}");
                }
                Ok(())
            },
        )
    }
}

fn valid_project(project: &str) -> anyhow::Result<()> {
    if qiao_protocol::ProjectId::new(project).is_err() {
        bail!("{project:?} is not a project id");
    }
    Ok(())
}
