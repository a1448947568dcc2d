//! The alliance domain, without HTTP: member institutions, the expert registry and committee
//! reviews, the project pipeline state machine, feasibility cohorts, site selection, enrollment
//! reports and the phenotype library — stored in the hub's [`HubStore`] tables (`institutions`,
//! `experts`, `pipeline`, `cohorts`, `library`; schema version 2). Every change runs in one
//! store transaction that also appends its audit entry, so a refused or failed change leaves
//! nothing behind.
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

/// Runs `f` in one write transaction; a refusal inside rolls everything back.
fn write<R>(store: &dyn HubStore, mut f: impl FnMut(&mut dyn Tx) -> Outcome<R>) -> Outcome<R> {
    let mut out: Option<Outcome<R>> = None;
    let r = store.write(&mut |tx| match f(tx) {
        Ok(v) => {
            out = Some(Ok(v));
            Ok(())
        }
        Err(Refusal::Store(e)) => Err(e),
        Err(other) => {
            out = Some(Err(other));
            // Abort the transaction: nothing half-saved.
            Err(StoreError::Invalid("refused".into()))
        }
    });
    match (r, out) {
        (_, Some(Err(refusal))) => Err(refusal),
        (Ok(()), Some(Ok(v))) => Ok(v),
        (Err(e), _) => Err(Refusal::Store(e)),
        (Ok(()), None) => Err(Refusal::Store(StoreError::Backend("no result".into()))),
    }
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

// ---- institutions ----------------------------------------------------------------------------

/// What kind of member an institution is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InstitutionKind {
    /// A hospital (may run a site).
    Hospital,
    /// A life-science enterprise (sponsor).
    Enterprise,
    /// A research institute.
    ResearchInstitute,
    /// A government body.
    GovernmentBody,
}

impl InstitutionKind {
    /// Every kind.
    pub const ALL: [InstitutionKind; 4] = [
        InstitutionKind::Hospital,
        InstitutionKind::Enterprise,
        InstitutionKind::ResearchInstitute,
        InstitutionKind::GovernmentBody,
    ];
    /// Wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            InstitutionKind::Hospital => "hospital",
            InstitutionKind::Enterprise => "enterprise",
            InstitutionKind::ResearchInstitute => "research_institute",
            InstitutionKind::GovernmentBody => "government_body",
        }
    }
    /// Parses a wire name.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// Membership status.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MemberStatus {
    /// Applied, waiting for the alliance admins.
    Applied,
    /// A member.
    Approved,
    /// Refused (with a reason).
    Rejected,
}

impl MemberStatus {
    /// Wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            MemberStatus::Applied => "applied",
            MemberStatus::Approved => "approved",
            MemberStatus::Rejected => "rejected",
        }
    }
}

/// A member institution (or an applicant).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Institution {
    /// Identifier (`[a-z0-9_-]`).
    pub id: String,
    /// Name.
    pub name: String,
    /// Kind.
    pub kind: InstitutionKind,
    /// City or region.
    pub region: String,
    /// Contact e-mail.
    pub contact: String,
    /// What it brings to the alliance.
    pub description: String,
    /// The hub site it runs (hospitals).
    pub site: Option<SiteId>,
    /// Status.
    pub status: MemberStatus,
    /// The admin's reason (rejections, and optionally approvals).
    pub reason: Option<String>,
    /// Who applied (if signed in).
    pub applied_by: Option<UserId>,
    /// When.
    pub applied_at: i64,
    /// When decided.
    pub decided_at: Option<i64>,
}

/// An application's fields as submitted.
#[derive(Clone, Debug, Default)]
pub struct Application {
    /// Identifier.
    pub id: String,
    /// Name.
    pub name: String,
    /// Kind (wire name).
    pub kind: String,
    /// Region.
    pub region: String,
    /// Contact e-mail.
    pub contact: String,
    /// Description.
    pub description: String,
    /// Site id (optional).
    pub site: String,
}

/// Validates an application; every field's error at once.
pub fn check_application(a: &Application) -> Vec<Refusal> {
    let mut errs = Vec::new();
    if !id_ok(&a.id) {
        errs.push(field("id", "form.err_id"));
    }
    if !text_ok(&a.name, 200, false) {
        errs.push(field("name", "form.err_text"));
    }
    if InstitutionKind::parse(&a.kind).is_none() {
        errs.push(field("kind", "form.err_choice"));
    }
    if !text_ok(&a.region, 100, false) {
        errs.push(field("region", "form.err_text"));
    }
    let c = a.contact.trim();
    let email = c.len() <= 200
        && c.split_once('@').is_some_and(|(u, d)| {
            !u.is_empty() && d.contains('.') && !d.starts_with('.') && !d.ends_with('.')
        })
        && !c.chars().any(|ch| ch.is_whitespace() || ch.is_control());
    if !email {
        errs.push(field("contact", "form.err_email"));
    }
    if !text_ok(&a.description, 2000, true) {
        errs.push(field("description", "form.err_long_text"));
    }
    if !a.site.is_empty() && a.site.parse::<SiteId>().is_err() {
        errs.push(field("site", "form.err_id"));
    }
    errs
}

