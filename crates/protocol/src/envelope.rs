//! Signed envelopes, the verifier with pinned keys, and replay protection.
//!
//! Every hub↔site message is an [`Envelope`]: a small header (kind, job id, site id, nonce,
//! timestamp, signer key id), the body as embedded JSON text, and an Ed25519 signature over
//! [`Envelope::signed_bytes`], an unambiguous length-prefixed encoding of every other field
//! behind the domain-separation prefix [`DOMAIN`]. The receiver parses the body only from the
//! exact bytes that were signed.
//!
//! Direction is part of the message: the hub signs [`MessageKind::Job`] and
//! [`MessageKind::ResultAck`] addressed to one site; a site signs [`MessageKind::Poll`] and
//! [`MessageKind::Result`] as itself. A site's [`Verifier`] pins the hub's key(s) and accepts
//! only hub kinds addressed to itself; the hub's verifier holds each enrolled site's key and
//! accepts only site kinds whose `site_id` is the signer's own.
//!
//! [`ReplayGuard::open`] is the one way to turn an envelope into a message: it verifies,
//! checks the timestamp against the accepted clock skew, parses and cross-checks the body, and
//! consumes the nonce.

use std::collections::{BTreeSet, HashMap};
use std::fmt;

use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};

use crate::audit_head::{ChainOwner, SignedHead};
use crate::guard::{assert_aggregate_only, AggregateViolation};
use crate::ids::{JobId, KeyId, Nonce, SiteId};
use crate::keys::{key_id, PublicKey, PublicKeyError};
use crate::message::{Job, JobResult, PollBody, SiteStatus};
pub use crate::signature::{SignatureEncodingError, SignatureHex};

/// Prefix of every signed byte string, so a Qiao signature can never be mistaken for a
/// signature over anything else.
pub const DOMAIN: &[u8] = b"qiao-v1\0";
/// The envelope format version.
pub const VERSION: u8 = 1;
/// Largest body accepted, in bytes.
pub const MAX_BODY_BYTES: usize = 4 * 1024 * 1024;
/// Largest serialized envelope accepted by [`Envelope::from_json`], in bytes (a body may
/// double in size when escaped as a JSON string).
pub const MAX_ENVELOPE_BYTES: usize = 2 * MAX_BODY_BYTES + 4096;
/// Default accepted clock skew, in seconds, either way.
pub const DEFAULT_MAX_SKEW_SECS: i64 = 300;
/// Default most nonces a [`ReplayGuard`] remembers at once.
pub const DEFAULT_MAX_NONCES: usize = 1_000_000;

/// What an envelope carries.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MessageKind {
    /// Hub → site: a [`Job`] to run. Needs a job id.
    Job,
    /// Site → hub: a request for jobs, body `{}`. Has no job id.
    Poll,
    /// Site → hub: a [`JobResult`]. Needs a job id.
    Result,
    /// Hub → site: the hub has durably stored the site's result for the job, body `{}`.
    ResultAck,
}

impl MessageKind {
    /// The kind's wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            MessageKind::Job => "job",
            MessageKind::Poll => "poll",
            MessageKind::Result => "result",
            MessageKind::ResultAck => "result_ack",
        }
    }

    /// Whether the hub signs this kind (otherwise a site does).
    pub fn from_hub(self) -> bool {
        matches!(self, MessageKind::Job | MessageKind::ResultAck)
    }

    /// Whether the envelope must carry a job id (otherwise it must not).
    pub fn has_job_id(self) -> bool {
        !matches!(self, MessageKind::Poll)
    }
}

impl fmt::Display for MessageKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A signed hub↔site message.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Envelope {
    /// Format version ([`VERSION`]).
    pub v: u8,
    /// What the body is.
    pub kind: MessageKind,
    /// The job concerned (absent only for [`MessageKind::Poll`]).
    pub job_id: Option<JobId>,
    /// For hub messages the addressee, for site messages the sender.
    pub site_id: SiteId,
    /// 128 random bits, never reused by the signer.
    pub nonce: Nonce,
    /// When the message was signed (unix seconds).
    pub timestamp: i64,
    /// The body: JSON text, parsed by the receiver only after verification.
    pub body: String,
    /// The signer's key id.
    pub key_id: KeyId,
    /// Ed25519 over [`Envelope::signed_bytes`].
    pub signature: SignatureHex,
}

