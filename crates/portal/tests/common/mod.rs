//! A test harness: a hub over a fresh redb store, the portal's app, and a browser-like client
//! (cookie jar, CSRF field scraping) that calls the router in process.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use axum::Router;
use qiao_hub::api::{build_user, CreateUserRequest};
use qiao_hub::audit::Actor;
use qiao_hub::protocol::{UserId, UserRole};
use qiao_hub::{Hub, HubConfig, HubStore, RedbStore};
use qiao_portal::PortalConfig;
use tower::ServiceExt;

pub const PASSWORD: &str = "correct horse battery";

pub struct World {
    pub _dir: tempfile::TempDir,
    pub store: Arc<dyn HubStore>,
    pub hub: Arc<Hub>,
    pub app: Router,
}

impl World {
    pub fn new() -> World {
        let dir = tempfile::tempdir().expect("tempdir");
        let store: Arc<dyn HubStore> = Arc::new(RedbStore::open(dir.path()).expect("redb"));
        let hub = Arc::new(Hub::new(store.clone(), HubConfig::default()).expect("hub"));
        let app = qiao_portal::app(
            hub.clone(),
            PortalConfig {
                secure_cookies: true,
                public_url: Some("https://portal.example".into()),
            },
        );
        World {
            _dir: dir,
            store,
            hub,
            app,
        }
    }

    pub fn user(&self, id: &str, role: UserRole, institution: Option<&str>, site: Option<&str>) {
        let req = CreateUserRequest {
            id: UserId::new(id.to_owned()).expect("user id"),
            password: PASSWORD.to_owned(),
            role,
            institution: institution.map(str::to_owned),
            site: site.map(|s| s.parse().expect("site id")),
        };
        let u = build_user(self.store.as_ref(), req, 1_700_000_000).expect("build user");
        self.store
            .create_user(&u, &Actor::System, 1_700_000_000)
            .expect("create user");
    }

    pub fn client(&self) -> Client {
        Client {
            app: self.app.clone(),
            cookies: BTreeMap::new(),
            lang: None,
            referer: None,
        }
    }
}

pub struct Resp {
    pub status: StatusCode,
    pub location: Option<String>,
    pub set_cookies: Vec<String>,
    pub headers: axum::http::HeaderMap,
    pub body: String,
}

impl Resp {
    /// The CSRF token of the first form on the page.
    pub fn csrf(&self) -> String {
        let marker = "name=\"csrf\" value=\"";
        let i = self
            .body
            .find(marker)
            .unwrap_or_else(|| panic!("no csrf field in {}", self.body));
        self.body[i + marker.len()..]
            .split('"')
            .next()
            .unwrap_or("")
            .to_owned()
    }
}

pub struct Client {
    pub app: Router,
    pub cookies: BTreeMap<String, String>,
    pub lang: Option<&'static str>,
    /// Sent as `Referer` when set (a browser sends the page a form was on).
    pub referer: Option<String>,
}

fn encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

