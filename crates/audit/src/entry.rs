//! Audit entries and how they are hashed.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Domain separation for entry hashes.
pub const HASH_DOMAIN: &[u8] = b"qiao-audit-v1\0";

/// A SHA-256 hash, written as 64 lowercase hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct EntryHash(pub [u8; 32]);

impl EntryHash {
    /// The `prev_hash` of the first entry: 32 zero bytes.
    pub const GENESIS: EntryHash = EntryHash([0; 32]);

    /// Parses 64 lowercase hex digits.
    pub fn parse(s: &str) -> Option<Self> {
        let b = s.as_bytes();
        if b.len() != 64 {
            return None;
        }
        let mut out = [0u8; 32];
        for (o, pair) in out.iter_mut().zip(b.chunks_exact(2)) {
            *o = (nibble(pair[0])? << 4) | nibble(pair[1])?;
        }
        Some(Self(out))
    }
}

fn nibble(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    }
}

impl fmt::Display for EntryHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for EntryHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EntryHash({self})")
    }
}

/// A hash that is not 64 lowercase hex digits.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a hash must be 64 lowercase hex digits")]
pub struct HashParseError;

impl TryFrom<String> for EntryHash {
    type Error = HashParseError;
    fn try_from(s: String) -> Result<Self, HashParseError> {
        Self::parse(&s).ok_or(HashParseError)
    }
}

impl From<EntryHash> for String {
    fn from(h: EntryHash) -> String {
        h.to_string()
    }
}

/// Who did something. Ids must be non-empty (any characters; they are escaped in JSON and in
/// [`Entry`]'s `Display`).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum Actor {
    /// A user account (`user:<id>`).
    User(String),
    /// A site (`site:<id>`).
    Site(String),
    /// The hub itself (`hub`).
    Hub,
    /// The local process acting on its own (`system`), e.g. a policy decision at a site.
    System,
    /// A message whose signature did not verify (`unverified`): whoever sent it, it is not
    /// attributed to the party it claims to come from.
    Unverified,
}

impl Actor {
    /// Whether the actor survives its text form (ids must be non-empty).
    pub fn is_valid(&self) -> bool {
        match self {
            Actor::User(id) | Actor::Site(id) => !id.is_empty(),
            Actor::Hub | Actor::System | Actor::Unverified => true,
        }
    }

    /// The operating-system user running this process (`user:os:<name>`), for changes made
    /// from a command line: `$USER` or `$LOGNAME`, else the numeric uid.
    pub fn os_user() -> Actor {
        let name = ["USER", "LOGNAME"]
            .iter()
            .filter_map(|v| std::env::var(v).ok())
            .find(|n| !n.is_empty() && n.len() <= 64 && !n.chars().any(char::is_control))
            .unwrap_or_else(|| format!("uid{}", rustix::process::getuid().as_raw()));
        Actor::User(format!("os:{name}"))
    }
}

impl fmt::Display for Actor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Actor::User(u) => write!(f, "user:{u}"),
            Actor::Site(s) => write!(f, "site:{s}"),
            Actor::Hub => f.write_str("hub"),
            Actor::System => f.write_str("system"),
            Actor::Unverified => f.write_str("unverified"),
        }
    }
}

/// An actor that is not `user:<id>`, `site:<id>`, `hub` or `system`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("an actor is user:<id>, site:<id>, hub, system or unverified (found {0:?})")]
pub struct ActorParseError(String);

impl FromStr for Actor {
    type Err = ActorParseError;
    fn from_str(s: &str) -> Result<Self, ActorParseError> {
        let id_ok = |id: &str| !id.is_empty();
        match s {
            "hub" => Ok(Actor::Hub),
            "system" => Ok(Actor::System),
            "unverified" => Ok(Actor::Unverified),
            _ => match (s.strip_prefix("user:"), s.strip_prefix("site:")) {
                (Some(u), _) if id_ok(u) => Ok(Actor::User(u.to_owned())),
                (_, Some(site)) if id_ok(site) => Ok(Actor::Site(site.to_owned())),
                _ => Err(ActorParseError(s.to_owned())),
            },
        }
    }
}

impl TryFrom<String> for Actor {
    type Error = ActorParseError;
    fn try_from(s: String) -> Result<Self, ActorParseError> {
        s.parse()
    }
}

impl From<Actor> for String {
    fn from(a: Actor) -> String {
        a.to_string()
    }
}

/// What the caller supplies for a new entry; the chain adds `seq`, `prev_hash` and `hash`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EntryDraft {
    /// When (unix seconds), from the caller's clock.
    pub timestamp: i64,
    /// Who.
    pub actor: Actor,
    /// What, as a short dotted verb such as `job.submit`, `job.decide`, `result.release`.
    pub action: String,
    /// Under which project.
    pub project: Option<String>,
    /// Which job.
    pub job_id: Option<String>,
    /// What was decided (e.g. `approved`, `refused:rate_limited`).
    pub decision: Option<String>,
    /// What was released: an aggregate summary as text or JSON text. Never patient-level data.
    pub released: Option<String>,
}

