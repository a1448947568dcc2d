//! The expert registry: committee appointments (term, specialty) of hub users.

use qiao_hub::audit::EntryDraft;
use qiao_hub::model::User;
use qiao_hub::protocol::{UserId, UserRole};
use qiao_hub::store::{append_audit, get_json, put_json, scan_json, Table};
use qiao_hub::{HubStore, StoreError};
use serde::{Deserialize, Serialize};

use super::input::text_ok;
use super::institutions::{Institution, MemberStatus};
use super::refusal::{field, Refusal};
use super::tables::{actor, read, write, EXPERTS, INSTITUTIONS};

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
        if get_json::<Institution>(tx, INSTITUTIONS, f.institution.trim())?
            .is_none_or(|i| i.status != MemberStatus::Approved)
        {
            return Err(field("institution", "form.err_no_institution"));
        }
        let mut e = get_json::<Expert>(tx, EXPERTS, user.as_str())?.unwrap_or(Expert {
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
        put_json(tx, EXPERTS, user.as_str(), &e)?;
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
    read(store, |tx| scan_json(tx, EXPERTS, ""))
}
