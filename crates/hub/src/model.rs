//! The hub's records: users, tokens, sites, projects, jobs and results.

use qiao_protocol::{
    Job, JobResult, ProjectId, PublicKey, SiteId, SiteStatus, StoredToken, UserId, UserRole,
};
use serde::{Deserialize, Serialize};

/// Longest free-text field (titles, institution names), in characters.
pub const MAX_TEXT_CHARS: usize = 200;

/// A role's wire name.
pub fn role_name(role: UserRole) -> &'static str {
    match role {
        UserRole::AllianceAdmin => "alliance_admin",
        UserRole::CommitteeMember => "committee_member",
        UserRole::SponsorResearcher => "sponsor_researcher",
        UserRole::SiteDataSteward => "site_data_steward",
        UserRole::SiteInvestigator => "site_investigator",
        UserRole::Auditor => "auditor",
    }
}

/// Every role, in a fixed order.
pub const ALL_ROLES: [UserRole; 6] = [
    UserRole::AllianceAdmin,
    UserRole::CommitteeMember,
    UserRole::SponsorResearcher,
    UserRole::SiteDataSteward,
    UserRole::SiteInvestigator,
    UserRole::Auditor,
];

/// Parses a role's wire name.
pub fn parse_role(s: &str) -> Option<UserRole> {
    ALL_ROLES.into_iter().find(|r| role_name(*r) == s)
}

/// Checks a free-text field: 1 to [`MAX_TEXT_CHARS`] characters, no control characters.
pub fn valid_text(s: &str) -> bool {
    let n = s.chars().count();
    (1..=MAX_TEXT_CHARS).contains(&n) && !s.chars().any(char::is_control)
}

/// A user account.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct User {
    /// The login name.
    pub id: UserId,
    /// The one role the account acts in.
    pub role: UserRole,
    /// The member enterprise or hospital (sponsor researchers).
    pub institution: Option<String>,
    /// The site (data stewards and investigators).
    pub site: Option<SiteId>,
    /// Argon2id PHC string.
    pub password_hash: String,
    /// Creation time (unix seconds).
    pub created_at: i64,
}

/// What a user record looks like to API clients (no password hash).
#[derive(utoipa::ToSchema, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserView {
    /// The login name.
    pub id: UserId,
    /// The role's wire name.
    pub role: UserRole,
    /// Institution, if any.
    pub institution: Option<String>,
    /// Site, if any.
    pub site: Option<SiteId>,
    /// Creation time.
    pub created_at: i64,
}

impl From<&User> for UserView {
    fn from(u: &User) -> Self {
        Self {
            id: u.id.clone(),
            role: u.role,
            institution: u.institution.clone(),
            site: u.site.clone(),
            created_at: u.created_at,
        }
    }
}

/// Session (web login) or API (CLI) token.
#[derive(utoipa::ToSchema, Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenKind {
    /// From `POST /api/v1/login`; expires.
    Session,
    /// From `POST /api/v1/tokens`; for the CLI.
    Api,
}

/// A stored bearer token: only the SHA-256 of the secret is kept.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenRecord {
    /// Hex SHA-256 of the token text.
    pub hash: String,
    /// The owner.
    pub user_id: UserId,
    /// Session or API.
    pub kind: TokenKind,
    /// Creation time.
    pub created_at: i64,
    /// Expiry (unix seconds), if any.
    pub expires_at: Option<i64>,
    /// A label given by the user.
    pub label: Option<String>,
    /// The [`token_id`] of the session that created this API token, if one did (so that
    /// signing out of that session can name the API tokens that stay valid).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub minted_by: Option<String>,
}

/// The public id of a token: the first 16 hex digits of its hash (what a user lists and
/// revokes; it reveals nothing of the secret).
pub fn token_id(hash: &str) -> String {
    hash.chars().take(16).collect()
}

/// What a token looks like in `GET /api/v1/tokens`.
#[derive(utoipa::ToSchema, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenView {
    /// The token's public id ([`token_id`]).
    pub id: String,
    /// Session or API.
    pub kind: TokenKind,
    /// The label, if any.
    pub label: Option<String>,
    /// Creation time.
    pub created_at: i64,
    /// Expiry.
    pub expires_at: Option<i64>,
    /// The session that created it, if any.
    pub minted_by: Option<String>,
    /// Whether this is the token of the request.
    pub current: bool,
}

