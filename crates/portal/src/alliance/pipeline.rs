//! The project pipeline: a project's alliance record ([`ProjectFile`]), its stages and who may
//! move them, committee reviews and the decision.

use std::collections::BTreeMap;

use qiao_hub::audit::EntryDraft;
use qiao_hub::model::{Project, User};
use qiao_hub::protocol::{JobId, ProjectId, SiteId, UserId, UserRole};
use qiao_hub::store::{append_audit, get_json, put_json, scan_json, Table, Tx};
use qiao_hub::{HubStore, StoreError};
use serde::{Deserialize, Serialize};

use super::experts::Expert;
use super::input::{id_ok, text_ok};
use super::institutions::{institution_of, Institution, MemberStatus};
use super::quorum::quorum_in;
use super::refusal::{field, Outcome, Refusal};
use super::review_criteria::criteria;
use super::tables::{actor, read, write, EXPERTS, INSTITUTIONS, PIPELINE};

/// A project's stage.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// Being written by the sponsor.
    Draft,
    /// Submitted to the committee.
    Submitted,
    /// Reviewers assigned.
    UnderReview,
    /// Approved by the committee.
    Approved,
    /// Rejected by the committee.
    Rejected,
    /// Feasibility: cohorts run on the network.
    Feasibility,
    /// Sites invited.
    SiteSelection,
    /// Enrolling.
    Running,
    /// Finished.
    Completed,
    /// Withdrawn by the sponsor or the alliance.
    Withdrawn,
}

impl Stage {
    /// Every stage, in pipeline order.
    pub const ALL: [Stage; 10] = [
        Stage::Draft,
        Stage::Submitted,
        Stage::UnderReview,
        Stage::Approved,
        Stage::Rejected,
        Stage::Feasibility,
        Stage::SiteSelection,
        Stage::Running,
        Stage::Completed,
        Stage::Withdrawn,
    ];
    /// Wire name (also the catalog key suffix `stage.NAME`).
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Draft => "draft",
            Stage::Submitted => "submitted",
            Stage::UnderReview => "under_review",
            Stage::Approved => "approved",
            Stage::Rejected => "rejected",
            Stage::Feasibility => "feasibility",
            Stage::SiteSelection => "site_selection",
            Stage::Running => "running",
            Stage::Completed => "completed",
            Stage::Withdrawn => "withdrawn",
        }
    }
    /// Parses a wire name.
    pub fn parse(s: &str) -> Option<Stage> {
        Self::ALL.into_iter().find(|x| x.as_str() == s)
    }
    /// Whether queries may run (the hub's `approved` flag).
    pub fn queries_allowed(self) -> bool {
        matches!(
            self,
            Stage::Approved | Stage::Feasibility | Stage::SiteSelection | Stage::Running
        )
    }
    /// Whether the project is closed.
    pub fn closed(self) -> bool {
        matches!(self, Stage::Rejected | Stage::Completed | Stage::Withdrawn)
    }
}

/// Who may move a project from `from` to `to` (empty: the move does not exist). Sponsors must
/// also be members of the project. Submitted → under review happens by assigning reviewers;
/// under review → approved/rejected by the committee decision.
pub fn transition_roles(from: Stage, to: Stage) -> &'static [UserRole] {
    use Stage::*;
    use UserRole::*;
    match (from, to) {
        (Draft, Submitted) => &[SponsorResearcher],
        (Submitted, UnderReview) => &[AllianceAdmin],
        (UnderReview, Approved) | (UnderReview, Rejected) => &[AllianceAdmin, CommitteeMember],
        (Approved, Feasibility) | (Feasibility, SiteSelection) => &[SponsorResearcher],
        (SiteSelection, Running) | (Running, Completed) => &[SponsorResearcher, AllianceAdmin],
        (f, Withdrawn) if !f.closed() => &[SponsorResearcher, AllianceAdmin],
        _ => &[],
    }
}

/// One stage change.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transition {
    /// From.
    pub from: Stage,
    /// To.
    pub to: Stage,
    /// Who.
    pub by: UserId,
    /// In which role.
    pub role: UserRole,
    /// Why.
    pub comment: String,
    /// When.
    pub at: i64,
}

/// A committee member's scored review.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Review {
    /// The reviewer.
    pub reviewer: UserId,
    /// Criterion id → score.
    pub scores: BTreeMap<String, u8>,
    /// Recommendation: approve or not.
    pub recommend: bool,
    /// Comment.
    pub comment: String,
    /// When.
    pub at: i64,
}

