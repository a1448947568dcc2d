//! Member institutions: applications, the admin's decision with its reason, the directory.

use qiao_hub::audit::{Actor, EntryDraft};
use qiao_hub::model::User;
use qiao_hub::protocol::{SiteId, UserId, UserRole};
use qiao_hub::store::{append_audit, get_json, put_json, scan_json, Table};
use qiao_hub::{HubStore, StoreError};
use serde::{Deserialize, Serialize};

use super::input::{id_ok, text_ok};
use super::refusal::{field, Outcome, Refusal};
use super::tables::{actor, read, write, INSTITUTIONS};

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
    /// The applicant's reference (to look up the status without an account).
    #[serde(default)]
    pub reference: Option<String>,
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
        reference: Some(new_reference()),
    };
    write(store, |tx| {
        if tx.get(INSTITUTIONS, &inst.id)?.is_some() {
            return Err(field("id", "form.err_taken"));
        }
        if let Some(s) = &inst.site {
            if tx.get(Table::Sites, s.as_str())?.is_none() {
                return Err(field("site", "form.err_no_site"));
            }
        }
        put_json(tx, INSTITUTIONS, &inst.id, &inst)?;
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
        let mut inst: Institution = get_json(tx, INSTITUTIONS, id)?.ok_or(Refusal::NotFound)?;
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
        put_json(tx, INSTITUTIONS, id, &inst)?;
        append_audit(
            tx,
            EntryDraft::new(now, actor(by), "institution.decide")
                .decision(format!("{id}: {}", inst.status.as_str())),
        )?;
        Ok(inst.clone())
    })
}

/// A fresh application reference: `Q-` and 12 characters of an unambiguous alphabet (60 bits
/// of randomness: the reference is what lets an applicant see the status).
fn new_reference() -> String {
    const ALPHABET: &[u8] = b"23456789ABCDEFGHJKLMNPQRSTUVWXYZ";
    let secret = qiao_hub::util::random_token("");
    let bytes = secret.as_bytes();
    let mut s = String::from("Q-");
    for i in 0..12 {
        let v = u8::from_str_radix(&secret[2 * i..2 * i + 2], 16).unwrap_or(bytes[i]);
        s.push(char::from(ALPHABET[usize::from(v) % ALPHABET.len()]));
    }
    s
}

/// The application with this reference (what its applicant may see).
pub fn application_status(
    store: &dyn HubStore,
    reference: &str,
) -> Result<Option<Institution>, StoreError> {
    let r = reference.trim().to_ascii_uppercase();
    if r.len() != 14 || !r.starts_with("Q-") {
        return Ok(None);
    }
    Ok(institutions(store)?
        .into_iter()
        .find(|i| i.reference.as_deref() == Some(r.as_str())))
}

/// Every institution, by id.
pub fn institutions(store: &dyn HubStore) -> Result<Vec<Institution>, StoreError> {
    read(store, |tx| scan_json(tx, INSTITUTIONS, ""))
}

/// One institution.
pub fn institution(store: &dyn HubStore, id: &str) -> Result<Option<Institution>, StoreError> {
    read(store, |tx| get_json(tx, INSTITUTIONS, id))
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
