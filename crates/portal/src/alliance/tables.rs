//! The portal's tables in the hub's database (extension tables of the hub's store, created on
//! first write) and the transactions over them.

use qiao_hub::audit::Actor;
use qiao_hub::model::User;
use qiao_hub::store::{Table, Tx};
use qiao_hub::{HubStore, StoreError};

use super::refusal::Outcome;

/// Member institutions by id.
pub const INSTITUTIONS: Table = Table::Extension("institutions");
/// Scientific committee experts by user id.
pub const EXPERTS: Table = Table::Extension("experts");
/// Each project's pipeline record ([`ProjectFile`]) by project id.
pub const PIPELINE: Table = Table::Extension("pipeline");
/// Cohort definitions attached to projects, by `project/number`.
pub const COHORTS: Table = Table::Extension("cohorts");
/// Account invitation and password-reset links by the SHA-256 of their secret.
pub const ACCOUNT_INVITES: Table = Table::Extension("account_invites");
/// Where each site's own pages are (base URL), by site id.
pub const SITE_PAGES: Table = Table::Extension("site_pages");
/// The phenotype library: `d/ID` the full entry, `s/ID` its summary.
pub const LIBRARY: Table = Table::Extension("library");

/// Runs `f` in one write transaction; a refusal inside rolls everything back and is returned.
pub(super) fn write<R>(
    store: &dyn HubStore,
    f: impl FnMut(&mut dyn Tx) -> Outcome<R>,
) -> Outcome<R> {
    store.write_or_rollback(f)
}

pub(super) fn read<R>(
    store: &dyn HubStore,
    mut f: impl FnMut(&mut dyn Tx) -> Result<R, StoreError>,
) -> Result<R, StoreError> {
    store.read_with(|tx| f(tx))
}

pub(super) fn actor(u: &User) -> Actor {
    Actor::User(u.id.to_string())
}