/// Where an attached cohort definition came from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum CohortSource {
    /// Pasted or uploaded ATLAS JSON.
    Pasted,
    /// The phenotype library.
    Library {
        /// Library id.
        id: String,
    },
}

/// A cohort definition attached to a project, and its feasibility runs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CohortRef {
    /// Number within the project (1, 2, ...).
    pub n: u32,
    /// Name.
    pub name: String,
    /// Source.
    pub source: CohortSource,
    /// Who attached it.
    pub by: UserId,
    /// When.
    pub at: i64,
    /// Feasibility runs: (cohort count job, demographics job), newest last.
    pub runs: Vec<FeasibilityRun>,
    /// The versions this definition replaced, oldest first (the current one is version
    /// `versions.len() + 1`, described by the fields above).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub versions: Vec<CohortVersion>,
}

impl CohortRef {
    /// The current version's number (1 until the definition is first replaced).
    pub fn version(&self) -> u32 {
        self.versions.len() as u32 + 1
    }

    /// Version `v`'s name and when it was attached (None: no such version).
    pub fn version_info(&self, v: u32) -> Option<(&str, i64)> {
        match v {
            0 => None,
            v if v == self.version() => Some((&self.name, self.at)),
            v => self
                .versions
                .get(v as usize - 1)
                .map(|o| (o.name.as_str(), o.at)),
        }
    }
}

/// A replaced version of a project's cohort definition (its JSON kept beside the current one).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CohortVersion {
    /// Version number (1, 2, ...).
    pub v: u32,
    /// Name.
    pub name: String,
    /// Source.
    pub source: CohortSource,
    /// Who attached it.
    pub by: UserId,
    /// When.
    pub at: i64,
}

/// One feasibility run of a cohort on the network.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FeasibilityRun {
    /// The cohort count (attrition funnel) job.
    pub count_job: JobId,
    /// The demographics job: 10-year age bands × gender (the age pyramid and the gender split).
    /// Runs before the margins were requested crossed them with the index year.
    pub demographics_job: JobId,
    /// The index-year margin (the forecast): a demographics job by index year in one age band
    /// below 100 and one above, so its row totals are the persons per index year.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub years_job: Option<JobId>,
    /// When.
    pub at: i64,
    /// The definition version run (None: a run from before versions were kept, version 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<u32>,
    /// Each site's data date when the run was sent (`YYYY-MM-DD`, the `data_as_of` of its last
    /// poll before; a site that had reported none is absent; runs from before it was kept: empty).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub data_as_of: BTreeMap<SiteId, String>,
}

/// A site's answer to an invitation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InviteStatus {
    /// Waiting for the site's steward.
    Invited,
    /// The site takes part.
    Accepted,
    /// The site declined.
    Declined,
}

impl InviteStatus {
    /// Wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            InviteStatus::Invited => "invited",
            InviteStatus::Accepted => "accepted",
            InviteStatus::Declined => "declined",
        }
    }
}

/// A site's invitation to a project.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Invite {
    /// The site.
    pub site: SiteId,
    /// Status.
    pub status: InviteStatus,
    /// The steward's reason.
    pub reason: Option<String>,
    /// Who invited.
    pub invited_by: UserId,
    /// When.
    pub invited_at: i64,
    /// Who answered.
    pub answered_by: Option<UserId>,
    /// When.
    pub answered_at: Option<i64>,
}

/// A site's monthly enrollment report.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Report {
    /// The site.
    pub site: SiteId,
    /// `YYYY-MM`.
    pub month: String,
    /// Patients screened that month.
    pub screened: u32,
    /// Patients enrolled that month.
    pub enrolled: u32,
    /// Who reported.
    pub by: UserId,
    /// When.
    pub at: i64,
}

/// One collection of the sites' recruitment counts from their pre-screening marks
/// (the `recruitment` module).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecruitmentRequest {
    /// The recruitment job.
    pub job: JobId,
    /// The cohort (its number in the project) whose list the marks are on.
    pub cohort: u32,
    /// Who asked.
    pub by: UserId,
    /// When.
    pub at: i64,
}

/// A project's alliance record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProjectFile {
    /// The hub project.
    pub project: ProjectId,
    /// Title (mirrors the hub project's).
    pub title: String,
    /// The proposing institution's id.
    pub institution: String,
    /// The sponsor researcher who created it.
    pub sponsor: UserId,
    /// Summary.
    pub summary: String,
    /// Enrollment target (patients).
    pub target: u32,
    /// Stage.
    pub stage: Stage,
    /// Every stage change.
    pub history: Vec<Transition>,
    /// Assigned reviewers.
    pub reviewers: Vec<UserId>,
    /// Submitted reviews.
    pub reviews: Vec<Review>,
    /// Attached cohorts.
    pub cohorts: Vec<CohortRef>,
    /// Site invitations.
    pub invites: Vec<Invite>,
    /// Enrollment reports typed by the sites (each overrides its site and month of the marks).
    pub reports: Vec<Report>,
    /// Every collection of the sites' recruitment counts from their pre-screening marks
    /// (the `recruitment` module), oldest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub recruitment: Vec<RecruitmentRequest>,
    /// Created.
    pub created_at: i64,
}

