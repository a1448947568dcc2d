//! The audit heads exchanged with each poll ([`qiao_protocol::audit_head`]): the hub keeps the
//! site's signed head and answers with its own.

use qiao_protocol::{poll_audit_head, ChainOwner, SignedHead, Signer, SiteId};

use crate::store::{HeadKept, HubStore, StoreError};

/// Keeps the signed head in a verified poll's `body` (if any) and returns the hub's own
/// signed head for the answer (`None` while the hub's chain is empty). A refused or conflicting
/// site head is logged (conflicts are also audited by the store); the poll goes on.
pub fn on_poll(
    store: &dyn HubStore,
    signer: &Signer,
    site: &SiteId,
    body: &str,
    now: i64,
) -> Result<Option<SignedHead>, StoreError> {
    if let Some(head) = poll_audit_head(body) {
        match store.keep_site_head(site, &head, now)? {
            HeadKept::Unchanged | HeadKept::Kept => {}
            HeadKept::Conflict { kept_seq } => tracing::error!(
                "site {site} signed audit head #{} that does not extend its head #{kept_seq} on record: its audit log was truncated or rewritten",
                head.seq
            ),
            HeadKept::Invalid(e) => {
                tracing::warn!("site {site} sent an audit head that is refused: {e}")
            }
        }
    }
    Ok(store
        .audit_head()?
        .map(|h| signer.sign_audit_head(ChainOwner::Hub, h.seq, h.hash.0, now)))
}

/// Verifies the hub's audit chain, and that it contains every one of `heads` — the hub's
/// signed heads as a site kept them (`qiao site audit hub-heads`). Each head must carry the
/// hub's valid signature. `Err` says what is wrong: a forged head, a broken chain, or the
/// sequence numbers missing or altered.
pub fn verify_against(
    store: &dyn HubStore,
    heads: &[SignedHead],
) -> Result<Result<(qiao_audit::VerifyReport, qiao_audit::HeadsReport), String>, StoreError> {
    let key = store.signing_key()?.verifying_key();
    let mut checkpoints = Vec::with_capacity(heads.len());
    for (i, h) in heads.iter().enumerate() {
        if let Err(e) = h.verify(&ChainOwner::Hub, &key) {
            return Ok(Err(format!("head {} of {}: {e}", i + 1, heads.len())));
        }
        checkpoints.push(crate::store::audit_heads::checkpoint(h));
    }
    let (entries, report) = store.verify_audit()?;
    let report = match report {
        Ok(r) => r,
        Err(e) => return Ok(Err(e.to_string())),
    };
    Ok(qiao_audit::check_heads(&entries, &checkpoints)
        .map(|h| (report, h))
        .map_err(|e| e.to_string()))
}