impl EntryDraft {
    /// A draft with only the required fields.
    pub fn new(timestamp: i64, actor: Actor, action: impl Into<String>) -> Self {
        Self {
            timestamp,
            actor,
            action: action.into(),
            project: None,
            job_id: None,
            decision: None,
            released: None,
        }
    }

    /// Sets the project.
    pub fn project(mut self, project: impl Into<String>) -> Self {
        self.project = Some(project.into());
        self
    }

    /// Sets the job.
    pub fn job(mut self, job_id: impl Into<String>) -> Self {
        self.job_id = Some(job_id.into());
        self
    }

    /// Sets the decision.
    pub fn decision(mut self, decision: impl Into<String>) -> Self {
        self.decision = Some(decision.into());
        self
    }

    /// Sets the released summary as text.
    pub fn released_text(mut self, text: impl Into<String>) -> Self {
        self.released = Some(text.into());
        self
    }

    /// Sets the released summary as compact JSON text. It is stored (and hashed) as that text,
    /// so re-reading never changes it.
    pub fn released_json(mut self, value: &serde_json::Value) -> Self {
        self.released = Some(value.to_string());
        self
    }
}

/// One entry of the chain: one JSON line in a file-backed log.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    /// Position in the chain, from 1, without gaps.
    pub seq: u64,
    /// When (unix seconds).
    pub timestamp: i64,
    /// Who.
    pub actor: Actor,
    /// What.
    pub action: String,
    /// Under which project.
    pub project: Option<String>,
    /// Which job.
    pub job_id: Option<String>,
    /// What was decided.
    pub decision: Option<String>,
    /// What was released (aggregate summary).
    pub released: Option<String>,
    /// The previous entry's `hash` ([`EntryHash::GENESIS`] for the first).
    pub prev_hash: EntryHash,
    /// [`Entry::compute_hash`].
    pub hash: EntryHash,
}

/// The hashed fields, in the fixed order of the canonical JSON.
#[derive(Serialize)]
struct Canonical<'a> {
    action: &'a str,
    actor: String,
    decision: Option<&'a str>,
    job_id: Option<&'a str>,
    prev_hash: String,
    project: Option<&'a str>,
    released: Option<&'a str>,
    seq: u64,
    timestamp: i64,
}

impl Entry {
    /// Builds entry `seq` after `prev_hash` and computes its hash.
    pub fn seal(draft: EntryDraft, seq: u64, prev_hash: EntryHash) -> Self {
        let mut e = Entry {
            seq,
            timestamp: draft.timestamp,
            actor: draft.actor,
            action: draft.action,
            project: draft.project,
            job_id: draft.job_id,
            decision: draft.decision,
            released: draft.released,
            prev_hash,
            hash: EntryHash::GENESIS,
        };
        e.hash = e.compute_hash();
        e
    }

    /// The canonical JSON of every field but `hash`: one object, keys in alphabetical order
    /// (`action, actor, decision, job_id, prev_hash, project, released, seq, timestamp`), no
    /// whitespace, absent values as `null`, strings escaped as serde_json does.
    pub fn canonical_json(&self) -> Vec<u8> {
        let c = Canonical {
            action: &self.action,
            actor: self.actor.to_string(),
            decision: self.decision.as_deref(),
            job_id: self.job_id.as_deref(),
            prev_hash: self.prev_hash.to_string(),
            project: self.project.as_deref(),
            released: self.released.as_deref(),
            seq: self.seq,
            timestamp: self.timestamp,
        };
        // A struct of strings and integers always serializes.
        serde_json::to_vec(&c).unwrap_or_default()
    }

    /// `SHA-256(HASH_DOMAIN || prev_hash (32 bytes) || canonical_json)`.
    pub fn compute_hash(&self) -> EntryHash {
        let mut h = Sha256::new();
        h.update(HASH_DOMAIN);
        h.update(self.prev_hash.0);
        h.update(self.canonical_json());
        EntryHash(h.finalize().into())
    }
}

impl fmt::Display for Entry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Escaped, so a stored string cannot drive the terminal that prints it.
        write!(
            f,
            "#{} t={} {} {}",
            self.seq,
            self.timestamp,
            self.actor.to_string().escape_debug(),
            self.action.escape_debug()
        )?;
        for (label, value) in [
            ("project", &self.project),
            ("job", &self.job_id),
            ("decision", &self.decision),
            ("released", &self.released),
        ] {
            if let Some(v) = value {
                write!(f, " {label}={}", v.escape_debug())?;
            }
        }
        Ok(())
    }
}