/// A new project's fields as submitted.
#[derive(Clone, Debug, Default)]
pub struct ProjectForm {
    /// Identifier.
    pub id: String,
    /// Title.
    pub title: String,
    /// Summary.
    pub summary: String,
    /// Enrollment target.
    pub target: String,
}

/// A sponsor researcher of an approved member institution creates a project (draft). Creates
/// the hub project (not approved, the sponsor as member) and its pipeline record together.
pub fn create_project(
    store: &dyn HubStore,
    f: &ProjectForm,
    by: &User,
    now: i64,
) -> Result<ProjectFile, Vec<Refusal>> {
    if by.role != UserRole::SponsorResearcher {
        return Err(vec![Refusal::Forbidden]);
    }
    let mut errs = Vec::new();
    let id: Option<ProjectId> = f.id.trim().parse().ok().filter(|_| id_ok(f.id.trim()));
    if id.is_none() {
        errs.push(field("id", "form.err_id"));
    }
    if !text_ok(&f.title, 200, false) {
        errs.push(field("title", "form.err_text"));
    }
    if !text_ok(&f.summary, 4000, true) {
        errs.push(field("summary", "form.err_long_text"));
    }
    let target: Option<u32> = f
        .target
        .trim()
        .parse()
        .ok()
        .filter(|t| (1..=1_000_000).contains(t));
    if target.is_none() {
        errs.push(field("target", "form.err_target"));
    }
    if !errs.is_empty() {
        return Err(errs);
    }
    let (Some(id), Some(target)) = (id, target) else {
        return Err(errs);
    };
    write(store, |tx| {
        let all: Vec<Institution> = scan_json(tx, INSTITUTIONS, "")?;
        let inst = institution_of(by, &all)
            .filter(|i| i.status == MemberStatus::Approved)
            .ok_or(Refusal::State("state.err_no_member_institution"))?;
        if tx.get(Table::Projects, id.as_str())?.is_some() {
            return Err(field("id", "form.err_taken"));
        }
        let project = Project {
            id: id.clone(),
            title: f.title.trim().to_owned(),
            approved: false,
            members: vec![by.id.clone()],
            created_at: now,
        };
        put_json(tx, Table::Projects, id.as_str(), &project)?;
        let file = ProjectFile {
            project: id.clone(),
            title: project.title.clone(),
            institution: inst.id.clone(),
            sponsor: by.id.clone(),
            summary: f.summary.trim().to_owned(),
            target,
            stage: Stage::Draft,
            history: Vec::new(),
            reviewers: Vec::new(),
            reviews: Vec::new(),
            cohorts: Vec::new(),
            invites: Vec::new(),
            reports: Vec::new(),
            recruitment: Vec::new(),
            created_at: now,
        };
        put_json(tx, PIPELINE, id.as_str(), &file)?;
        append_audit(
            tx,
            EntryDraft::new(now, actor(by), "project.create")
                .project(id.to_string())
                .decision("draft"),
        )?;
        Ok(file.clone())
    })
    .map_err(|e| vec![e])
}

/// Every pipeline record.
pub fn project_files(store: &dyn HubStore) -> Result<Vec<ProjectFile>, StoreError> {
    read(store, |tx| scan_json(tx, PIPELINE, ""))
}

/// One pipeline record.
pub fn project_file(store: &dyn HubStore, id: &str) -> Result<Option<ProjectFile>, StoreError> {
    read(store, |tx| get_json(tx, PIPELINE, id))
}

/// Whether `user` may see project `p`: oversight roles, the committee, members, and the
/// stewards and investigators of invited sites.
pub fn can_see(user: &User, p: &ProjectFile, members: &[UserId]) -> bool {
    match user.role {
        UserRole::AllianceAdmin | UserRole::CommitteeMember | UserRole::Auditor => true,
        UserRole::SponsorResearcher => members.contains(&user.id),
        UserRole::SiteDataSteward | UserRole::SiteInvestigator => {
            members.contains(&user.id)
                || p.invites
                    .iter()
                    .any(|i| Some(&i.site) == user.site.as_ref())
        }
    }
}

