//! The committee's review criteria (names in both languages, the score scale), kept in the
//! hub's `meta` table.

use qiao_hub::audit::EntryDraft;
use qiao_hub::model::User;
use qiao_hub::protocol::UserRole;
use qiao_hub::store::{append_audit, get_json, put_json, Table};
use qiao_hub::{HubStore, StoreError};
use serde::{Deserialize, Serialize};

use super::input::{id_ok, text_ok};
use super::refusal::{field, Outcome, Refusal};
use super::tables::{actor, read, write};

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