fn put(out: &mut Vec<u8>, field: &[u8]) {
    out.extend_from_slice(&(field.len() as u64).to_be_bytes());
    out.extend_from_slice(field);
}

impl Envelope {
    /// The byte string that is signed: [`DOMAIN`], then the version byte, then each field
    /// length-prefixed (8-byte big-endian length) in a fixed order: kind, job id (a presence
    /// byte, then the hex id if present), site id, nonce, timestamp (8 bytes big-endian), key id,
    /// body. Every field is covered, and no two different headers give the same bytes.
    pub fn signed_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(DOMAIN.len() + 200 + self.body.len());
        out.extend_from_slice(DOMAIN);
        out.push(self.v);
        put(&mut out, self.kind.as_str().as_bytes());
        match &self.job_id {
            Some(id) => {
                out.push(1);
                put(&mut out, id.to_string().as_bytes());
            }
            None => out.push(0),
        }
        put(&mut out, self.site_id.as_str().as_bytes());
        put(&mut out, self.nonce.to_string().as_bytes());
        out.extend_from_slice(&self.timestamp.to_be_bytes());
        put(&mut out, self.key_id.to_string().as_bytes());
        put(&mut out, self.body.as_bytes());
        out
    }

    /// Compact JSON.
    pub fn to_json(&self) -> Vec<u8> {
        // Serializing a struct of strings and integers into memory cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Parses compact or pretty JSON, refusing anything larger than [`MAX_ENVELOPE_BYTES`].
    /// Parsing checks only the shape; use [`ReplayGuard::open`] to accept the message.
    pub fn from_json(bytes: &[u8]) -> Result<Self, VerifyError> {
        if bytes.len() > MAX_ENVELOPE_BYTES {
            return Err(VerifyError::TooLarge {
                len: bytes.len(),
                max: MAX_ENVELOPE_BYTES,
            });
        }
        serde_json::from_slice(bytes).map_err(|e| VerifyError::Malformed(e.to_string()))
    }
}

/// Who signed a message.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Principal {
    /// The hub.
    Hub,
    /// An enrolled site.
    Site(SiteId),
}

impl fmt::Display for Principal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Principal::Hub => f.write_str("the hub"),
            Principal::Site(s) => write!(f, "site {s}"),
        }
    }
}