pub(super) fn load(tx: &mut dyn Tx, id: &ProjectId) -> Outcome<(ProjectFile, Project)> {
    let f: ProjectFile = get_json(tx, PIPELINE, id.as_str())?.ok_or(Refusal::NotFound)?;
    let p: Project = get_json(tx, Table::Projects, id.as_str())?.ok_or(Refusal::NotFound)?;
    Ok((f, p))
}

fn require_comment(comment: &str) -> Outcome<String> {
    if text_ok(comment, 2000, true) {
        Ok(comment.trim().to_owned())
    } else {
        Err(field("comment", "form.err_comment"))
    }
}

/// Moves the stage inside a transaction: checks the move exists for the role (and membership
/// for sponsors), records it, keeps the hub's approval flag in step, audits.
fn move_stage(
    tx: &mut dyn Tx,
    file: &mut ProjectFile,
    project: &mut Project,
    to: Stage,
    by: &User,
    comment: &str,
    now: i64,
) -> Outcome<()> {
    let roles = transition_roles(file.stage, to);
    if roles.is_empty() {
        return Err(Refusal::State("state.err_transition"));
    }
    if !roles.contains(&by.role) {
        return Err(Refusal::Forbidden);
    }
    if by.role == UserRole::SponsorResearcher && !project.members.contains(&by.id) {
        return Err(Refusal::Forbidden);
    }
    file.history.push(Transition {
        from: file.stage,
        to,
        by: by.id.clone(),
        role: by.role,
        comment: comment.to_owned(),
        at: now,
    });
    let from = file.stage;
    file.stage = to;
    project.approved = to.queries_allowed();
    put_json(tx, PIPELINE, file.project.as_str(), &*file)?;
    put_json(tx, Table::Projects, project.id.as_str(), &*project)?;
    append_audit(
        tx,
        EntryDraft::new(now, actor(by), "project.transition")
            .project(file.project.to_string())
            .decision(format!("{} -> {}", from.as_str(), to.as_str()))
            .released_text(comment),
    )?;
    Ok(())
}

/// A stage change with a comment, by an allowed role (see [`transition_roles`]). Moves with
/// their own forms (reviewer assignment, committee decision) also have extra conditions
/// checked here: running needs an accepted site.
pub fn transition(
    store: &dyn HubStore,
    id: &ProjectId,
    to: Stage,
    comment: &str,
    by: &User,
    now: i64,
) -> Outcome<ProjectFile> {
    let comment = require_comment(comment)?;
    write(store, |tx| {
        let (mut f, mut p) = load(tx, id)?;
        if matches!(
            (f.stage, to),
            (Stage::Submitted, Stage::UnderReview)
                | (Stage::UnderReview, Stage::Approved | Stage::Rejected)
        ) {
            return Err(Refusal::State("state.err_use_form"));
        }
        if to == Stage::Running && !f.invites.iter().any(|i| i.status == InviteStatus::Accepted) {
            return Err(Refusal::State("state.err_no_accepted_site"));
        }
        move_stage(tx, &mut f, &mut p, to, by, &comment, now)?;
        Ok(f)
    })
}

/// An alliance admin assigns reviewers (committee members who are appointed experts, none from
/// the proposing institution, at least the review quorum) and the project goes under review.
pub fn assign_reviewers(
    store: &dyn HubStore,
    id: &ProjectId,
    reviewers: &[UserId],
    comment: &str,
    by: &User,
    now: i64,
) -> Outcome<ProjectFile> {
    let comment = require_comment(comment)?;
    if !transition_roles(Stage::Submitted, Stage::UnderReview).contains(&by.role) {
        return Err(Refusal::Forbidden);
    }
    if reviewers.is_empty() || reviewers.len() > 10 {
        return Err(field("reviewers", "form.err_reviewers"));
    }
    write(store, |tx| {
        let (mut f, mut p) = load(tx, id)?;
        if f.stage != Stage::Submitted {
            return Err(Refusal::State("state.err_transition"));
        }
        let insts: Vec<Institution> = scan_json(tx, INSTITUTIONS, "")?;
        let proposer = insts.iter().find(|i| i.id == f.institution);
        for r in reviewers {
            let u: User = get_json(tx, Table::Users, r.as_str())?
                .ok_or_else(|| field("reviewers", "form.err_no_user"))?;
            let e: Option<Expert> = get_json(tx, EXPERTS, r.as_str())?;
            let Some(e) = e.filter(|e| u.role == UserRole::CommitteeMember && e.active(now)) else {
                return Err(Refusal::Field {
                    field: "reviewers",
                    key: "form.err_not_expert",
                    args: vec![("user", r.to_string())],
                });
            };
            let conflict = e.institution == f.institution
                || institution_of(&u, &insts).is_some_and(|i| i.id == f.institution)
                || proposer.is_some_and(|pi| {
                    u.institution
                        .as_deref()
                        .is_some_and(|n| n.trim().eq_ignore_ascii_case(&pi.name))
                });
            if conflict {
                return Err(Refusal::Field {
                    field: "reviewers",
                    key: "form.err_conflict",
                    args: vec![("user", r.to_string())],
                });
            }
        }
        let mut rs = reviewers.to_vec();
        rs.sort();
        rs.dedup();
        let q = quorum_in(tx)?;
        if rs.len() < q as usize {
            return Err(Refusal::Field {
                field: "reviewers",
                key: "form.err_below_quorum",
                args: vec![("quorum", q.to_string())],
            });
        }
        f.reviewers = rs;
        append_audit(
            tx,
            EntryDraft::new(now, actor(by), "project.assign_reviewers")
                .project(id.to_string())
                .decision(
                    f.reviewers
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join(","),
                ),
        )?;
        move_stage(tx, &mut f, &mut p, Stage::UnderReview, by, &comment, now)?;
        Ok(f)
    })
}

