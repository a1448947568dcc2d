//! The cohort definitions this site has received, by project: what a local investigator's
//! pre-screening list is run on (`DIR/cohorts/PROJECT/DIGEST.json`, written by `serve` when a
//! job first arrives). The definitions come from signed, verified jobs of approved projects; the
//! lists they produce never leave the site.

use std::fs;
use std::path::PathBuf;

use anyhow::Context;
use qiao_protocol::Job;
use serde::{Deserialize, Serialize};

use crate::data::{read_json, write_json, SiteDir};

/// One received definition.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProjectCohort {
    /// The hub's project id.
    pub project: String,
    /// sha256 of the definition's JSON text (hex): its identity here.
    pub digest: String,
    /// The cohort definition's `name`/`title`, if it has one.
    pub name: Option<String>,
    /// The Circe definition as the job carried it (on disk: `null`, the definition being kept
    /// once in [`crate::definitions`] under `digest`; filled back in when read).
    pub definition: serde_json::Value,
    /// When it first arrived (unix seconds).
    pub first_seen: i64,
}

fn dir_of(dir: &SiteDir) -> PathBuf {
    dir.root().join("cohorts")
}

pub use crate::definitions::digest;

/// A project id usable as a folder name (hub ids are already restricted; anything else is
/// refused here rather than escaped).
fn safe_component(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && s != "."
        && s != ".."
        && s.bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'-'))
}

/// Records the definition of a job (once per project and definition).
pub fn remember(dir: &SiteDir, job: &Job, now: i64) -> anyhow::Result<()> {
    let project = job.project_id.to_string();
    if !safe_component(&project) {
        return Ok(());
    }
    let digest = digest(&job.definition);
    let folder = dir_of(dir).join(&project);
    let path = folder.join(format!("{digest}.json"));
    if path.exists() {
        return Ok(());
    }
    fs::create_dir_all(&folder).with_context(|| format!("creating {}", folder.display()))?;
    let name = ["name", "title"]
        .iter()
        .find_map(|k| job.definition.get(k).and_then(|v| v.as_str()))
        .map(|s| s.chars().take(200).collect());
    write_json(
        &path,
        &ProjectCohort {
            project,
            digest,
            name,
            definition: {
                crate::definitions::put(dir, &job.definition)?;
                serde_json::Value::Null
            },
            first_seen: now,
        },
    )
}

/// A stored entry with its definition filled in from [`crate::definitions`] (entries written
/// before definitions were stored by digest carry theirs).
fn load(dir: &SiteDir, path: &std::path::Path) -> anyhow::Result<Option<ProjectCohort>> {
    let Some(mut c) = read_json::<ProjectCohort>(path)? else {
        return Ok(None);
    };
    if c.definition.is_null() {
        c.definition = crate::definitions::get(dir, &c.digest)?;
    }
    Ok(Some(c))
}

/// Every received definition, by project then first arrival.
pub fn list(dir: &SiteDir) -> anyhow::Result<Vec<ProjectCohort>> {
    let mut out = Vec::new();
    let root = dir_of(dir);
    let projects = match fs::read_dir(&root) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(e).with_context(|| format!("reading {}", root.display())),
    };
    for p in projects {
        let p = p?;
        if !p.file_type()?.is_dir() {
            continue;
        }
        for f in fs::read_dir(p.path())? {
            let path = f?.path();
            if path.extension().is_some_and(|e| e == "json") {
                if let Some(c) = load(dir, &path)? {
                    out.push(c);
                }
            }
        }
    }
    out.sort_by(|a, b| {
        (&a.project, a.first_seen, &a.digest).cmp(&(&b.project, b.first_seen, &b.digest))
    });
    Ok(out)
}

/// One definition of a project, by digest.
pub fn get(dir: &SiteDir, project: &str, digest: &str) -> anyhow::Result<Option<ProjectCohort>> {
    if !safe_component(project) || !safe_component(digest) {
        return Ok(None);
    }
    load(
        dir,
        &dir_of(dir).join(project).join(format!("{digest}.json")),
    )
}