/// Why a message could not be signed.
#[derive(Debug, thiserror::Error)]
pub enum SealError {
    /// The body is larger than [`MAX_BODY_BYTES`].
    #[error("body of {len} bytes exceeds the limit of {max}")]
    BodyTooLarge {
        /// Body length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The body is not what the kind requires, or disagrees with the header.
    #[error("{kind} body rejected: {reason}")]
    Body {
        /// The kind.
        kind: MessageKind,
        /// What is wrong.
        reason: String,
    },
    /// Job id present where not allowed or missing where required.
    #[error("{kind} message {}", if kind.has_job_id() { "needs a job id" } else { "must not carry a job id" })]
    JobIdPresence {
        /// The kind.
        kind: MessageKind,
    },
    /// A result failed the aggregate-only guard; nothing was signed.
    #[error("refusing to sign a result that is not aggregate-only: {0}")]
    NotAggregate(#[from] AggregateViolation),
}

/// Why a message was rejected. Each check has its own variant.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum VerifyError {
    /// Larger than [`MAX_ENVELOPE_BYTES`] before parsing.
    #[error("message of {len} bytes exceeds the limit of {max}")]
    TooLarge {
        /// Length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// Not an envelope.
    #[error("malformed envelope: {0}")]
    Malformed(String),
    /// A format version this build does not speak.
    #[error("unsupported envelope version {found} (this build speaks version {VERSION})")]
    UnsupportedVersion {
        /// The version received.
        found: u8,
    },
    /// Body larger than [`MAX_BODY_BYTES`].
    #[error("body of {len} bytes exceeds the limit of {max}")]
    BodyTooLarge {
        /// Body length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// Signed by a key that is not pinned or registered here.
    #[error("unknown signer: no pinned or registered key with id {key_id}")]
    UnknownSigner {
        /// The key id claimed.
        key_id: KeyId,
    },
    /// The signature does not verify.
    #[error("bad signature: the message was altered or not signed by key {key_id}")]
    BadSignature {
        /// The key id claimed.
        key_id: KeyId,
    },
    /// A kind this side never receives, or from the wrong party (e.g. a site key signing a job).
    #[error("{signer} may not send {kind} messages to {receiver}")]
    WrongDirection {
        /// The kind.
        kind: MessageKind,
        /// Who signed.
        signer: String,
        /// Who received.
        receiver: String,
    },
    /// A hub message addressed to another site.
    #[error("message addressed to site {found}, but this is site {expected}")]
    WrongSite {
        /// This site.
        expected: SiteId,
        /// The addressee.
        found: SiteId,
    },
    /// A site message whose `site_id` is not the signing site's.
    #[error("message claims to be from site {claimed} but is signed by site {signer}'s key")]
    SiteImpersonation {
        /// The site whose key signed.
        signer: SiteId,
        /// The site claimed in the header.
        claimed: SiteId,
    },
    /// Job id missing where required, or present where not allowed.
    #[error("{kind} message {}", if kind.has_job_id() { "lacks a job id" } else { "must not carry a job id" })]
    JobIdPresence {
        /// The kind.
        kind: MessageKind,
    },
    /// Older than the accepted clock skew.
    #[error("expired: signed at {timestamp}, more than {max_skew_secs} s before now ({now})")]
    Expired {
        /// The message's timestamp.
        timestamp: i64,
        /// The reference time (the latest `now` this guard has seen).
        now: i64,
        /// Accepted skew.
        max_skew_secs: i64,
    },
    /// Too far in the future.
    #[error("timestamp {timestamp} is more than {max_skew_secs} s ahead of now ({now}); check the clocks")]
    FromTheFuture {
        /// The message's timestamp.
        timestamp: i64,
        /// Now.
        now: i64,
        /// Accepted skew.
        max_skew_secs: i64,
    },
    /// The nonce was already used.
    #[error("replay: nonce {nonce} from key {key_id} was already accepted")]
    Replay {
        /// The signer.
        key_id: KeyId,
        /// The nonce.
        nonce: Nonce,
    },
    /// The replay cache is full of unexpired nonces; refusing rather than forgetting one.
    #[error("replay cache full ({max} unexpired nonces); refusing the message")]
    ReplayCacheFull {
        /// The capacity.
        max: usize,
    },
    /// The signed body is not what the kind requires.
    #[error("{kind} body malformed: {reason}")]
    MalformedBody {
        /// The kind.
        kind: MessageKind,
        /// What is wrong.
        reason: String,
    },
    /// The signed body disagrees with the signed header.
    #[error("body {field} {body} differs from the envelope's {header}")]
    BodyMismatch {
        /// The field.
        field: &'static str,
        /// Value in the body.
        body: String,
        /// Value in the header.
        header: String,
    },
    /// A result that fails the aggregate-only guard.
    #[error("result is not aggregate-only: {0}")]
    NotAggregate(AggregateViolation),
}

/// Signs envelopes with one Ed25519 key.
pub struct Signer {
    key: SigningKey,
    key_id: KeyId,
}

impl fmt::Debug for Signer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Signer")
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

impl Signer {
    /// Signs with `key`.
    pub fn new(key: SigningKey) -> Self {
        let key_id = key_id(&key.verifying_key());
        Self { key, key_id }
    }

    /// Signs with a fresh key.
    pub fn generate() -> Self {
        Self::new(crate::keys::generate_signing_key())
    }

    /// The public half.
    pub fn verifying_key(&self) -> VerifyingKey {
        self.key.verifying_key()
    }

    /// The public half, wire form.
    pub fn public_key(&self) -> Result<PublicKey, PublicKeyError> {
        PublicKey::new(self.key.verifying_key())
    }

    /// The key id put in every envelope.
    pub fn key_id(&self) -> KeyId {
        self.key_id
    }

    /// The signing key (for saving it).
    pub fn signing_key(&self) -> &SigningKey {
        &self.key
    }

    /// Hub: a job for one site.
    pub fn seal_job(&self, job: &Job, to: &SiteId, now: i64) -> Result<Envelope, SealError> {
        let body = to_body(MessageKind::Job, job)?;
        self.seal(
            MessageKind::Job,
            Some(job.job_id),
            to.clone(),
            body,
            Nonce::random(),
            now,
        )
    }

    /// Hub: acknowledge that a site's result for `job_id` is stored.
    pub fn seal_result_ack(
        &self,
        job_id: JobId,
        to: &SiteId,
        now: i64,
    ) -> Result<Envelope, SealError> {
        self.seal(
            MessageKind::ResultAck,
            Some(job_id),
            to.clone(),
            "{}".into(),
            Nonce::random(),
            now,
        )
    }

    /// Site: ask the hub for jobs (a poll without a status).
    pub fn seal_poll(&self, me: &SiteId, now: i64) -> Result<Envelope, SealError> {
        self.seal_poll_with_status(me, None, now)
    }

    /// Site: ask the hub for jobs, telling it the site's status.
    pub fn seal_poll_with_status(
        &self,
        me: &SiteId,
        status: Option<&SiteStatus>,
        now: i64,
    ) -> Result<Envelope, SealError> {
        self.seal_poll_with_head(me, status, None, now)
    }

    /// Site: send a result. Runs [`assert_aggregate_only`] first and signs nothing if it fails.
    pub fn seal_result(&self, result: &JobResult, now: i64) -> Result<Envelope, SealError> {
        assert_aggregate_only(result)?;
        let body = to_body(MessageKind::Result, result)?;
        self.seal(
            MessageKind::Result,
            Some(result.job_id),
            result.site_id.clone(),
            body,
            Nonce::random(),
            now,
        )
    }

    /// Signs any envelope. The body must be exactly what [`ReplayGuard::open`] accepts for the
    /// kind (a result body also passes [`assert_aggregate_only`]), so this cannot be used to
    /// sign something the typed helpers would refuse. Reusing a nonce makes the receiver
    /// reject the second message as a replay.
    pub fn seal(
        &self,
        kind: MessageKind,
        job_id: Option<JobId>,
        site_id: SiteId,
        body: String,
        nonce: Nonce,
        now: i64,
    ) -> Result<Envelope, SealError> {
        if body.len() > MAX_BODY_BYTES {
            return Err(SealError::BodyTooLarge {
                len: body.len(),
                max: MAX_BODY_BYTES,
            });
        }
        if kind.has_job_id() != job_id.is_some() {
            return Err(SealError::JobIdPresence { kind });
        }
        match parse_body(kind, job_id.as_ref(), &site_id, &body) {
            Ok(_) => {}
            Err(VerifyError::NotAggregate(v)) => return Err(SealError::NotAggregate(v)),
            Err(e) => {
                return Err(SealError::Body {
                    kind,
                    reason: e.to_string(),
                })
            }
        }
        let mut env = Envelope {
            v: VERSION,
            kind,
            job_id,
            site_id,
            nonce,
            timestamp: now,
            body,
            key_id: self.key_id,
            signature: SignatureHex([0; 64]),
        };
        env.signature = SignatureHex(self.key.sign(&env.signed_bytes()).to_bytes());
        Ok(env)
    }
}

fn to_body<T: Serialize>(kind: MessageKind, value: &T) -> Result<String, SealError> {
    serde_json::to_string(value).map_err(|e| SealError::Body {
        kind,
        reason: e.to_string(),
    })
}

/// An empty body (`{}`), for kinds that carry nothing but the header.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Empty {}

/// A verified, accepted message.
#[derive(Clone, Debug, PartialEq)]
pub enum Message {
    /// A job from the hub.
    Job(Job),
    /// A site asking for jobs, with its status if it sent one.
    Poll(Option<SiteStatus>),
    /// A result from a site (already checked by [`assert_aggregate_only`]).
    Result(JobResult),
    /// The hub stored the site's result.
    ResultAck,
}

fn parse_body(
    kind: MessageKind,
    job_id: Option<&JobId>,
    site_id: &SiteId,
    body: &str,
) -> Result<Message, VerifyError> {
    let malformed = |e: serde_json::Error| VerifyError::MalformedBody {
        kind,
        reason: e.to_string(),
    };
    let same_job = |body_job: &JobId| match job_id {
        Some(h) if h == body_job => Ok(()),
        other => Err(VerifyError::BodyMismatch {
            field: "job_id",
            body: body_job.to_string(),
            header: other.map(ToString::to_string).unwrap_or_default(),
        }),
    };
    match kind {
        MessageKind::Job => {
            let job: Job = serde_json::from_str(body).map_err(malformed)?;
            same_job(&job.job_id)?;
            Ok(Message::Job(job))
        }
        MessageKind::Result => {
            let result: JobResult = serde_json::from_str(body).map_err(malformed)?;
            same_job(&result.job_id)?;
            if &result.site_id != site_id {
                return Err(VerifyError::BodyMismatch {
                    field: "site_id",
                    body: result.site_id.to_string(),
                    header: site_id.to_string(),
                });
            }
            assert_aggregate_only(&result).map_err(VerifyError::NotAggregate)?;
            Ok(Message::Result(result))
        }
        MessageKind::Poll => {
            let poll: PollBody = serde_json::from_str(body).map_err(malformed)?;
            Ok(Message::Poll(poll.status))
        }
        MessageKind::ResultAck => {
            serde_json::from_str::<Empty>(body).map_err(malformed)?;
            Ok(Message::ResultAck)
        }
    }
}

/// A key registration that was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyRegistrationError {
    /// Weak or invalid key.
    #[error(transparent)]
    Key(#[from] PublicKeyError),
    /// The same key (or key id) is already registered, for another principal.
    #[error("key {key_id} is already registered for {owner}")]
    AlreadyRegistered {
        /// The key id.
        key_id: KeyId,
        /// Who holds it.
        owner: String,
    },
}

#[derive(Clone, Debug)]
enum Me {
    Hub,
    Site(SiteId),
}

/// Verifies envelopes against pinned keys, for one receiving side.
#[derive(Clone, Debug)]
pub struct Verifier {
    me: Me,
    keys: HashMap<KeyId, (VerifyingKey, Principal)>,
}

impl Verifier {
    /// The site `me`, pinning the hub's key (add rotated hub keys with
    /// [`Verifier::pin_hub_key`]).
    pub fn for_site(me: SiteId, hub_key: VerifyingKey) -> Result<Self, KeyRegistrationError> {
        let mut v = Self {
            me: Me::Site(me),
            keys: HashMap::new(),
        };
        v.pin_hub_key(hub_key)?;
        Ok(v)
    }

    /// The hub, with no site registered yet.
    pub fn for_hub() -> Self {
        Self {
            me: Me::Hub,
            keys: HashMap::new(),
        }
    }

    /// Site side: trust another hub key (key rotation).
    pub fn pin_hub_key(&mut self, key: VerifyingKey) -> Result<KeyId, KeyRegistrationError> {
        self.insert(key, Principal::Hub)
    }

    /// Hub side: trust `key` as site `site`'s (a site may have several during rotation).
    pub fn register_site(
        &mut self,
        site: SiteId,
        key: VerifyingKey,
    ) -> Result<KeyId, KeyRegistrationError> {
        self.insert(key, Principal::Site(site))
    }

    /// Forgets a key (revocation). Returns who held it.
    pub fn remove_key(&mut self, key_id: &KeyId) -> Option<Principal> {
        self.keys.remove(key_id).map(|(_, p)| p)
    }

    /// Who holds `key_id`, if anyone.
    pub fn principal(&self, key_id: &KeyId) -> Option<&Principal> {
        self.keys.get(key_id).map(|(_, p)| p)
    }

    fn insert(
        &mut self,
        key: VerifyingKey,
        principal: Principal,
    ) -> Result<KeyId, KeyRegistrationError> {
        let key = *PublicKey::new(key)?.verifying_key();
        let id = key_id(&key);
        match self.keys.get(&id) {
            Some((k, p)) if *k == key && *p == principal => Ok(id),
            Some((_, p)) => Err(KeyRegistrationError::AlreadyRegistered {
                key_id: id,
                owner: p.to_string(),
            }),
            None => {
                self.keys.insert(id, (key, principal));
                Ok(id)
            }
        }
    }

    /// The stateless checks, in order: version, body size, known signer, signature
    /// (`verify_strict`: no malleable or small-order signatures), direction, addressee or
    /// sender, job id presence. Does **not** check time or nonce, nor parse the body: use
    /// [`ReplayGuard::open`] to accept a message.
    pub fn verify(&self, env: &Envelope) -> Result<Principal, VerifyError> {
        if env.v != VERSION {
            return Err(VerifyError::UnsupportedVersion { found: env.v });
        }
        if env.body.len() > MAX_BODY_BYTES {
            return Err(VerifyError::BodyTooLarge {
                len: env.body.len(),
                max: MAX_BODY_BYTES,
            });
        }
        let (key, principal) = self
            .keys
            .get(&env.key_id)
            .ok_or(VerifyError::UnknownSigner { key_id: env.key_id })?;
        let signature = Signature::from_bytes(&env.signature.0);
        key.verify_strict(&env.signed_bytes(), &signature)
            .map_err(|_| VerifyError::BadSignature { key_id: env.key_id })?;
        let wrong_direction = || VerifyError::WrongDirection {
            kind: env.kind,
            signer: principal.to_string(),
            receiver: match &self.me {
                Me::Hub => "the hub".to_owned(),
                Me::Site(s) => format!("site {s}"),
            },
        };
        match (&self.me, principal) {
            (Me::Site(me), Principal::Hub) => {
                if !env.kind.from_hub() {
                    return Err(wrong_direction());
                }
                if &env.site_id != me {
                    return Err(VerifyError::WrongSite {
                        expected: me.clone(),
                        found: env.site_id.clone(),
                    });
                }
            }
            (Me::Hub, Principal::Site(signer)) => {
                if env.kind.from_hub() {
                    return Err(wrong_direction());
                }
                if &env.site_id != signer {
                    return Err(VerifyError::SiteImpersonation {
                        signer: signer.clone(),
                        claimed: env.site_id.clone(),
                    });
                }
            }
            // Keys are only ever inserted as Hub on a site verifier and Site on the hub's.
            (Me::Site(_), Principal::Site(_)) | (Me::Hub, Principal::Hub) => {
                return Err(wrong_direction())
            }
        }
        if env.kind.has_job_id() != env.job_id.is_some() {
            return Err(VerifyError::JobIdPresence { kind: env.kind });
        }
        Ok(principal.clone())
    }
}

/// A message accepted by [`ReplayGuard::open`].
#[derive(Clone, Debug, PartialEq)]
pub struct Opened {
    /// Who signed it.
    pub signer: Principal,
    /// The envelope's kind.
    pub kind: MessageKind,
    /// The job concerned.
    pub job_id: Option<JobId>,
    /// Addressee (hub messages) or sender (site messages).
    pub site_id: SiteId,
    /// The nonce consumed.
    pub nonce: Nonce,
    /// The signed timestamp.
    pub timestamp: i64,
    /// The parsed body.
    pub message: Message,
}

/// Rejects replayed, expired and too-far-future messages.
///
/// A message is accepted if its timestamp is within `max_skew` of now (both ways) and its
/// (signer, nonce) has not been accepted before. A nonce is remembered until its timestamp
/// falls out of the window, after which the message would be rejected as expired anyway, so
/// memory is bounded by the message rate times the window (and by a hard cap, past which
/// messages are refused, never forgotten). The past edge of the window is measured from the
/// latest `now` the guard has seen, so a clock stepping backwards cannot re-admit a nonce that
/// was already forgotten.
///
/// The guard lives in memory: after a restart, a message captured in the last `max_skew` could
/// be replayed once. Make handlers idempotent (jobs and results are keyed by job id and site)
/// so such a replay is harmless.
#[derive(Clone, Debug)]
pub struct ReplayGuard {
    max_skew_secs: i64,
    max_nonces: usize,
    latest_now: i64,
    seen: HashMap<(KeyId, Nonce), i64>,
    by_time: BTreeSet<(i64, KeyId, Nonce)>,
}

impl Default for ReplayGuard {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_SKEW_SECS)
    }
}

impl ReplayGuard {
    /// A guard accepting `max_skew_secs` of clock skew either way (negative is taken as 0).
    pub fn new(max_skew_secs: i64) -> Self {
        Self {
            max_skew_secs: max_skew_secs.max(0),
            max_nonces: DEFAULT_MAX_NONCES,
            latest_now: i64::MIN,
            seen: HashMap::new(),
            by_time: BTreeSet::new(),
        }
    }

