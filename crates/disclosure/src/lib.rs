//! Statistical disclosure control for Qiao sites.
//!
//! Patient data never leaves a hospital; every aggregate a site sends to the hub goes through
//! this crate first. It is a pure library — no I/O, no network, no clock (time is passed in),
//! no other Qiao crate — and it never panics on any input.
//!
//! What it does, in the order a site applies it:
//!
//! 1. **Ledger** ([`QueryLedger`]): per-user rate limit (10 queries a minute) and SHRINE's
//!    lockout (the 11th query within 30 days with the same true count locks the user out until
//!    an administrator lifts it); in DP mode, the per-user per-project ε budget.
//! 2. **Threshold**: a true count below [`Policy::min_cell_count`] (default 10) — zero
//!    included, since a released 0 discloses absence — is released only as `< threshold`.
//! 3. **Obfuscation** (SHRINE ≥ 1.22): bin to 5, add Gaussian noise σ = 6.5 clamped to ±10, bin
//!    to 5 again, with the noise drawn from `HMAC-SHA256(site secret, digest of the person
//!    set)`: the same set always gets the same answer, however the query is worded. A noised
//!    value below the threshold is raised to it.
//! 4. **Breakdowns** ([`Breakdown`]): primary suppression plus complementary suppression until
//!    no suppressed entry is computable from the margins ([`suppression_pattern`]).
//! 5. **Differential privacy** (optional, [`DpPolicy`]): exact discrete Laplace or discrete
//!    Gaussian noise from a caller-supplied CSPRNG, charged to the user's budget.
//!
//! Every number released is a [`Released`]: the value (if any) and the rule applied to it.
//! At the hub, [`network_total`] adds per-site released values into a range, never
//! subtracting.
//!
//! ```
//! use qiao_disclosure::{Discloser, Policy, QueryContext, QueryLedger, Released, SiteSecret};
//!
//! let site = Discloser::new(Policy::default(), SiteSecret::from_bytes(&[42u8; 32]).unwrap()).unwrap();
//! let mut ledger = QueryLedger::new();
//! let ctx = QueryContext { user: "alice", project: "p1", now_unix_secs: 1_700_000_000 };
//! let persons = site.digest(1000..1137); // 137 persons
//! let r = site.answer_count(&mut ledger, &ctx, &persons, &mut rand::rngs::OsRng).unwrap();
//! assert!(matches!(r, Released::Obfuscated { .. }));
//! let few = site.digest([1, 2, 3]);
//! assert_eq!(site.release_count(&few).to_string(), "< 10");
//! ```
//!
//! See the crate README for the rules, their rationale, the measured attack bounds and the
//! references.

mod digest;
mod discloser;
pub mod dp;
mod ledger;
mod network;
mod obfuscate;
mod policy;
mod released;
mod secret;
mod table;

pub use digest::{PersonSetDigest, PersonSetDigester};
pub use discloser::{Discloser, QueryContext};
pub use ledger::{Lockout, QueryLedger, Refusal};
pub use network::{network_total, NetworkTotal};
pub use obfuscate::NoiseTable;
pub use policy::{
    DpMechanism, DpPolicy, DpThresholdBasis, LedgerScope, LockoutBasis, LockoutPolicy,
    ObfuscationParams, Policy, PolicyError, RateLimit, DAY_SECS, SHRINE_BIN, SHRINE_CLAMP,
    SHRINE_SIGMA,
};
pub use released::{DpNoise, Released, SuppressionBasis};
pub use secret::{SecretTooShort, SiteSecret, MIN_SECRET_LEN};
pub use table::{
    computable_entries, suppression_pattern, Breakdown, Position, TableError, MAX_ENTRIES,
};
