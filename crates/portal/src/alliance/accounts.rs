//! Accounts of member institutions' people: invitation links an alliance admin makes for an
//! approved institution (a role, and a site for site roles), redeemed by the invitee choosing
//! a user name and password; password-reset links (the same mechanism for an existing user);
//! role changes; and where each site's own pages are (for the alliance sign-in there).
//!
//! A link's secret is shown once; only its SHA-256 is stored. Links last 7 days and are used
//! once. Every change is audited in the same transaction.

use qiao_hub::audit::EntryDraft;
use qiao_hub::model::User;
use qiao_hub::protocol::{SiteId, UserId, UserRole};
use qiao_hub::store::{append_audit, get_json, put_json, scan_json, Table};
use qiao_hub::util::{random_token, token_hash};
use qiao_hub::{HubStore, StoreError};
use serde::{Deserialize, Serialize};

use super::institutions::{Institution, MemberStatus};
use super::refusal::{field, Outcome, Refusal};
use super::tables::{actor, read, write, ACCOUNT_INVITES, INSTITUTIONS, SITE_PAGES};

/// How long an invitation or reset link lasts (7 days).
pub const LINK_SECS: i64 = 7 * 24 * 3600;
/// Prefix of link secrets.
const LINK_PREFIX: &str = "qiao-i-";

/// An invitation to create an account, or a password reset of an existing one.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountInvite {
    /// The role of the new account (or the existing one's).
    pub role: UserRole,
    /// The institution's id.
    pub institution: String,
    /// The site (site roles).
    pub site: Option<SiteId>,
    /// A password reset of this user (else a new account).
    pub reset_of: Option<UserId>,
    /// Who made it.
    pub created_by: UserId,
    /// When.
    pub created_at: i64,
    /// Valid until.
    pub expires_at: i64,
    /// The account created or reset with it.
    pub used_by: Option<UserId>,
    /// When.
    pub used_at: Option<i64>,
}

/// Parses a role's wire name.
pub fn parse_role(s: &str) -> Option<UserRole> {
    serde_json::from_value(serde_json::Value::String(s.to_owned())).ok()
}

fn is_site_role(r: UserRole) -> bool {
    matches!(r, UserRole::SiteDataSteward | UserRole::SiteInvestigator)
}

/// Checks role, institution and site together (the hub's rules: site roles need a site of the
/// institution, others none).
fn check_placement(
    tx: &mut dyn qiao_hub::store::Tx,
    role: UserRole,
    institution: &str,
    site: &str,
) -> Outcome<(Institution, Option<SiteId>)> {
    let inst: Institution = get_json(tx, INSTITUTIONS, institution)?
        .ok_or_else(|| field("institution", "acct.err_institution"))?;
    if inst.status != MemberStatus::Approved {
        return Err(field("institution", "acct.err_institution"));
    }
    let site = if is_site_role(role) {
        let s: SiteId = site
            .parse()
            .ok()
            .or_else(|| inst.site.clone().filter(|_| site.is_empty()))
            .ok_or_else(|| field("site", "acct.err_site"))?;
        if tx.get(Table::Sites, s.as_str())?.is_none() {
            return Err(field("site", "form.err_no_site"));
        }
        Some(s)
    } else if site.is_empty() {
        None
    } else {
        return Err(field("site", "acct.err_site_role"));
    };
    Ok((inst, site))
}

/// An alliance admin invites a person of an approved institution: the link's secret (shown
/// once) and the record.
pub fn invite_account(
    store: &dyn HubStore,
    role: &str,
    institution: &str,
    site: &str,
    by: &User,
    now: i64,
) -> Outcome<(String, AccountInvite)> {
    if by.role != UserRole::AllianceAdmin {
        return Err(Refusal::Forbidden);
    }
    let role = parse_role(role).ok_or_else(|| field("role", "form.err_choice"))?;
    write(store, |tx| {
        let (inst, site) = check_placement(tx, role, institution.trim(), site.trim())?;
        let secret = random_token(LINK_PREFIX);
        let inv = AccountInvite {
            role,
            institution: inst.id.clone(),
            site,
            reset_of: None,
            created_by: by.id.clone(),
            created_at: now,
            expires_at: now + LINK_SECS,
            used_by: None,
            used_at: None,
        };
        put_json(tx, ACCOUNT_INVITES, &token_hash(&secret), &inv)?;
        append_audit(
            tx,
            EntryDraft::new(now, actor(by), "account.invite").decision(format!(
                "invitation for a {} of {}",
                qiao_hub::model::role_name(role),
                inst.id
            )),
        )?;
        Ok((secret, inv.clone()))
    })
}