    /// Sets the most unexpired nonces remembered (at least 1).
    pub fn with_max_nonces(mut self, max: usize) -> Self {
        self.max_nonces = max.max(1);
        self
    }

    /// Accepted skew in seconds.
    pub fn max_skew_secs(&self) -> i64 {
        self.max_skew_secs
    }

    /// Nonces currently remembered.
    pub fn len(&self) -> usize {
        self.seen.len()
    }

    /// Whether no nonce is remembered.
    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }

    /// Verifies `env` with `verifier`, checks its timestamp against `now` (unix seconds),
    /// parses and cross-checks the body (job id and site id must match the header; a result
    /// must pass [`assert_aggregate_only`]), and consumes the nonce. Only a message that passes
    /// every check consumes its nonce.
    pub fn open(
        &mut self,
        verifier: &Verifier,
        env: &Envelope,
        now: i64,
    ) -> Result<Opened, VerifyError> {
        let signer = verifier.verify(env)?;
        self.latest_now = self.latest_now.max(now);
        let oldest = self.latest_now.saturating_sub(self.max_skew_secs);
        if env.timestamp < oldest {
            return Err(VerifyError::Expired {
                timestamp: env.timestamp,
                now: self.latest_now,
                max_skew_secs: self.max_skew_secs,
            });
        }
        if env.timestamp > now.saturating_add(self.max_skew_secs) {
            return Err(VerifyError::FromTheFuture {
                timestamp: env.timestamp,
                now,
                max_skew_secs: self.max_skew_secs,
            });
        }
        self.prune(oldest);
        let key = (env.key_id, env.nonce);
        if self.seen.contains_key(&key) {
            return Err(VerifyError::Replay {
                key_id: env.key_id,
                nonce: env.nonce,
            });
        }
        if self.seen.len() >= self.max_nonces {
            return Err(VerifyError::ReplayCacheFull {
                max: self.max_nonces,
            });
        }
        let message = parse_body(env.kind, env.job_id.as_ref(), &env.site_id, &env.body)?;
        self.seen.insert(key, env.timestamp);
        self.by_time.insert((env.timestamp, env.key_id, env.nonce));
        Ok(Opened {
            signer,
            kind: env.kind,
            job_id: env.job_id,
            site_id: env.site_id.clone(),
            nonce: env.nonce,
            timestamp: env.timestamp,
            message,
        })
    }

