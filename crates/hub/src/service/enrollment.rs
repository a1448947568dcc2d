//! Site enrollment: one-time tokens.

use qiao_audit::Actor;
use qiao_protocol::{SiteId, StoredToken};

use crate::store::{HubStore, StoreError};
use crate::util::now;

/// Shortest and longest lifetime of an enrollment token, in seconds.
pub const ENROLLMENT_TTL_SECS: std::ops::RangeInclusive<i64> = 60..=30 * 86_400;

/// Issues a one-time enrollment token for `site` (replacing any earlier one): the token (shown
/// once) and what the hub keeps of it.
pub fn issue_enrollment_token(
    store: &dyn HubStore,
    site: &SiteId,
    ttl_secs: i64,
    who: &Actor,
) -> Result<(String, StoredToken), StoreError> {
    let t = now();
    let (token, stored) = StoredToken::issue(t, ttl_secs);
    store.set_enrollment_token(site, &stored, who, t)?;
    Ok((token.expose_secret(), stored))
}