/// Files an application (anyone, signed in or not).
pub fn apply(
    store: &dyn HubStore,
    a: &Application,
    by: Option<&User>,
    now: i64,
) -> Result<Institution, Vec<Refusal>> {
    let errs = check_application(a);
    if !errs.is_empty() {
        return Err(errs);
    }
    let inst = Institution {
        id: a.id.trim().to_owned(),
        name: a.name.trim().to_owned(),
        kind: InstitutionKind::parse(&a.kind).unwrap_or(InstitutionKind::Hospital),
        region: a.region.trim().to_owned(),
        contact: a.contact.trim().to_owned(),
        description: a.description.trim().to_owned(),
        site: a.site.parse().ok(),
        status: MemberStatus::Applied,
        reason: None,
        applied_by: by.map(|u| u.id.clone()),
        applied_at: now,
        decided_at: None,
    };
    write(store, |tx| {
        if tx.get(Table::Institutions, &inst.id)?.is_some() {
            return Err(field("id", "form.err_taken"));
        }
        if let Some(s) = &inst.site {
            if tx.get(Table::Sites, s.as_str())?.is_none() {
                return Err(field("site", "form.err_no_site"));
            }
        }
        put_json(tx, Table::Institutions, &inst.id, &inst)?;
        let who = by.map(actor).unwrap_or(Actor::System);
        append_audit(
            tx,
            EntryDraft::new(now, who, "institution.apply").decision(format!(
                "{} ({})",
                inst.id,
                inst.kind.as_str()
            )),
        )?;
        Ok(inst.clone())
    })
    .map_err(|e| vec![e])
}

/// An alliance admin approves or rejects an application (a reason is required to reject).
pub fn decide_institution(
    store: &dyn HubStore,
    id: &str,
    approve: bool,
    reason: &str,
    by: &User,
    now: i64,
) -> Outcome<Institution> {
    if by.role != UserRole::AllianceAdmin {
        return Err(Refusal::Forbidden);
    }
    let reason = reason.trim();
    if !approve && !text_ok(reason, 1000, true) {
        return Err(field("reason", "form.err_reason"));
    }
    if !reason.is_empty() && !text_ok(reason, 1000, true) {
        return Err(field("reason", "form.err_long_text"));
    }
    write(store, |tx| {
        let mut inst: Institution =
            get_json(tx, Table::Institutions, id)?.ok_or(Refusal::NotFound)?;
        if inst.status != MemberStatus::Applied {
            return Err(Refusal::State("state.err_decided"));
        }
        inst.status = if approve {
            MemberStatus::Approved
        } else {
            MemberStatus::Rejected
        };
        inst.reason = (!reason.is_empty()).then(|| reason.to_owned());
        inst.decided_at = Some(now);
        put_json(tx, Table::Institutions, id, &inst)?;
        append_audit(
            tx,
            EntryDraft::new(now, actor(by), "institution.decide")
                .decision(format!("{id}: {}", inst.status.as_str())),
        )?;
        Ok(inst.clone())
    })
}

/// Every institution, by id.
pub fn institutions(store: &dyn HubStore) -> Result<Vec<Institution>, StoreError> {
    read(store, |tx| scan_json(tx, Table::Institutions, ""))
}

/// One institution.
pub fn institution(store: &dyn HubStore, id: &str) -> Result<Option<Institution>, StoreError> {
    read(store, |tx| get_json(tx, Table::Institutions, id))
}

/// The institution a user belongs to: the user's `institution` matches an institution's id or
/// name (case-insensitively), or the user's site is the institution's site.
pub fn institution_of<'a>(user: &User, all: &'a [Institution]) -> Option<&'a Institution> {
    all.iter().find(|i| {
        user.institution.as_deref().is_some_and(|n| {
            n.trim().eq_ignore_ascii_case(&i.id) || n.trim().eq_ignore_ascii_case(&i.name)
        }) || (user.site.is_some() && user.site == i.site)
    })
}

// ---- experts ---------------------------------------------------------------------------------

/// One appointment to the scientific committee.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Appointment {
    /// First day (unix seconds, midnight UTC).
    pub start: i64,
    /// Last day (unix seconds, midnight UTC), inclusive.
    pub end: i64,
    /// The appointment letter's reference.
    pub letter: String,
}

/// An expert of the registry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Expert {
    /// The expert's user account (a committee member) — also the registry key.
    pub user: UserId,
    /// Full name.
    pub name: String,
    /// Institution id.
    pub institution: String,
    /// Fields of expertise.
    pub fields: Vec<String>,
    /// Appointments, oldest first.
    pub appointments: Vec<Appointment>,
}