impl Client {
    pub async fn send(&mut self, method: &str, path: &str, form: Option<&[(&str, &str)]>) -> Resp {
        let mut b = Request::builder().method(method).uri(path);
        if !self.cookies.is_empty() {
            let c: Vec<String> = self
                .cookies
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            b = b.header(header::COOKIE, c.join("; "));
        }
        if let Some(l) = self.lang {
            b = b.header(header::ACCEPT_LANGUAGE, l);
        }
        if let Some(r) = &self.referer {
            b = b.header(header::REFERER, r.as_str());
        }
        let body = match form {
            Some(f) => {
                b = b.header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
                let s: Vec<String> = f
                    .iter()
                    .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
                    .collect();
                Body::from(s.join("&"))
            }
            None => Body::empty(),
        };
        let resp = self
            .app
            .clone()
            .oneshot(b.body(body).expect("request"))
            .await
            .expect("infallible");
        let status = resp.status();
        let headers = resp.headers().clone();
        let set_cookies: Vec<String> = headers
            .get_all(header::SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok().map(str::to_owned))
            .collect();
        for c in &set_cookies {
            let first = c.split(';').next().unwrap_or("");
            if let Some((k, v)) = first.split_once('=') {
                if v.is_empty() || c.contains("Max-Age=0") {
                    self.cookies.remove(k);
                } else {
                    self.cookies.insert(k.to_owned(), v.to_owned());
                }
            }
        }
        let location = headers
            .get(header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let bytes = axum::body::to_bytes(resp.into_body(), 16 << 20)
            .await
            .expect("body");
        Resp {
            status,
            location,
            set_cookies,
            headers,
            body: String::from_utf8_lossy(&bytes).into_owned(),
        }
    }

    pub async fn get(&mut self, path: &str) -> Resp {
        self.send("GET", path, None).await
    }

    /// GETs `page`, takes its CSRF token, and POSTs `fields` (plus the token) to `action`.
    pub async fn submit(&mut self, page: &str, action: &str, fields: &[(&str, &str)]) -> Resp {
        let csrf = self.get(page).await.csrf();
        let mut all: Vec<(&str, &str)> = vec![("csrf", &csrf)];
        all.extend_from_slice(fields);
        self.send("POST", action, Some(&all)).await
    }

    pub async fn login(&mut self, user: &str) {
        let r = self
            .submit(
                "/login",
                "/login?next=/",
                &[("username", user), ("password", PASSWORD)],
            )
            .await;
        assert_eq!(
            r.status,
            StatusCode::SEE_OTHER,
            "login of {user}: {}",
            r.body
        );
    }
}

/// 2026-11-25 00:00 UTC.
pub const T: i64 = 1_795_564_800;

/// A user record.
pub fn u(w: &World, id: &str) -> qiao_hub::model::User {
    w.store
        .user(&UserId::new(id.to_owned()).unwrap())
        .unwrap()
        .unwrap()
}

/// A membership application.
pub fn app(id: &str, kind: &str, site: &str) -> qiao_portal::alliance::Application {
    qiao_portal::alliance::Application {
        id: id.into(),
        name: format!("{id} name"),
        kind: kind.into(),
        region: "Shanghai".into(),
        contact: format!("office@{id}.example.cn"),
        description: "A member.".into(),
        site: site.into(),
    }
}

/// Members, experts and users of a small alliance: pharma (enterprise, sponsor "spon"), two
/// hospitals h1/h2 with sites, committee members c1 (from pharma: conflicted), c2, c3.
pub fn alliance(w: &World) {
    for s in ["h1", "h2"] {
        let site = qiao_hub::model::Site {
            id: s.parse().unwrap(),
            name: s.into(),
            public_key: None,
            enrolled_at: None,
            enrollment: None,
            created_at: T,
        };
        w.store
            .create_site(&site, &qiao_hub::audit::Actor::System, T)
            .unwrap();
    }
    w.user("admin", UserRole::AllianceAdmin, None, None);
    w.user("spon", UserRole::SponsorResearcher, Some("pharma"), None);
    w.user("c1", UserRole::CommitteeMember, Some("pharma"), None);
    w.user("c2", UserRole::CommitteeMember, Some("h1"), None);
    w.user("c3", UserRole::CommitteeMember, Some("h2"), None);
    w.user("stew1", UserRole::SiteDataSteward, None, Some("h1"));
    w.user("stew2", UserRole::SiteDataSteward, None, Some("h2"));
    w.user("inv1", UserRole::SiteInvestigator, None, Some("h1"));
    let admin = u(w, "admin");
    for (id, kind, site) in [
        ("pharma", "enterprise", ""),
        ("h1", "hospital", "h1"),
        ("h2", "hospital", "h2"),
    ] {
        qiao_portal::alliance::apply(w.store.as_ref(), &app(id, kind, site), None, T).unwrap();
        qiao_portal::alliance::decide_institution(w.store.as_ref(), id, true, "", &admin, T)
            .unwrap();
    }
    for (user, inst) in [("c1", "pharma"), ("c2", "h1"), ("c3", "h2")] {
        let f = qiao_portal::alliance::ExpertForm {
            user: user.into(),
            name: format!("Dr {user}"),
            institution: inst.into(),
            fields: "cardiology, epidemiology".into(),
            start: "2026-01-01".into(),
            end: "2028-12-31".into(),
            letter: format!("QA-2026-{user}"),
        };
        qiao_portal::alliance::appoint_expert(w.store.as_ref(), &f, &admin, T).unwrap();
    }
}

/// Gives sites h1 and h2 a registered key (as if enrolled), so jobs go to them.
pub fn enroll_sites(w: &World) {
    for s in ["h1", "h2"] {
        let id: qiao_hub::protocol::SiteId = s.parse().unwrap();
        let mut site = w.store.site(&id).unwrap().unwrap();
        let key = qiao_hub::protocol::keys::generate_signing_key();
        site.public_key = Some(qiao_hub::protocol::PublicKey::new(key.verifying_key()).unwrap());
        site.enrolled_at = Some(T);
        w.store
            .write(&mut |tx| qiao_hub::store::put_json(tx, qiao_hub::store::Table::Sites, s, &site))
            .unwrap();
    }
}
