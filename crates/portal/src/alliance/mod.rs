//! The alliance domain, without HTTP: member institutions, the expert registry and committee
//! reviews, the project pipeline state machine, feasibility cohorts, site selection, enrollment
//! reports and the phenotype library — stored in the portal's own tables in the hub's database
//! ([`INSTITUTIONS`], [`EXPERTS`], [`PIPELINE`], [`COHORTS`], [`LIBRARY`]: extension tables of
//! the hub's [`HubStore`], created on first write) beside the hub's users, sites, projects and
//! jobs. Every change runs in one store transaction that also appends its audit entry; a
//! refusal leaves the transaction as a typed [`Refusal`] and rolls it back, so a refused or
//! failed change leaves nothing behind.
//!
//! The pipeline unifies with the hub's project approval flag: a project's `approved` is true
//! exactly in the stages approved, feasibility, site selection and running, so the hub runs
//! queries only under those.

use std::collections::BTreeMap;

use qiao_hub::audit::{Actor, EntryDraft};
use qiao_hub::model::{Project, User};
use qiao_hub::protocol::{Job, JobId, ProjectId, QueryType, Requester, SiteId, UserId, UserRole};
use qiao_hub::store::{append_audit, create_job_in, get_json, put_json, scan_json, Table, Tx};
use qiao_hub::{HubStore, StoreError};
use serde::{Deserialize, Serialize};

mod experts;
mod feasibility;
mod institutions;
mod invitations;
mod library;
mod pipeline;
mod review_criteria;

pub use experts::{appoint_expert, experts, Appointment, Expert, ExpertForm};
pub use feasibility::{
    attach_cohort, check_definition, cohort_definition, run_feasibility, FEASIBILITY_AGE_BAND,
    MAX_DEFINITION_BYTES,
};
pub use institutions::{
    apply, check_application, decide_institution, institution, institution_of, institutions,
    Application, Institution, InstitutionKind, MemberStatus,
};
pub use invitations::{answer_invite, invite_sites, report_enrollment};
pub use library::{
    import_library, library_entry, search_library, ImportReport, LibraryEntry, LibrarySummary,
};
pub use pipeline::{
    assign_reviewers, can_see, create_project, decide_project, project_file, project_files,
    submit_review, transition, transition_roles, CohortRef, CohortSource, FeasibilityRun, Invite,
    InviteStatus, ProjectFile, ProjectForm, Report, Review, Stage, Transition,
};
pub use review_criteria::{criteria, default_criteria, set_criteria, Criterion};

/// Why a domain operation was refused. `field` names the form field at fault (if one is);
/// `key` is the catalog key of the message, `args` fill its placeholders.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// Bad input in a field.
    Field {
        /// The form field.
        field: &'static str,
        /// Catalog key of the message.
        key: &'static str,
        /// Placeholder values.
        args: Vec<(&'static str, String)>,
    },
    /// The caller's role or relation to the record does not allow it.
    Forbidden,
    /// Not allowed in the record's current state (catalog key of the message).
    State(&'static str),
    /// No such record.
    NotFound,
    /// Storage failed.
    Store(StoreError),
}

impl From<StoreError> for Refusal {
    fn from(e: StoreError) -> Self {
        Refusal::Store(e)
    }
}

fn field(field: &'static str, key: &'static str) -> Refusal {
    Refusal::Field {
        field,
        key,
        args: Vec::new(),
    }
}

/// Result of a domain operation.
pub type Outcome<T> = Result<T, Refusal>;

/// Member institutions by id.
pub const INSTITUTIONS: Table = Table::Extension("institutions");
/// Scientific committee experts by user id.
pub const EXPERTS: Table = Table::Extension("experts");
/// Each project's pipeline record ([`ProjectFile`]) by project id.
pub const PIPELINE: Table = Table::Extension("pipeline");
/// Cohort definitions attached to projects, by `project/number`.
pub const COHORTS: Table = Table::Extension("cohorts");
/// The phenotype library: `d/ID` the full entry, `s/ID` its summary.
pub const LIBRARY: Table = Table::Extension("library");

/// Runs `f` in one write transaction; a refusal inside rolls everything back and is returned.
fn write<R>(store: &dyn HubStore, f: impl FnMut(&mut dyn Tx) -> Outcome<R>) -> Outcome<R> {
    store.write_or_rollback(f)
}

fn read<R>(
    store: &dyn HubStore,
    mut f: impl FnMut(&mut dyn Tx) -> Result<R, StoreError>,
) -> Result<R, StoreError> {
    store.read_with(|tx| f(tx))
}

fn actor(u: &User) -> Actor {
    Actor::User(u.id.to_string())
}

/// Checks free text: trimmed length within `1..=max` characters, no control characters except
/// newlines when `multiline`.
pub fn text_ok(s: &str, max: usize, multiline: bool) -> bool {
    let n = s.trim().chars().count();
    (1..=max).contains(&n)
        && !s
            .chars()
            .any(|c| c.is_control() && !(multiline && (c == '\n' || c == '\r' || c == '\t')))
}

/// Checks an identifier: 1 to 64 of `[a-z0-9_-]`, starting with a letter or digit.
pub fn id_ok(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
        && s.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
}
