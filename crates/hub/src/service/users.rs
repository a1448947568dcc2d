//! Accounts: a new user checked against the roles' rules and the password policy.

use qiao_protocol::{SiteId, UserId, UserRole};
use serde::{Deserialize, Serialize};

use crate::auth;
use crate::model::{valid_text, User};
use crate::store::{HubStore, StoreError};

/// Why a new user is refused.
#[derive(Debug, thiserror::Error)]
pub enum UserRefused {
    /// A field that does not fit the role or the text rules.
    #[error("{0}")]
    Invalid(&'static str),
    /// The site named does not exist.
    #[error("no site {0}")]
    UnknownSite(SiteId),
    /// The password policy refuses the password.
    #[error("{0}")]
    WeakPassword(auth::PasswordError),
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// `POST /api/v1/users` body (and `qiao hub create-user`).
#[derive(utoipa::ToSchema, Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateUserRequest {
    /// Login name.
    pub id: UserId,
    /// Initial password.
    pub password: String,
    /// Role.
    pub role: UserRole,
    /// Institution (required for sponsor researchers).
    #[serde(default)]
    pub institution: Option<String>,
    /// Site (required for site data stewards and investigators).
    #[serde(default)]
    pub site: Option<SiteId>,
}

/// Validates a new user and hashes the password (slow: call off the async threads).
pub fn build_user(
    store: &dyn HubStore,
    req: CreateUserRequest,
    t: i64,
) -> Result<User, UserRefused> {
    if let Some(i) = &req.institution {
        if !valid_text(i) {
            return Err(UserRefused::Invalid(
                "institution: 1 to 200 characters without control characters",
            ));
        }
    }
    match req.role {
        UserRole::SponsorResearcher if req.institution.is_none() => {
            return Err(UserRefused::Invalid(
                "a sponsor researcher belongs to an institution: give institution",
            ))
        }
        UserRole::SiteDataSteward | UserRole::SiteInvestigator => match &req.site {
            None => {
                return Err(UserRefused::Invalid(
                    "site data stewards and investigators belong to a site: give site",
                ))
            }
            Some(s) => {
                if store.site(s)?.is_none() {
                    return Err(UserRefused::UnknownSite(s.clone()));
                }
            }
        },
        _ if req.site.is_some() => {
            return Err(UserRefused::Invalid(
                "only site data stewards and investigators belong to a site",
            ))
        }
        _ => {}
    }
    let password_hash =
        auth::hash_password(req.id.as_str(), &req.password).map_err(UserRefused::WeakPassword)?;
    Ok(User {
        id: req.id,
        role: req.role,
        institution: req.institution,
        site: req.site,
        password_hash,
        created_at: t,
    })
}
