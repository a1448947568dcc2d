//! The Qiao hub ↔ site wire protocol.
//!
//! Sites pull jobs from the hub and post back disclosure-controlled aggregates; everything in
//! between is a signed [`Envelope`]. This crate is pure: no network, no database, no clock
//! (time is passed in as unix seconds), and file I/O only for key files ([`keys`]).
//!
//! - [`message`]: [`Job`], [`JobResult`] and the aggregate-only result types.
//! - [`guard`]: [`assert_aggregate_only`] and [`check_against_job`], what keeps patient-level
//!   data from being expressible or sent.
//! - [`envelope`]: [`Envelope`], [`Signer`], [`Verifier`] with pinned keys, [`ReplayGuard`].
//! - [`keys`]: key generation, fingerprints, key files.
//! - [`mod@enroll`]: one-time enrollment tokens and the enrollment request/response.
//! - [`audit_head`]: signed audit chain heads exchanged with polls.
//! - [`login`]: the hub-signed, short-lived login assertion a site's pages accept.

pub mod audit_head;
pub mod enroll;
pub mod envelope;
pub mod guard;
mod hex;
pub mod ids;
pub mod keys;
pub mod login;
pub mod message;
#[cfg(feature = "openapi")]
mod openapi;
mod signature;

pub use audit_head::{ChainHash, ChainOwner, HeadError, SignedHead, HUB_HEAD_HEADER};
pub use enroll::{
    enroll, EnrollError, EnrollRequest, EnrollResponse, EnrollmentToken, StoredToken, TokenHash,
};
pub use envelope::{
    Envelope, KeyRegistrationError, Message, MessageKind, Opened, Principal, ReplayGuard,
    SealError, Signer, Verifier, VerifyError,
};
pub use guard::{assert_aggregate_only, check_against_job, AggregateViolation};
pub use ids::{IdError, JobId, KeyId, Nonce, ProjectId, SiteId, UserId};
pub use keys::{fingerprint, key_id, KeyFileError, PublicKey, PublicKeyError};
pub use message::analyses;
pub use message::analyses::{
    CharacterizationResult, CharacterizationSpec, ContinuousResult, CovariateResult,
    IncidenceResult, IncidenceRow, IncidenceSpec, IncidenceStrata, Moments, PopulationResult,
    TarAnchor, TarDate, TimeAtRisk,
};
pub use message::analyses::{
    RiskSetResult, SurvivalResult, SurvivalSpec, SurvivalTar, SurvivalTarEnd,
};
pub use message::recruitment::{
    RecruitmentMonth, RecruitmentResult, RecruitmentSpec, YearMonth, MAX_RECRUITMENT_MONTHS,
};
pub use message::regression;
pub use message::regression::{
    Coefficients, RealSum, RegressionCovariate, RegressionModel, RegressionRound, RegressionSpec,
    RegressionSums,
};
pub use message::{
    half_width_95, poll_audit_head, AgeBand, Cell, CohortCountResult, DemographicsResult,
    DisclosureSummary, DpParams, FailureKind, Floors, Gender, Job, JobResult, ObfuscationParams,
    Outcome, Payload, PollBody, QueryType, RefusalReason, Released, Requester, RuleName,
    RuleResult, SiteStatus, SuppressionBasis, UserRole,
};