/// An assigned reviewer scores the project on every criterion (replacing an earlier review).
pub fn submit_review(
    store: &dyn HubStore,
    id: &ProjectId,
    scores: &BTreeMap<String, String>,
    recommend: &str,
    comment: &str,
    by: &User,
    now: i64,
) -> Result<ProjectFile, Vec<Refusal>> {
    let crit = criteria(store).map_err(|e| vec![e.into()])?;
    let mut errs = Vec::new();
    let mut parsed = BTreeMap::new();
    for c in &crit {
        match scores.get(&c.id).and_then(|s| s.trim().parse::<u8>().ok()) {
            Some(v) if (1..=c.max).contains(&v) => {
                parsed.insert(c.id.clone(), v);
            }
            _ => errs.push(Refusal::Field {
                field: "scores",
                key: "form.err_score",
                args: vec![("criterion", c.id.clone()), ("max", c.max.to_string())],
            }),
        }
    }
    let recommend = match recommend {
        "approve" => Some(true),
        "reject" => Some(false),
        _ => {
            errs.push(field("recommend", "form.err_choice"));
            None
        }
    };
    if !text_ok(comment, 4000, true) {
        errs.push(field("comment", "form.err_comment"));
    }
    if !errs.is_empty() {
        return Err(errs);
    }
    let recommend = recommend.unwrap_or(false);
    write(store, |tx| {
        let (mut f, _) = load(tx, id)?;
        if !f.reviewers.contains(&by.id) {
            return Err(Refusal::Forbidden);
        }
        if f.stage != Stage::UnderReview {
            return Err(Refusal::State("state.err_not_under_review"));
        }
        f.reviews.retain(|r| r.reviewer != by.id);
        f.reviews.push(Review {
            reviewer: by.id.clone(),
            scores: parsed.clone(),
            recommend,
            comment: comment.trim().to_owned(),
            at: now,
        });
        put_json(tx, PIPELINE, id.as_str(), &f)?;
        append_audit(
            tx,
            EntryDraft::new(now, actor(by), "project.review")
                .project(id.to_string())
                .decision(if recommend {
                    "recommend approve"
                } else {
                    "recommend reject"
                }),
        )?;
        Ok(f)
    })
    .map_err(|e| vec![e])
}

/// The committee decision (a committee member or admin) once the quorum of assigned reviewers
/// (see [`super::quorum::quorum`]) has reviewed.
pub fn decide_project(
    store: &dyn HubStore,
    id: &ProjectId,
    approve: bool,
    comment: &str,
    by: &User,
    now: i64,
) -> Outcome<ProjectFile> {
    let comment = require_comment(comment)?;
    write(store, |tx| {
        let (mut f, mut p) = load(tx, id)?;
        if f.stage != Stage::UnderReview {
            return Err(Refusal::State("state.err_not_under_review"));
        }
        let done = f
            .reviews
            .iter()
            .filter(|v| f.reviewers.contains(&v.reviewer))
            .count();
        if done < quorum_in(tx)? as usize {
            return Err(Refusal::State("state.err_reviews_missing"));
        }
        let to = if approve {
            Stage::Approved
        } else {
            Stage::Rejected
        };
        move_stage(tx, &mut f, &mut p, to, by, &comment, now)?;
        Ok(f)
    })
}