/// An alliance admin makes a password-reset link for `user` (its current sessions and tokens
/// end when it is used).
pub fn reset_link(
    store: &dyn HubStore,
    user: &str,
    by: &User,
    now: i64,
) -> Outcome<(String, AccountInvite)> {
    if by.role != UserRole::AllianceAdmin {
        return Err(Refusal::Forbidden);
    }
    write(store, |tx| {
        let u: User = get_json(tx, Table::Users, user)?.ok_or(Refusal::NotFound)?;
        let secret = random_token(LINK_PREFIX);
        let inv = AccountInvite {
            role: u.role,
            institution: u.institution.clone().unwrap_or_default(),
            site: u.site.clone(),
            reset_of: Some(u.id.clone()),
            created_by: by.id.clone(),
            created_at: now,
            expires_at: now + LINK_SECS,
            used_by: None,
            used_at: None,
        };
        put_json(tx, ACCOUNT_INVITES, &token_hash(&secret), &inv)?;
        append_audit(
            tx,
            EntryDraft::new(now, actor(by), "account.reset_link")
                .decision(format!("password-reset link for user {}", u.id)),
        )?;
        Ok((secret, inv.clone()))
    })
}

/// The still-usable link with this secret.
pub fn open_invite(
    store: &dyn HubStore,
    secret: &str,
    now: i64,
) -> Result<Option<AccountInvite>, StoreError> {
    let inv: Option<AccountInvite> = read(store, |tx| {
        get_json(tx, ACCOUNT_INVITES, &token_hash(secret))
    })?;
    Ok(inv.filter(|i| i.used_by.is_none() && now < i.expires_at))
}

/// Redeems a link: creates the account (user name and password chosen by the invitee) or sets
/// the reset user's new password, ending their sessions. The password follows the policy.
pub fn redeem_invite(
    store: &dyn HubStore,
    secret: &str,
    username: &str,
    password: &str,
    now: i64,
) -> Result<User, Vec<Refusal>> {
    let inv = open_invite(store, secret, now)
        .map_err(|e| vec![e.into()])?
        .ok_or_else(|| vec![Refusal::State("acct.err_link")])?;
    let id = match &inv.reset_of {
        Some(u) => u.clone(),
        None => UserId::new(username.trim().to_owned())
            .map_err(|_| vec![field("username", "acct.err_username")])?,
    };
    // argon2 outside the transaction.
    let hash = qiao_hub::auth::hash_password(id.as_str(), password).map_err(|e| {
        vec![Refusal::Field {
            field: "password",
            key: "acct.err_password",
            args: vec![("reason", e.to_string())],
        }]
    })?;
    write(store, |tx| {
        let key = token_hash(secret);
        let mut inv: AccountInvite = get_json(tx, ACCOUNT_INVITES, &key)?
            .filter(|i: &AccountInvite| i.used_by.is_none() && now < i.expires_at)
            .ok_or(Refusal::State("acct.err_link"))?;
        let user = match &inv.reset_of {
            Some(u) => {
                let mut user: User = get_json(tx, Table::Users, u.as_str())?
                    .ok_or(Refusal::State("acct.err_link"))?;
                user.password_hash = hash.clone();
                let tokens: Vec<qiao_hub::model::TokenRecord> = scan_json(tx, Table::Tokens, "")?;
                for rec in tokens.iter().filter(|r| r.user_id == user.id) {
                    tx.delete(Table::Tokens, &rec.hash)?;
                }
                user
            }
            None => {
                if tx.get(Table::Users, id.as_str())?.is_some() {
                    return Err(field("username", "form.err_taken"));
                }
                User {
                    id: id.clone(),
                    role: inv.role,
                    institution: Some(inv.institution.clone()),
                    site: inv.site.clone(),
                    password_hash: hash.clone(),
                    created_at: now,
                }
            }
        };
        put_json(tx, Table::Users, user.id.as_str(), &user)?;
        inv.used_by = Some(user.id.clone());
        inv.used_at = Some(now);
        put_json(tx, ACCOUNT_INVITES, &key, &inv)?;
        let (action, what) = if inv.reset_of.is_some() {
            (
                "account.reset",
                format!("user {} set a new password", user.id),
            )
        } else {
            (
                "user.create",
                format!(
                    "user {} as {} of {} (invitation)",
                    user.id,
                    qiao_hub::model::role_name(user.role),
                    inv.institution
                ),
            )
        };
        append_audit(
            tx,
            EntryDraft::new(now, actor(&user), action).decision(what),
        )?;
        Ok(user)
    })
    .map_err(|e| vec![e])
}