impl Expert {
    /// Whether an appointment covers `now`.
    pub fn active(&self, now: i64) -> bool {
        self.appointments
            .iter()
            .any(|a| a.start <= now && now < a.end.saturating_add(86_400))
    }
}

/// An expert's fields as submitted.
#[derive(Clone, Debug, Default)]
pub struct ExpertForm {
    /// User id of the committee member.
    pub user: String,
    /// Name.
    pub name: String,
    /// Institution id.
    pub institution: String,
    /// Comma-separated fields of expertise.
    pub fields: String,
    /// Appointment start (`YYYY-MM-DD`).
    pub start: String,
    /// Appointment end (`YYYY-MM-DD`).
    pub end: String,
    /// Letter reference.
    pub letter: String,
}

/// Registers an expert with a first appointment, or adds an appointment (a new term) to an
/// existing expert (admins only).
pub fn appoint_expert(
    store: &dyn HubStore,
    f: &ExpertForm,
    by: &User,
    now: i64,
) -> Result<Expert, Vec<Refusal>> {
    if by.role != UserRole::AllianceAdmin {
        return Err(vec![Refusal::Forbidden]);
    }
    let mut errs = Vec::new();
    let user: Option<UserId> = UserId::new(f.user.trim().to_owned()).ok();
    if user.is_none() {
        errs.push(field("user", "form.err_id"));
    }
    if !text_ok(&f.name, 200, false) {
        errs.push(field("name", "form.err_text"));
    }
    let fields: Vec<String> = f
        .fields
        .split([',', '，', ';'])
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .collect();
    if fields.is_empty() || fields.iter().any(|s| !text_ok(s, 100, false)) || fields.len() > 20 {
        errs.push(field("fields", "form.err_fields"));
    }
    let start = qiao_web::i18n::parse_ymd(&f.start);
    let end = qiao_web::i18n::parse_ymd(&f.end);
    if start.is_none() {
        errs.push(field("start", "form.err_date"));
    }
    match (start, end) {
        (_, None) => errs.push(field("end", "form.err_date")),
        (Some(s), Some(e)) if e < s => errs.push(field("end", "form.err_end_before_start")),
        _ => {}
    }
    if !text_ok(&f.letter, 100, false) {
        errs.push(field("letter", "form.err_text"));
    }
    if !errs.is_empty() {
        return Err(errs);
    }
    let (Some(user), Some(start), Some(end)) = (user, start, end) else {
        return Err(vec![field("user", "form.err_id")]);
    };
    write(store, |tx| {
        let u: User = get_json(tx, Table::Users, user.as_str())?
            .ok_or_else(|| field("user", "form.err_no_user"))?;
        if u.role != UserRole::CommitteeMember {
            return Err(field("user", "form.err_not_committee"));
        }
        if get_json::<Institution>(tx, Table::Institutions, f.institution.trim())?
            .is_none_or(|i| i.status != MemberStatus::Approved)
        {
            return Err(field("institution", "form.err_no_institution"));
        }
        let mut e = get_json::<Expert>(tx, Table::Experts, user.as_str())?.unwrap_or(Expert {
            user: user.clone(),
            name: String::new(),
            institution: String::new(),
            fields: Vec::new(),
            appointments: Vec::new(),
        });
        e.name = f.name.trim().to_owned();
        e.institution = f.institution.trim().to_owned();
        e.fields = fields.clone();
        if e.appointments
            .iter()
            .any(|a| a.start <= end && start <= a.end)
        {
            return Err(field("start", "form.err_overlap"));
        }
        e.appointments.push(Appointment {
            start,
            end,
            letter: f.letter.trim().to_owned(),
        });
        e.appointments.sort_by_key(|a| a.start);
        put_json(tx, Table::Experts, user.as_str(), &e)?;
        append_audit(
            tx,
            EntryDraft::new(now, actor(by), "expert.appoint").decision(format!(
                "{user}: {} to {} ({})",
                qiao_web::i18n::ymd_value(start),
                qiao_web::i18n::ymd_value(end),
                f.letter.trim()
            )),
        )?;
        Ok(e.clone())
    })
    .map_err(|e| vec![e])
}

/// Every expert.
pub fn experts(store: &dyn HubStore) -> Result<Vec<Expert>, StoreError> {
    read(store, |tx| scan_json(tx, Table::Experts, ""))
}

// ---- review criteria -------------------------------------------------------------------------

/// A review criterion, scored 1 to `max`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Criterion {
    /// Identifier.
    pub id: String,
    /// English name.
    pub en: String,
    /// Chinese name.
    pub zh: String,
    /// Highest score.
    pub max: u8,
}

const META_CRITERIA: &str = "review_criteria";

/// The default criteria.
pub fn default_criteria() -> Vec<Criterion> {
    let c = |id: &str, en: &str, zh: &str| Criterion {
        id: id.into(),
        en: en.into(),
        zh: zh.into(),
        max: 5,
    };
    vec![
        c("merit", "Scientific merit", "科学价值"),
        c(
            "feasibility",
            "Feasibility in the network",
            "在网络中的可行性",
        ),
        c("ethics", "Ethics and data protection", "伦理与数据保护"),
    ]
}

