//! Statistical disclosure control for Qiao sites.
//!
//! Patient data never leaves a hospital; every aggregate a site sends to the hub goes through
//! this crate first. It is a pure library — no I/O, no network, no clock (time is passed in),
//! no other Qiao crate — and it never panics on any input.
//!
//! One release mechanism, chosen by [`Policy::release`]:
//!
//! * [`ReleaseMode::Dp`] (default): before anything is computed the site charges the query's
//!   ρ (zCDP) to the user's, the organization's and the site's budgets
//!   ([`Discloser::admit`], [`QueryLedger::charge`]); every statistic — declared with its
//!   sensitivity ([`Statistic`]) — gets discrete Gaussian noise seeded from a keyed PRF of the
//!   question, the statistic and the exact person set; consistency post-processing; the
//!   threshold on the *noisy* value. See `THREAT_MODEL.md` for the guarantee.
//! * [`ReleaseMode::Shrine`] (legacy, no formal guarantee): threshold on the true count,
//!   SHRINE ≥ 1.22 obfuscation keyed on the person set, complementary suppression, lockout.
//! * [`ReleaseMode::Exact`] (unprotected): exact counts above the threshold.
//!
//! Every number released is a [`Released`]: the value (if any) and the rule applied to it.
//! At the hub, [`network_total`] adds per-site released values, never subtracting, with a
//! combined 95% interval.
//!
//! ```
//! use qiao_disclosure::{Discloser, Policy, QueryContext, QueryLedger, Question, Released, SiteSecret, Statistic};
//!
//! let site = Discloser::new(Policy::default(), SiteSecret::from_bytes(&[42u8; 32]).unwrap()).unwrap();
//! let mut ledger = QueryLedger::new();
//! let ctx = QueryContext { user: "alice", organization: "acme", project: "p1", now_unix_secs: 1_700_000_000 };
//! let stat = Statistic::person_count("subjects");
//! site.admit(&mut ledger, &ctx, std::slice::from_ref(&stat)).unwrap(); // charges ρ = 1/72
//! let q = Question::of(b"the cohort definition");
//! let persons = site.digest(1000..1137); // 137 persons
//! let r = site.release_count(&q, &stat, &persons);
//! assert!(matches!(r, Released::Dp { value: Some(_), .. }));
//! assert_eq!(r, site.release_count(&q, &stat, &persons)); // same question, same set: same answer
//! ```
//!
//! See the crate README for the rules, their rationale and the references.

mod digest;
mod discloser;
pub mod dp;
mod ledger;
mod mechanism;
mod network;
mod obfuscate;
mod policy;
mod released;
mod secret;
mod table;

pub use digest::{PersonSetDigest, PersonSetDigester};
pub use discloser::{Discloser, FloorsUnmet, QueryContext};
pub use ledger::{
    Account, BudgetOverrides, BudgetScope, BudgetStatus, Lockout, QueryLedger, Refusal,
    RoundAdmission, RoundRefusal,
};
pub use mechanism::{non_increasing, rho_of, Question, Statistic};
pub use network::{network_total, NetworkTotal};
pub use obfuscate::NoiseTable;
pub use policy::{
    DpPolicy, LedgerScope, LockoutBasis, LockoutPolicy, ObfuscationParams, Policy, PolicyError,
    RateLimit, ReleaseMode, DAY_SECS, DEFAULT_SIGMA, MAX_RHO, MAX_SIGMA, MIN_SIGMA, SHRINE_BIN,
    SHRINE_CLAMP, SHRINE_SIGMA,
};
pub use released::{Released, SuppressionBasis};
pub use secret::{SecretTooShort, SiteSecret, MIN_SECRET_LEN};
pub use table::{
    computable_entries, suppression_pattern, Breakdown, Position, TableError, MAX_ENTRIES,
};
