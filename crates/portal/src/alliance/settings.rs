//! A user's own settings ([`SETTINGS`]): the time zone they read times in (default: their page
//! language's). Read when they sign in (the zone cookie is set from it) and changed on the
//! settings page; every change audited (`user.settings`).

use qiao_hub::audit::EntryDraft;
use qiao_hub::model::User;
use qiao_hub::store::{append_audit, get_json, put_json, Table};
use qiao_hub::{HubStore, StoreError};
use serde::{Deserialize, Serialize};

use super::refusal::Outcome;
use super::tables::{actor, read, write};

/// Each user's settings, by user id.
pub const SETTINGS: Table = Table::Extension("user_settings");

/// A user's settings.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserSettings {
    /// The chosen zone, minutes east of UTC (one of [`qiao_web::zone::CHOICES`]); `None`: the
    /// page language's.
    #[serde(default)]
    pub zone_minutes: Option<i32>,
}

/// The settings of user `id` (defaults if never saved).
pub fn user_settings(store: &dyn HubStore, id: &str) -> Result<UserSettings, StoreError> {
    read(store, |tx| {
        Ok(get_json::<UserSettings>(tx, SETTINGS, id)?.unwrap_or_default())
    })
}

/// `by` chooses their zone (`None`: the page language's). Audited.
pub fn set_zone(
    store: &dyn HubStore,
    by: &User,
    zone_minutes: Option<i32>,
    now: i64,
) -> Outcome<UserSettings> {
    write(store, |tx| {
        let mut s: UserSettings = get_json(tx, SETTINGS, by.id.as_str())?.unwrap_or_default();
        s.zone_minutes = zone_minutes;
        put_json(tx, SETTINGS, by.id.as_str(), &s)?;
        append_audit(
            tx,
            EntryDraft::new(now, actor(by), "user.settings").decision(match zone_minutes {
                Some(m) => format!("time zone {}", qiao_web::zone::label(m)),
                None => "time zone of the page language".to_owned(),
            }),
        )?;
        Ok(s)
    })
}
