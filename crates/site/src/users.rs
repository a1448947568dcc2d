//! Local accounts of the site's own staff: investigators (pre-screening lists) and data
//! stewards (approval queue). Passwords follow the same policy as the hub's (`qiao-accounts`:
//! at least 12 characters, not the user name, not a common password, not only spaces) and are
//! stored as argon2id PHC strings (m = 19 MiB, t = 2, p = 1) in `DIR/users.json`; these
//! accounts never exist at the hub.
//!
//! Alliance users (the hub's accounts) may also sign in, with a login assertion the hub signs
//! for this site ([`qiao_protocol::login`]); what they may do here is the local role the
//! steward granted them ([`Users::grant`]), under the name `alliance:ID`.

use std::collections::BTreeMap;

use anyhow::bail;
use serde::{Deserialize, Serialize};

use crate::data::{read_json, write_json, SiteDir};

pub use qiao_accounts::MIN_PASSWORD_CHARS;

/// A local role.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum LocalRole {
    /// May list the site's own patients of a cohort (pre-screening for recruitment).
    Investigator,
    /// Decides the manual approval queue.
    Steward,
}

impl std::fmt::Display for LocalRole {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            LocalRole::Investigator => "investigator",
            LocalRole::Steward => "steward",
        })
    }
}

/// One account.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LocalUser {
    /// The role.
    pub role: LocalRole,
    /// argon2id PHC string.
    pub password_hash: String,
    /// When it was created (unix seconds).
    pub created_at: i64,
}

/// `DIR/users.json`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Users {
    /// By user name.
    pub users: BTreeMap<String, LocalUser>,
    /// Local roles the steward granted to alliance users, by their hub user id.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub alliance: BTreeMap<String, LocalRole>,
    /// The time zone each user chose on the settings page ([`qiao_web::zone::Zone::name`]; an
    /// earlier version's minutes east of UTC are read as the fixed offset), by their name here
    /// (`alliance:ID` for alliance users).
    #[serde(
        default,
        skip_serializing_if = "BTreeMap::is_empty",
        deserialize_with = "zone_names"
    )]
    pub zones: BTreeMap<String, String>,
}

/// Each stored zone as its name ([`qiao_web::zone::deserialize_name`]).
fn zone_names<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<BTreeMap<String, String>, D::Error> {
    #[derive(Deserialize)]
    struct Stored(#[serde(deserialize_with = "qiao_web::zone::deserialize_name")] Option<String>);
    let raw = BTreeMap::<String, Stored>::deserialize(d)?;
    Ok(raw
        .into_iter()
        .filter_map(|(user, Stored(z))| z.map(|z| (user, z)))
        .collect())
}

/// The zone `name` chose (`None`: the page language's).
pub fn zone_of(dir: &SiteDir, name: &str) -> anyhow::Result<Option<String>> {
    Ok(Users::load(dir)?.zones.get(name).cloned())
}

/// `name` chooses a zone (`None`: the page language's).
pub fn set_zone(
    dir: &SiteDir,
    name: &str,
    zone: Option<&qiao_web::zone::Zone>,
) -> anyhow::Result<()> {
    dir.locked(|| {
        let mut users = Users::load(dir)?;
        match zone {
            Some(z) => {
                users.zones.insert(name.to_owned(), z.name().to_owned());
            }
            None => {
                users.zones.remove(name);
            }
        }
        write_json(&dir.users_path(), &users)
    })
}

/// The prefix of an alliance user's name at the site.
pub const ALLIANCE_PREFIX: &str = "alliance:";

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'-' | b'@'))
}

impl Users {
    /// Loads the accounts (none if the file does not exist).
    pub fn load(dir: &SiteDir) -> anyhow::Result<Self> {
        Ok(read_json(&dir.users_path())?.unwrap_or_default())
    }

    /// Adds an account (refusing an existing name or a short password).
    pub fn add(
        dir: &SiteDir,
        name: &str,
        role: LocalRole,
        password: &str,
        now: i64,
    ) -> anyhow::Result<()> {
        if !valid_name(name) {
            bail!("a user name is 1 to 64 characters of A-Z a-z 0-9 . _ - @");
        }
        let password_hash = qiao_accounts::hash_password(name, password)
            .map_err(|e| anyhow::anyhow!("password refused: {e}"))?;
        dir.locked(|| {
            let mut users = Self::load(dir)?;
            if users.users.contains_key(name) {
                bail!("user {name} already exists");
            }
            users.users.insert(
                name.to_owned(),
                LocalUser {
                    role,
                    password_hash,
                    created_at: now,
                },
            );
            write_json(&dir.users_path(), &users)
        })
    }

    /// The local role of `name`: a local account's, or for `alliance:ID` the role granted to
    /// alliance user `ID`.
    pub fn role_of(&self, name: &str) -> Option<LocalRole> {
        match name.strip_prefix(ALLIANCE_PREFIX) {
            Some(id) => self.alliance.get(id).copied(),
            None => self.users.get(name).map(|u| u.role),
        }
    }

    /// The steward grants alliance user `hub_user` a local role here (`None` withdraws it).
    pub fn grant(dir: &SiteDir, hub_user: &str, role: Option<LocalRole>) -> anyhow::Result<()> {
        if qiao_protocol::UserId::new(hub_user.to_owned()).is_err() {
            bail!("{hub_user:?} is not an alliance user id");
        }
        dir.locked(|| {
            let mut users = Self::load(dir)?;
            match role {
                Some(r) => {
                    users.alliance.insert(hub_user.to_owned(), r);
                }
                None => {
                    if users.alliance.remove(hub_user).is_none() {
                        bail!("alliance user {hub_user} holds no role at this site");
                    }
                }
            }
            write_json(&dir.users_path(), &users)
        })
    }

    /// Checks `name`'s password and that the account has `role`. The error does not say
    /// which of the two failed for an unknown user or a wrong password.
    pub fn authenticate(
        dir: &SiteDir,
        name: &str,
        password: &str,
        role: LocalRole,
    ) -> anyhow::Result<()> {
        let users = Self::load(dir)?;
        let denied = || anyhow::anyhow!("authentication failed for user {name:?}");
        let Some(user) = users.users.get(name) else {
            // Spend the same time as a real check, so timing does not tell names apart.
            qiao_accounts::burn_verify(password);
            return Err(denied());
        };
        if !qiao_accounts::verify_password(&user.password_hash, password) {
            return Err(denied());
        }
        if user.role != role {
            bail!("user {name} is a {}, not a {role}", user.role);
        }
        Ok(())
    }
}
