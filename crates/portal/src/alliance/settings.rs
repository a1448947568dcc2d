//! A user's own settings ([`SETTINGS`]): the time zone they read times in (default: their page
//! language's). Read when they sign in (the zone cookie is set from it) and changed on the
//! settings page; every change audited (`user.settings`).

use qiao_hub::audit::EntryDraft;
use qiao_hub::model::User;
use qiao_hub::store::{append_audit, get_json, put_json, Table};
use qiao_hub::{HubStore, StoreError};
use qiao_web::zone::Zone;
use serde::{Deserialize, Serialize};

use super::refusal::Outcome;
use super::tables::{actor, read, write};

/// Each user's settings, by user id.
pub const SETTINGS: Table = Table::Extension("user_settings");

/// A user's settings.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserSettings {
    /// The chosen zone's name ([`qiao_web::zone::Zone::name`]: an IANA name or a fixed
    /// `UTC+05:30`; minutes east of UTC as an earlier version stored them are read as the
    /// fixed offset); `None`: the page language's.
    #[serde(
        default,
        rename = "zone",
        alias = "zone_minutes",
        deserialize_with = "qiao_web::zone::deserialize_name"
    )]
    pub zone: Option<String>,
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
    zone: Option<&Zone>,
    now: i64,
) -> Outcome<UserSettings> {
    write(store, |tx| {
        let mut s: UserSettings = get_json(tx, SETTINGS, by.id.as_str())?.unwrap_or_default();
        s.zone = zone.map(|z| z.name().to_owned());
        put_json(tx, SETTINGS, by.id.as_str(), &s)?;
        append_audit(
            tx,
            EntryDraft::new(now, actor(by), "user.settings").decision(match zone {
                Some(z) => format!("time zone {}", z.name()),
                None => "time zone of the page language".to_owned(),
            }),
        )?;
        Ok(s)
    })
}