/// The configured review criteria.
pub fn criteria(store: &dyn HubStore) -> Result<Vec<Criterion>, StoreError> {
    read(store, |tx| {
        Ok(get_json(tx, Table::Meta, META_CRITERIA)?.unwrap_or_else(default_criteria))
    })
}

/// Replaces the criteria from lines `id | English | 中文 | max` (admins only).
pub fn set_criteria(
    store: &dyn HubStore,
    text: &str,
    by: &User,
    now: i64,
) -> Outcome<Vec<Criterion>> {
    if by.role != UserRole::AllianceAdmin {
        return Err(Refusal::Forbidden);
    }
    let mut out: Vec<Criterion> = Vec::new();
    for (i, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let parts: Vec<&str> = line.split('|').map(str::trim).collect();
        let bad = || Refusal::Field {
            field: "criteria",
            key: "form.err_criteria_line",
            args: vec![("line", (i + 1).to_string())],
        };
        let [id, en, zh, max] = parts.as_slice() else {
            return Err(bad());
        };
        let max: u8 = max.parse().map_err(|_| bad())?;
        if !id_ok(id)
            || !text_ok(en, 100, false)
            || !text_ok(zh, 100, false)
            || !(2..=10).contains(&max)
            || out.iter().any(|c| c.id == *id)
        {
            return Err(bad());
        }
        out.push(Criterion {
            id: (*id).into(),
            en: (*en).into(),
            zh: (*zh).into(),
            max,
        });
    }
    if out.is_empty() || out.len() > 12 {
        return Err(field("criteria", "form.err_criteria_count"));
    }
    write(store, |tx| {
        put_json(tx, Table::Meta, META_CRITERIA, &out)?;
        let ids: Vec<&str> = out.iter().map(|c| c.id.as_str()).collect();
        append_audit(
            tx,
            EntryDraft::new(now, actor(by), "review.criteria").decision(ids.join(",")),
        )?;
        Ok(out.clone())
    })
}

// ---- the project pipeline --------------------------------------------------------------------

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
}

/// One feasibility run of a cohort on the network.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FeasibilityRun {
    /// The cohort count (attrition funnel) job.
    pub count_job: JobId,
    /// The demographics job (5-year age bands, gender, index year).
    pub demographics_job: JobId,
    /// When.
    pub at: i64,
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
    /// Enrollment reports.
    pub reports: Vec<Report>,
    /// Created.
    pub created_at: i64,
}

impl ProjectFile {
    /// Total enrolled so far.
    pub fn enrolled(&self) -> u64 {
        self.reports.iter().map(|r| u64::from(r.enrolled)).sum()
    }
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
        let all: Vec<Institution> = scan_json(tx, Table::Institutions, "")?;
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
            created_at: now,
        };
        put_json(tx, Table::Pipeline, id.as_str(), &file)?;
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
    read(store, |tx| scan_json(tx, Table::Pipeline, ""))
}

