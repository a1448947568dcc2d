//! The committee's review quorum: how many reviews a decision needs (kept in the hub's `meta`
//! table; set by alliance admins, audited).

use qiao_hub::audit::EntryDraft;
use qiao_hub::model::User;
use qiao_hub::protocol::UserRole;
use qiao_hub::store::{append_audit, get_json, put_json, Table, Tx};
use qiao_hub::{HubStore, StoreError};

use super::refusal::{field, Outcome, Refusal};
use super::tables::{actor, read, write};

const META_QUORUM: &str = "review_quorum";

/// The quorum when none is configured: two reviews.
pub const DEFAULT_QUORUM: u32 = 2;

/// The largest quorum (no more reviewers can be assigned).
pub const MAX_QUORUM: u32 = 10;

/// How many reviews the committee decision needs (also the fewest reviewers an assignment may
/// name).
pub fn quorum(store: &dyn HubStore) -> Result<u32, StoreError> {
    read(store, |tx| quorum_in(tx))
}

/// [`quorum`] inside a transaction.
pub(super) fn quorum_in(tx: &mut dyn Tx) -> Result<u32, StoreError> {
    Ok(get_json(tx, Table::Meta, META_QUORUM)?.unwrap_or(DEFAULT_QUORUM))
}

/// Sets the quorum, 1 to [`MAX_QUORUM`] (admins only; audited).
pub fn set_quorum(store: &dyn HubStore, text: &str, by: &User, now: i64) -> Outcome<u32> {
    if by.role != UserRole::AllianceAdmin {
        return Err(Refusal::Forbidden);
    }
    let q: u32 = text
        .trim()
        .parse()
        .ok()
        .filter(|q| (1..=MAX_QUORUM).contains(q))
        .ok_or_else(|| field("quorum", "form.err_quorum_value"))?;
    write(store, |tx| {
        put_json(tx, Table::Meta, META_QUORUM, &q)?;
        append_audit(
            tx,
            EntryDraft::new(now, actor(by), "review.quorum").decision(q.to_string()),
        )?;
        Ok(q)
    })
}