impl TokenView {
    /// The view of `rec`; `current` if it is the hash of the presented token.
    pub fn of(rec: &TokenRecord, current_hash: &str) -> Self {
        Self {
            id: token_id(&rec.hash),
            kind: rec.kind,
            label: rec.label.clone(),
            created_at: rec.created_at,
            expires_at: rec.expires_at,
            minted_by: rec.minted_by.clone(),
            current: rec.hash == current_hash,
        }
    }
}

/// A site (hospital) of the network.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Site {
    /// The site id (what envelopes carry).
    pub id: SiteId,
    /// Display name.
    pub name: String,
    /// The registered Ed25519 key, once enrolled.
    pub public_key: Option<PublicKey>,
    /// When the key was registered.
    pub enrolled_at: Option<i64>,
    /// The last enrollment token issued (hash, expiry, used flag).
    pub enrollment: Option<StoredToken>,
    /// Creation time.
    pub created_at: i64,
}

/// What a site record looks like to API clients.
#[derive(utoipa::ToSchema, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SiteView {
    /// The site id.
    pub id: SiteId,
    /// Display name.
    pub name: String,
    /// Whether a key is registered.
    pub enrolled: bool,
    /// The key's fingerprint.
    pub key_fingerprint: Option<String>,
    /// When it enrolled.
    pub enrolled_at: Option<i64>,
    /// When the hub last received a poll from it (since the hub started).
    #[serde(default)]
    pub last_seen: Option<i64>,
    /// The status its last poll carried, if any.
    #[serde(default)]
    pub status: Option<SiteStatus>,
}

/// What the hub knows of a site from its polls. Kept in memory only (no durable write per
/// poll): after a restart it is empty until each site's next poll, a few seconds later.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SiteSeen {
    /// When the last poll arrived (unix seconds).
    pub last_seen: i64,
    /// The status the last poll carried (a poll without one keeps the previous status).
    pub status: Option<SiteStatus>,
}

impl From<&Site> for SiteView {
    fn from(s: &Site) -> Self {
        Self {
            id: s.id.clone(),
            name: s.name.clone(),
            enrolled: s.public_key.is_some(),
            key_fingerprint: s.public_key.as_ref().map(PublicKey::fingerprint),
            enrolled_at: s.enrolled_at,
            last_seen: None,
            status: None,
        }
    }
}

impl SiteView {
    /// The view with what the hub saw of the site's polls.
    pub fn with_seen(mut self, seen: Option<&SiteSeen>) -> Self {
        if let Some(seen) = seen {
            self.last_seen = Some(seen.last_seen);
            self.status = seen.status.clone();
        }
        self
    }
}

/// A project: queries run only under an approved one, by its members.
#[derive(utoipa::ToSchema, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Project {
    /// The project id.
    pub id: ProjectId,
    /// Title.
    pub title: String,
    /// Approved by the committee.
    pub approved: bool,
    /// Members (any role).
    pub members: Vec<UserId>,
    /// Creation time.
    pub created_at: i64,
}

/// A job and the sites it was sent to.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobRecord {
    /// What the sites receive.
    pub job: Job,
    /// The sites asked, in order.
    pub sites: Vec<SiteId>,
    /// Submission order (1, 2, ...).
    pub seq: u64,
    /// Per site: when the job was last delivered, and how often.
    pub deliveries: Vec<Delivery>,
}

/// Delivery state of a job for one site.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Delivery {
    /// The site.
    pub site: SiteId,
    /// First delivery time.
    pub first_at: Option<i64>,
    /// Last delivery time.
    pub last_at: Option<i64>,
    /// Number of deliveries.
    pub count: u32,
}

/// A site's result as stored (once per job and site).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoredResult {
    /// The verified result.
    pub result: JobResult,
    /// When it arrived.
    pub received_at: i64,
    /// Why the hub rejected it as implausible ([`crate::floors::implausible`]); a rejected
    /// result is shown as such and left out of the network totals.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rejected: Option<String>,
}