/// One pipeline record.
pub fn project_file(store: &dyn HubStore, id: &str) -> Result<Option<ProjectFile>, StoreError> {
    read(store, |tx| get_json(tx, Table::Pipeline, id))
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

fn load(tx: &mut dyn Tx, id: &ProjectId) -> Outcome<(ProjectFile, Project)> {
    let f: ProjectFile = get_json(tx, Table::Pipeline, id.as_str())?.ok_or(Refusal::NotFound)?;
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
    put_json(tx, Table::Pipeline, file.project.as_str(), &*file)?;
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
/// the proposing institution) and the project goes under review.
pub fn assign_reviewers(
    store: &dyn HubStore,
    id: &ProjectId,
    reviewers: &[UserId],
    comment: &str,
    by: &User,
    now: i64,
) -> Outcome<ProjectFile> {
    let comment = require_comment(comment)?;
    if reviewers.is_empty() || reviewers.len() > 10 {
        return Err(field("reviewers", "form.err_reviewers"));
    }
    write(store, |tx| {
        let (mut f, mut p) = load(tx, id)?;
        if f.stage != Stage::Submitted {
            return Err(Refusal::State("state.err_transition"));
        }
        let insts: Vec<Institution> = scan_json(tx, Table::Institutions, "")?;
        let proposer = insts.iter().find(|i| i.id == f.institution);
        for r in reviewers {
            let u: User = get_json(tx, Table::Users, r.as_str())?
                .ok_or_else(|| field("reviewers", "form.err_no_user"))?;
            let e: Option<Expert> = get_json(tx, Table::Experts, r.as_str())?;
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
        put_json(tx, Table::Pipeline, id.as_str(), &f)?;
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

/// The committee decision (a committee member or admin) once every assigned reviewer has
/// reviewed.
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
        if f.reviewers
            .iter()
            .any(|r| !f.reviews.iter().any(|v| &v.reviewer == r))
        {
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

// ---- feasibility -----------------------------------------------------------------------------

/// Largest cohort definition accepted, in bytes.
pub const MAX_DEFINITION_BYTES: usize = qiao_hub::api::MAX_DEFINITION_BYTES;

/// Validates ATLAS JSON with the cohort engine's parser; the error names the JSON path.
pub fn check_definition(json: &str) -> Result<serde_json::Value, Refusal> {
    if json.len() > MAX_DEFINITION_BYTES {
        return Err(field("definition", "form.err_definition_size"));
    }
    if json.trim().is_empty() {
        return Err(field("definition", "form.err_required"));
    }
    if let Err(e) = qiao_cohort::parse(json) {
        return Err(Refusal::Field {
            field: "definition",
            key: "form.err_definition",
            args: vec![("error", e.to_string())],
        });
    }
    serde_json::from_str(json).map_err(|e| Refusal::Field {
        field: "definition",
        key: "form.err_definition",
        args: vec![("error", e.to_string())],
    })
}

fn cohort_key(id: &ProjectId, n: u32) -> String {
    format!("{id}/{n:06}")
}

/// A sponsor member attaches a cohort definition (pasted JSON, or a library id) in the
/// approved or feasibility stage.
pub fn attach_cohort(
    store: &dyn HubStore,
    id: &ProjectId,
    name: &str,
    definition: &str,
    library_id: &str,
    by: &User,
    now: i64,
) -> Result<CohortRef, Vec<Refusal>> {
    let mut errs = Vec::new();
    let from_library = !library_id.trim().is_empty();
    let mut value = None;
    if !from_library {
        if !text_ok(name, 200, false) {
            errs.push(field("name", "form.err_text"));
        }
        match check_definition(definition) {
            Ok(v) => value = Some(v),
            Err(e) => errs.push(e),
        }
    }
    if !errs.is_empty() {
        return Err(errs);
    }
    write(store, |tx| {
        let (mut f, p) = load(tx, id)?;
        if by.role != UserRole::SponsorResearcher || !p.members.contains(&by.id) {
            return Err(Refusal::Forbidden);
        }
        if !matches!(f.stage, Stage::Approved | Stage::Feasibility) {
            return Err(Refusal::State("state.err_not_feasibility"));
        }
        let (name, def, source) = if from_library {
            let e: LibraryEntry =
                get_json(tx, Table::Library, &format!("d/{}", library_id.trim()))?
                    .ok_or_else(|| field("library", "form.err_no_phenotype"))?;
            (
                e.name.clone(),
                e.definition.clone(),
                CohortSource::Library { id: e.id.clone() },
            )
        } else {
            (
                name.trim().to_owned(),
                value.clone().unwrap_or_default(),
                CohortSource::Pasted,
            )
        };
        let n = f.cohorts.iter().map(|c| c.n).max().unwrap_or(0) + 1;
        let c = CohortRef {
            n,
            name,
            source,
            by: by.id.clone(),
            at: now,
            runs: Vec::new(),
        };
        put_json(tx, Table::Cohorts, &cohort_key(id, n), &def)?;
        f.cohorts.push(c.clone());
        put_json(tx, Table::Pipeline, id.as_str(), &f)?;
        append_audit(
            tx,
            EntryDraft::new(now, actor(by), "project.cohort.attach")
                .project(id.to_string())
                .decision(format!("cohort {n}: {}", c.name)),
        )?;
        Ok(c)
    })
    .map_err(|e| vec![e])
}

/// A cohort's stored definition.
pub fn cohort_definition(
    store: &dyn HubStore,
    id: &ProjectId,
    n: u32,
) -> Result<Option<serde_json::Value>, StoreError> {
    read(store, |tx| get_json(tx, Table::Cohorts, &cohort_key(id, n)))
}

/// Age band width of feasibility demographics, in years.
pub const FEASIBILITY_AGE_BAND: u8 = 10;

/// Runs a cohort on every enrolled site: a cohort count job (the attrition funnel) and a
/// demographics job (age bands, gender, index year), recorded with the cohort in the same
/// transaction. Returns the run. The caller wakes the polling sites.
pub fn run_feasibility(
    store: &dyn HubStore,
    id: &ProjectId,
    n: u32,
    by: &User,
    now: i64,
) -> Outcome<FeasibilityRun> {
    write(store, |tx| {
        let (mut f, p) = load(tx, id)?;
        if by.role != UserRole::SponsorResearcher || !p.members.contains(&by.id) {
            return Err(Refusal::Forbidden);
        }
        if f.stage != Stage::Feasibility {
            return Err(Refusal::State("state.err_not_feasibility"));
        }
        let def: serde_json::Value =
            get_json(tx, Table::Cohorts, &cohort_key(id, n))?.ok_or(Refusal::NotFound)?;
        let sites: Vec<SiteId> = scan_json::<qiao_hub::model::Site>(tx, Table::Sites, "")?
            .into_iter()
            .filter(|s| s.public_key.is_some())
            .map(|s| s.id)
            .collect();
        if sites.is_empty() {
            return Err(Refusal::State("state.err_no_sites"));
        }
        let mk = |query: QueryType| Job {
            job_id: JobId::random(),
            project_id: id.clone(),
            query,
            definition: def.clone(),
            requested_by: Requester {
                user_id: by.id.clone(),
                role: by.role,
                organization: by
                    .institution
                    .clone()
                    .unwrap_or_else(|| format!("user:{}", by.id.as_str())),
            },
            created_at: now,
        };
        let count = create_job_in(tx, &mk(QueryType::CohortCount), &sites, now)?;
        let demo = create_job_in(
            tx,
            &mk(QueryType::Demographics {
                age_band_years: FEASIBILITY_AGE_BAND,
                by_index_year: true,
            }),
            &sites,
            now,
        )?;
        let run = FeasibilityRun {
            count_job: count.job.job_id,
            demographics_job: demo.job.job_id,
            at: now,
        };
        let c = f
            .cohorts
            .iter_mut()
            .find(|c| c.n == n)
            .ok_or(Refusal::NotFound)?;
        c.runs.push(run.clone());
        put_json(tx, Table::Pipeline, id.as_str(), &f)?;
        Ok(run)
    })
}

// ---- site selection and enrollment -----------------------------------------------------------

/// The sponsor invites enrolled sites (site selection stage).
pub fn invite_sites(
    store: &dyn HubStore,
    id: &ProjectId,
    sites: &[SiteId],
    by: &User,
    now: i64,
) -> Outcome<ProjectFile> {
    if sites.is_empty() {
        return Err(field("sites", "form.err_pick_site"));
    }
    write(store, |tx| {
        let (mut f, p) = load(tx, id)?;
        if by.role != UserRole::SponsorResearcher || !p.members.contains(&by.id) {
            return Err(Refusal::Forbidden);
        }
        if f.stage != Stage::SiteSelection {
            return Err(Refusal::State("state.err_not_site_selection"));
        }
        for s in sites {
            if tx.get(Table::Sites, s.as_str())?.is_none() {
                return Err(field("sites", "form.err_no_site"));
            }
            if f.invites.iter().any(|i| &i.site == s) {
                continue;
            }
            f.invites.push(Invite {
                site: s.clone(),
                status: InviteStatus::Invited,
                reason: None,
                invited_by: by.id.clone(),
                invited_at: now,
                answered_by: None,
                answered_at: None,
            });
            append_audit(
                tx,
                EntryDraft::new(now, actor(by), "project.invite")
                    .project(id.to_string())
                    .decision(s.to_string()),
            )?;
        }
        put_json(tx, Table::Pipeline, id.as_str(), &f)?;
        Ok(f)
    })
}

/// A site's data steward accepts or declines the invitation (a reason is required to
/// decline).
pub fn answer_invite(
    store: &dyn HubStore,
    id: &ProjectId,
    accept: bool,
    reason: &str,
    by: &User,
    now: i64,
) -> Outcome<ProjectFile> {
    let reason = reason.trim();
    if !accept && !text_ok(reason, 1000, true) {
        return Err(field("reason", "form.err_reason"));
    }
    if !reason.is_empty() && !text_ok(reason, 1000, true) {
        return Err(field("reason", "form.err_long_text"));
    }
    write(store, |tx| {
        let (mut f, _) = load(tx, id)?;
        let Some(site) = by
            .site
            .clone()
            .filter(|_| by.role == UserRole::SiteDataSteward)
        else {
            return Err(Refusal::Forbidden);
        };
        if !matches!(f.stage, Stage::SiteSelection | Stage::Running) {
            return Err(Refusal::State("state.err_not_site_selection"));
        }
        let inv = f
            .invites
            .iter_mut()
            .find(|i| i.site == site)
            .ok_or(Refusal::Forbidden)?;
        if inv.status != InviteStatus::Invited {
            return Err(Refusal::State("state.err_decided"));
        }
        inv.status = if accept {
            InviteStatus::Accepted
        } else {
            InviteStatus::Declined
        };
        inv.reason = (!reason.is_empty()).then(|| reason.to_owned());
        inv.answered_by = Some(by.id.clone());
        inv.answered_at = Some(now);
        let status = inv.status;
        if accept {
            // The site's people join the project (its investigator then pre-screens at the site).
            let mut p: Project =
                get_json(tx, Table::Projects, id.as_str())?.ok_or(Refusal::NotFound)?;
            for u in scan_json::<User>(tx, Table::Users, "")? {
                if u.site.as_ref() == Some(&site) && !p.members.contains(&u.id) {
                    p.members.push(u.id);
                }
            }
            p.members.sort();
            put_json(tx, Table::Projects, id.as_str(), &p)?;
        }
        put_json(tx, Table::Pipeline, id.as_str(), &f)?;
        append_audit(
            tx,
            EntryDraft::new(now, actor(by), "project.invite.answer")
                .project(id.to_string())
                .decision(format!("{site}: {}", status.as_str())),
        )?;
        Ok(f)
    })
}

/// A steward or investigator of an accepted site reports a month's screened and enrolled
/// counts (running stage); a second report for the same month replaces the first.
pub fn report_enrollment(
    store: &dyn HubStore,
    id: &ProjectId,
    month: &str,
    screened: &str,
    enrolled: &str,
    by: &User,
    now: i64,
) -> Result<ProjectFile, Vec<Refusal>> {
    let mut errs = Vec::new();
    let month_ok = month.len() == 7
        && qiao_web::i18n::parse_ymd(&format!("{month}-01")).is_some_and(|t| t <= now);
    if !month_ok {
        errs.push(field("month", "form.err_month"));
    }
    let s: Option<u32> = screened.trim().parse().ok().filter(|v| *v <= 100_000);
    let e: Option<u32> = enrolled.trim().parse().ok().filter(|v| *v <= 100_000);
    if s.is_none() {
        errs.push(field("screened", "form.err_count"));
    }
    match (s, e) {
        (_, None) => errs.push(field("enrolled", "form.err_count")),
        (Some(s), Some(e)) if e > s => {
            errs.push(field("enrolled", "form.err_enrolled_gt_screened"))
        }
        _ => {}
    }
    if !errs.is_empty() {
        return Err(errs);
    }
    let (Some(s), Some(e)) = (s, e) else {
        return Err(errs);
    };
    write(store, |tx| {
        let (mut f, _) = load(tx, id)?;
        let Some(site) = by.site.clone().filter(|_| {
            matches!(
                by.role,
                UserRole::SiteDataSteward | UserRole::SiteInvestigator
            )
        }) else {
            return Err(Refusal::Forbidden);
        };
        if !f
            .invites
            .iter()
            .any(|i| i.site == site && i.status == InviteStatus::Accepted)
        {
            return Err(Refusal::Forbidden);
        }
        if f.stage != Stage::Running {
            return Err(Refusal::State("state.err_not_running"));
        }
        f.reports.retain(|r| !(r.site == site && r.month == month));
        f.reports.push(Report {
            site: site.clone(),
            month: month.to_owned(),
            screened: s,
            enrolled: e,
            by: by.id.clone(),
            at: now,
        });
        f.reports
            .sort_by(|a, b| (&a.month, &a.site).cmp(&(&b.month, &b.site)));
        put_json(tx, Table::Pipeline, id.as_str(), &f)?;
        append_audit(
            tx,
            EntryDraft::new(now, actor(by), "project.report")
                .project(id.to_string())
                .decision(format!("{site} {month}: screened {s}, enrolled {e}")),
        )?;
        Ok(f)
    })
    .map_err(|e| vec![e])
}

// ---- the phenotype library -------------------------------------------------------------------

/// A library definition.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LibraryEntry {
    /// Identifier (the file stem).
    pub id: String,
    /// Name.
    pub name: String,
    /// Description.
    pub description: String,
    /// The ATLAS JSON.
    pub definition: serde_json::Value,
    /// Imported when.
    pub imported_at: i64,
}

/// A library entry without its definition (lists).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LibrarySummary {
    /// Identifier.
    pub id: String,
    /// Name.
    pub name: String,
    /// Description.
    pub description: String,
}

/// What an import did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ImportReport {
    /// Definitions stored (new or replaced).
    pub imported: usize,
    /// Files refused, with the reason (file name, message with JSON path).
    pub refused: Vec<(String, String)>,
}

/// Names and descriptions from a `Cohorts.csv` beside the definitions (OHDSI PhenotypeLibrary
/// layout: columns `cohortId`, `cohortName`, and optionally `description`/`logicDescription`).
fn names_csv(dir: &std::path::Path) -> BTreeMap<String, (String, String)> {
    let mut out = BTreeMap::new();
    for candidate in ["Cohorts.csv", "cohorts.csv", "../Cohorts.csv"] {
        let Ok(text) = std::fs::read_to_string(dir.join(candidate)) else {
            continue;
        };
        let mut lines = text.lines();
        let header: Vec<String> = lines
            .next()
            .unwrap_or("")
            .split(',')
            .map(|h| h.trim().trim_matches('"').to_ascii_lowercase())
            .collect();
        let col = |names: &[&str]| header.iter().position(|h| names.contains(&h.as_str()));
        let (Some(idc), Some(namec)) = (
            col(&["cohortid", "cohort_id", "id"]),
            col(&["cohortname", "cohort_name", "name"]),
        ) else {
            continue;
        };
        let descc = col(&["description", "logicdescription", "logic_description"]);
        for line in lines {
            let cells = split_csv(line);
            if let (Some(id), Some(name)) = (cells.get(idc), cells.get(namec)) {
                let desc = descc
                    .and_then(|d| cells.get(d))
                    .cloned()
                    .unwrap_or_default();
                out.insert(id.clone(), (name.clone(), desc));
            }
        }
        break;
    }
    out
}

fn split_csv(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' if quoted && chars.peek() == Some(&'"') => {
                cur.push('"');
                chars.next();
            }
            '"' => quoted = !quoted,
            ',' if !quoted => out.push(std::mem::take(&mut cur)),
            c => cur.push(c),
        }
    }
    out.push(cur);
    out
}

/// Imports every `*.json` in `dir` (or its `cohorts/` folder) as library definitions: each is
/// validated with the cohort engine's parser (refused files are reported with the JSON path of
/// the problem); names and descriptions come from a `Cohorts.csv` if present, else from the
/// definition's `name`/`description`, else the file stem and concept set names. All valid
/// definitions are stored in one transaction.
pub fn import_library(
    store: &dyn HubStore,
    dir: &std::path::Path,
    now: i64,
) -> Result<ImportReport, String> {
    let folder = if dir.join("cohorts").is_dir() {
        dir.join("cohorts")
    } else {
        dir.to_path_buf()
    };
    let names = names_csv(&folder);
    let mut files: Vec<_> = std::fs::read_dir(&folder)
        .map_err(|e| format!("{}: {e}", folder.display()))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    let mut report = ImportReport::default();
    let mut entries = Vec::new();
    for path in files {
        let file = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let stem = path
            .file_stem()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if !id_ok(&stem.to_ascii_lowercase()) {
            report
                .refused
                .push((file, "file name is not an identifier [a-z0-9_-]".into()));
            continue;
        }
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) => {
                report.refused.push((file, e.to_string()));
                continue;
            }
        };
        let value = match check_definition(&text) {
            Ok(v) => v,
            Err(Refusal::Field { args, .. }) => {
                report.refused.push((
                    file,
                    args.into_iter()
                        .map(|(_, v)| v)
                        .collect::<Vec<_>>()
                        .join("; "),
                ));
                continue;
            }
            Err(_) => {
                report.refused.push((file, "too large or empty".into()));
                continue;
            }
        };
        let concept_sets: Vec<String> = value
            .get("ConceptSets")
            .and_then(|c| c.as_array())
            .map(|a| {
                a.iter()
                    .filter_map(|c| c.get("name").and_then(|n| n.as_str()).map(str::to_owned))
                    .take(4)
                    .collect()
            })
            .unwrap_or_default();
        let (name, description) = match names.get(&stem) {
            Some((n, d)) => (n.clone(), d.clone()),
            None => {
                let n = value
                    .get("name")
                    .and_then(|v| v.as_str())
                    .map(str::to_owned)
                    .or_else(|| concept_sets.first().map(|c| format!("{stem} · {c}")))
                    .unwrap_or_else(|| stem.clone());
                let d = value
                    .get("description")
                    .and_then(|v| v.as_str())
                    .map(str::to_owned)
                    .unwrap_or_else(|| concept_sets.join(", "));
                (n, d)
            }
        };
        entries.push(LibraryEntry {
            id: stem.to_ascii_lowercase(),
            name: name.chars().take(200).collect(),
            description: description.chars().take(2000).collect(),
            definition: value,
            imported_at: now,
        });
    }
    let n = entries.len();
    store
        .write_with(|tx| {
            for e in &entries {
                // The full entry under `d/`, its summary under `s/` (lists read only those).
                put_json(tx, Table::Library, &format!("d/{}", e.id), e)?;
                let summary = LibrarySummary {
                    id: e.id.clone(),
                    name: e.name.clone(),
                    description: e.description.clone(),
                };
                put_json(tx, Table::Library, &format!("s/{}", e.id), &summary)?;
            }
            append_audit(
                tx,
                EntryDraft::new(now, Actor::System, "library.import")
                    .decision(format!("{n} definitions from {}", dir.display())),
            )?;
            Ok(())
        })
        .map_err(|e| e.to_string())?;
    report.imported = n;
    Ok(report)
}

/// Library entries whose id, name or description contains `query` (case-insensitive; all if
/// empty), without their definitions.
pub fn search_library(
    store: &dyn HubStore,
    query: &str,
) -> Result<Vec<LibrarySummary>, StoreError> {
    let q = query.trim().to_lowercase();
    let all: Vec<LibrarySummary> = read(store, |tx| scan_json(tx, Table::Library, "s/"))?;
    Ok(all
        .into_iter()
        .filter(|e| {
            q.is_empty()
                || e.id.contains(&q)
                || e.name.to_lowercase().contains(&q)
                || e.description.to_lowercase().contains(&q)
        })
        .collect())
}

/// One library entry.
pub fn library_entry(store: &dyn HubStore, id: &str) -> Result<Option<LibraryEntry>, StoreError> {
    read(store, |tx| get_json(tx, Table::Library, &format!("d/{id}")))
}
