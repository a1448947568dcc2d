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