    /// Forgets nonces whose timestamps are before `oldest`.
    fn prune(&mut self, oldest: i64) {
        while let Some(&(ts, key_id, nonce)) = self.by_time.first() {
            if ts >= oldest {
                break;
            }
            self.by_time.pop_first();
            self.seen.remove(&(key_id, nonce));
        }
    }
}

impl Signer {
    /// Signs the head of `owner`'s audit chain (entry `seq` has hash `hash`).
    pub fn sign_audit_head(
        &self,
        owner: ChainOwner,
        seq: u64,
        hash: [u8; 32],
        now: i64,
    ) -> SignedHead {
        SignedHead::sign_with_key(&self.key, self.key_id(), owner, seq, hash, now)
    }

    /// Site: ask the hub for jobs, with the site's status and its signed audit head.
    pub fn seal_poll_with_head(
        &self,
        me: &SiteId,
        status: Option<&SiteStatus>,
        audit_head: Option<&SignedHead>,
        now: i64,
    ) -> Result<Envelope, SealError> {
        let body = PollBody {
            status: status.cloned(),
            audit_head: audit_head.cloned(),
        };
        let body = to_body(MessageKind::Poll, &body)?;
        self.seal(
            MessageKind::Poll,
            None,
            me.clone(),
            body,
            Nonce::random(),
            now,
        )
    }
}