/// An alliance admin changes a user's role (with the institution and site the role needs).
pub fn change_role(
    store: &dyn HubStore,
    user: &str,
    role: &str,
    institution: &str,
    site: &str,
    by: &User,
    now: i64,
) -> Outcome<User> {
    if by.role != UserRole::AllianceAdmin {
        return Err(Refusal::Forbidden);
    }
    let role = parse_role(role).ok_or_else(|| field("role", "form.err_choice"))?;
    write(store, |tx| {
        let mut u: User = get_json(tx, Table::Users, user)?.ok_or(Refusal::NotFound)?;
        if u.id == by.id && role != UserRole::AllianceAdmin {
            return Err(Refusal::State("acct.err_self"));
        }
        let (inst, site) = check_placement(tx, role, institution.trim(), site.trim())?;
        let before = qiao_hub::model::role_name(u.role);
        u.role = role;
        u.institution = Some(inst.id.clone());
        u.site = site;
        put_json(tx, Table::Users, u.id.as_str(), &u)?;
        append_audit(
            tx,
            EntryDraft::new(now, actor(by), "user.role").decision(format!(
                "user {}: {before} → {} of {}",
                u.id,
                qiao_hub::model::role_name(role),
                inst.id
            )),
        )?;
        Ok(u.clone())
    })
}

/// Every invitation and reset link (for the admin's list), newest first.
pub fn account_invites(store: &dyn HubStore) -> Result<Vec<AccountInvite>, StoreError> {
    let mut v: Vec<AccountInvite> = read(store, |tx| scan_json(tx, ACCOUNT_INVITES, ""))?;
    v.sort_by_key(|i| std::cmp::Reverse(i.created_at));
    Ok(v)
}

/// Where a site's own pages are (an `https://` or `http://` base URL), set by an alliance
/// admin or the site's data steward.
pub fn set_site_pages(
    store: &dyn HubStore,
    site: &SiteId,
    url: &str,
    by: &User,
    now: i64,
) -> Outcome<()> {
    let own_steward = by.role == UserRole::SiteDataSteward && by.site.as_ref() == Some(site);
    if by.role != UserRole::AllianceAdmin && !own_steward {
        return Err(Refusal::Forbidden);
    }
    let url = url.trim().trim_end_matches('/');
    let ok = (url.starts_with("https://") || url.starts_with("http://"))
        && url.len() <= 300
        && url.len() > 8
        && !url
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || c == '"' || c == '<');
    if !ok {
        return Err(field("url", "acct.err_url"));
    }
    write(store, |tx| {
        if tx.get(Table::Sites, site.as_str())?.is_none() {
            return Err(Refusal::NotFound);
        }
        put_json(tx, SITE_PAGES, site.as_str(), &url.to_owned())?;
        append_audit(
            tx,
            EntryDraft::new(now, actor(by), "site.pages")
                .decision(format!("site {site}'s pages at {url}")),
        )?;
        Ok(())
    })
}

/// Where a site's pages are, if known.
pub fn site_pages(store: &dyn HubStore, site: &SiteId) -> Result<Option<String>, StoreError> {
    read(store, |tx| get_json(tx, SITE_PAGES, site.as_str()))
}
