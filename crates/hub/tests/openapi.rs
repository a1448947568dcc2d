//! The OpenAPI document (`GET /api/v1/openapi.json`, unauthenticated) against the hub itself:
//! - it is a valid OpenAPI 3.1 document: version, unique operation ids, every `$ref`
//!   resolves, every path parameter declared, every security scheme and tag defined;
//! - its operations are exactly the router's routes (paths read from the router, methods
//!   probed over HTTP: 405 is "no such method here");
//! - every example it documents validates against its schema, and so does every answer of a
//!   run through every operation of a real hub (success and error bodies alike);
//! - the docs page shows every operation, and the README's examples name documented paths.
//!
//! Schemas are checked by the small JSON Schema validator below, which knows the keywords the
//! document uses and fails on any other (so nothing passes unchecked). The `jsonschema` crate
//! was not used: it turns on serde_json's `float_roundtrip` for every crate of the test build
//! (a different float parse, a rebuild of everything above serde_json) and brings ~25 crates.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use common::*;
use qiao_hub::api::HubConfig;
use qiao_hub::audit::Actor;
use qiao_hub::client::{HubClient, RawResponse};
use qiao_hub::protocol::{Envelope, JobResult, Message, Outcome, RefusalReason, UserRole};
use qiao_hub::util::now;
use serde_json::{json, Value};

const METHODS: &[&str] = &["get", "put", "post", "delete", "patch"];

// ---------------------------------------------------------------- the schema validator

/// Validates instances against the schemas of one document (`$ref`s resolve in it).
struct Validator<'a> {
    doc: &'a Value,
    patterns: std::cell::RefCell<BTreeMap<String, regex::Regex>>,
}

/// Keywords that only describe.
const ANNOTATIONS: &[&str] = &[
    "description",
    "title",
    "examples",
    "example",
    "default",
    "deprecated",
    "discriminator",
    "readOnly",
    "writeOnly",
    "contentMediaType",
    "format",
];

/// Formats the document may use (annotations; the type and bounds carry the check).
const FORMATS: &[&str] = &[
    "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64", "float", "double",
];

impl<'a> Validator<'a> {
    fn new(doc: &'a Value) -> Self {
        Self {
            doc,
            patterns: Default::default(),
        }
    }

    fn resolve(&self, r: &str) -> &'a Value {
        let pointer = r
            .strip_prefix('#')
            .unwrap_or_else(|| panic!("$ref {r} is not local"));
        self.doc
            .pointer(pointer)
            .unwrap_or_else(|| panic!("$ref {r} does not resolve"))
    }

    /// The problems of `v` against `s`, each with its JSON path (empty: valid).
    fn check(&self, s: &Value, v: &Value, at: &str) -> Vec<String> {
        let mut errs = Vec::new();
        self.check_into(s, v, at, &mut errs);
        errs
    }

    fn check_into(&self, s: &Value, v: &Value, at: &str, errs: &mut Vec<String>) {
        let Some(obj) = s.as_object() else {
            if s == &Value::Bool(false) {
                errs.push(format!("{at}: not allowed"));
            }
            return;
        };
        for (k, kv) in obj {
            match k.as_str() {
                "$ref" => {
                    let target = self.resolve(kv.as_str().expect("$ref string"));
                    self.check_into(target, v, at, errs);
                }
                "type" => {
                    let types: Vec<&str> = match kv {
                        Value::String(t) => vec![t],
                        Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
                        other => panic!("type {other}"),
                    };
                    if !types.iter().any(|t| type_is(t, v)) {
                        errs.push(format!("{at}: {v} is not {}", types.join(" or ")));
                    }
                }
                "enum" => {
                    if !kv.as_array().expect("enum").contains(v) {
                        errs.push(format!("{at}: {v} not in {kv}"));
                    }
                }
                "const" => {
                    if kv != v {
                        errs.push(format!("{at}: {v} is not {kv}"));
                    }
                }
                "properties" => {
                    if let Some(o) = v.as_object() {
                        for (name, ps) in kv.as_object().expect("properties") {
                            if let Some(pv) = o.get(name) {
                                self.check_into(ps, pv, &format!("{at}.{name}"), errs);
                            }
                        }
                    }
                }
                "required" => {
                    if let Some(o) = v.as_object() {
                        for name in kv.as_array().expect("required") {
                            let name = name.as_str().expect("required name");
                            if !o.contains_key(name) {
                                errs.push(format!("{at}: missing {name}"));
                            }
                        }
                    }
                }
                "additionalProperties" => {
                    if let Some(o) = v.as_object() {
                        let known = obj.get("properties").and_then(Value::as_object);
                        for (name, pv) in o {
                            if known.is_some_and(|p| p.contains_key(name)) {
                                continue;
                            }
                            self.check_into(kv, pv, &format!("{at}.{name}"), errs);
                        }
                    }
                }
                "propertyNames" => {
                    if let Some(o) = v.as_object() {
                        for name in o.keys() {
                            self.check_into(kv, &json!(name), &format!("{at} key {name}"), errs);
                        }
                    }
                }
                "items" => {
                    if let Some(a) = v.as_array() {
                        for (i, iv) in a.iter().enumerate() {
                            self.check_into(kv, iv, &format!("{at}[{i}]"), errs);
                        }
                    }
                }
                "allOf" => {
                    for sub in kv.as_array().expect("allOf") {
                        self.check_into(sub, v, at, errs);
                    }
                }
                "anyOf" => {
                    let alts = kv.as_array().expect("anyOf");
                    if !alts.iter().any(|a| self.check(a, v, at).is_empty()) {
                        errs.push(format!("{at}: {v} matches none of anyOf"));
                    }
                }
                "oneOf" => {
                    let alts = kv.as_array().expect("oneOf");
                    let fits: Vec<Vec<String>> =
                        alts.iter().map(|a| self.check(a, v, at)).collect();
                    let n = fits.iter().filter(|e| e.is_empty()).count();
                    if n != 1 {
                        errs.push(format!(
                            "{at}: {v} matches {n} of oneOf (exactly 1 needed): {fits:?}"
                        ));
                    }
                }
                "minimum" | "maximum" | "exclusiveMinimum" | "exclusiveMaximum" => {
                    if let Some(x) = v.as_f64() {
                        let b = kv.as_f64().expect("bound");
                        let ok = match k.as_str() {
                            "minimum" => x >= b,
                            "maximum" => x <= b,
                            "exclusiveMinimum" => x > b,
                            _ => x < b,
                        };
                        if !ok {
                            errs.push(format!("{at}: {x} breaks {k} {b}"));
                        }
                    }
                }
                "minLength" | "maxLength" => {
                    if let Some(t) = v.as_str() {
                        let n = t.chars().count() as u64;
                        let b = kv.as_u64().expect("length");
                        if (k == "minLength" && n < b) || (k == "maxLength" && n > b) {
                            errs.push(format!("{at}: length {n} breaks {k} {b}"));
                        }
                    }
                }
                "minItems" | "maxItems" => {
                    if let Some(a) = v.as_array() {
                        let n = a.len() as u64;
                        let b = kv.as_u64().expect("items");
                        if (k == "minItems" && n < b) || (k == "maxItems" && n > b) {
                            errs.push(format!("{at}: {n} items break {k} {b}"));
                        }
                    }
                }
                "pattern" => {
                    if let Some(t) = v.as_str() {
                        let p = kv.as_str().expect("pattern");
                        let mut cache = self.patterns.borrow_mut();
                        let re = cache
                            .entry(p.to_owned())
                            .or_insert_with(|| regex::Regex::new(p).expect("pattern compiles"));
                        if !re.is_match(t) {
                            errs.push(format!("{at}: {t:?} does not match {p}"));
                        }
                    }
                }
                "format" => {
                    let f = kv.as_str().expect("format");
                    assert!(
                        FORMATS.contains(&f),
                        "format {f} is not known to the validator"
                    );
                }
                k if ANNOTATIONS.contains(&k) => {}
                k => panic!("schema keyword {k} at {at} is not known to the validator"),
            }
        }
    }
}

fn type_is(t: &str, v: &Value) -> bool {
    match t {
        "null" => v.is_null(),
        "boolean" => v.is_boolean(),
        "string" => v.is_string(),
        "array" => v.is_array(),
        "object" => v.is_object(),
        "number" => v.is_number(),
        "integer" => v.is_i64() || v.is_u64() || v.as_f64().is_some_and(|x| x.fract() == 0.0),
        other => panic!("type {other} is not a JSON Schema type"),
    }
}

#[test]
fn the_validator_refuses_what_does_not_fit() {
    let doc = json!({"components": {"schemas": {
        "Id": {"type": "string", "pattern": "^[a-z]+$"},
        "Thing": {"type": "object", "additionalProperties": false, "required": ["id"],
            "properties": {"id": {"$ref": "#/components/schemas/Id"},
                "n": {"type": ["integer", "null"], "minimum": 0}}},
        "Either": {"oneOf": [{"type": "string"}, {"type": "integer"}]}}}});
    let v = Validator::new(&doc);
    let thing = json!({"$ref": "#/components/schemas/Thing"});
    assert!(v
        .check(&thing, &json!({"id": "abc", "n": 3}), "$")
        .is_empty());
    assert!(v
        .check(&thing, &json!({"id": "abc", "n": null}), "$")
        .is_empty());
    for bad in [
        json!({"n": 3}),
        json!({"id": "ABC"}),
        json!({"id": "abc", "n": -1}),
        json!({"id": "abc", "n": 1.5}),
        json!({"id": "abc", "extra": 1}),
        json!(["abc"]),
    ] {
        assert!(!v.check(&thing, &bad, "$").is_empty(), "{bad} passed");
    }
    let either = json!({"$ref": "#/components/schemas/Either"});
    assert!(v.check(&either, &json!(1), "$").is_empty());
    assert!(!v.check(&either, &json!(true), "$").is_empty());
}

// ---------------------------------------------------------------- the document's own rules

/// Every `$ref` in `v`, with where it is.
fn refs<'a>(v: &'a Value, at: String, out: &mut Vec<(String, &'a str)>) {
    match v {
        Value::Object(o) => {
            for (k, x) in o {
                if k == "$ref" {
                    if let Some(r) = x.as_str() {
                        out.push((at.clone(), r));
                    }
                } else {
                    refs(x, format!("{at}/{k}"), out);
                }
            }
        }
        Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                refs(x, format!("{at}/{i}"), out);
            }
        }
        _ => {}
    }
}

fn operations(doc: &Value) -> Vec<(String, String, &Value)> {
    let mut out = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().expect("path item") {
            assert!(
                METHODS.contains(&method.as_str()),
                "{path}: unexpected key {method}"
            );
            out.push((path.clone(), method.clone(), op));
        }
    }
    out
}

fn check_document_rules(doc: &Value) {
    assert_eq!(doc["openapi"], "3.1.0");
    assert!(doc["info"]["title"].is_string() && doc["info"]["version"].is_string());
    let ops = operations(doc);
    assert!(ops.len() >= 25, "only {} operations", ops.len());
    let mut ids = BTreeSet::new();
    let schemes = doc["components"]["securitySchemes"]
        .as_object()
        .expect("security schemes");
    assert!(schemes.contains_key("session") && schemes.contains_key("api_token"));
    let tags: BTreeSet<&str> = doc["tags"]
        .as_array()
        .expect("tags")
        .iter()
        .filter_map(|t| t["name"].as_str())
        .collect();
    for (path, method, op) in &ops {
        let id = op["operationId"].as_str().expect("operationId");
        assert!(ids.insert(id.to_owned()), "operationId {id} twice");
        let responses = op["responses"].as_object().expect("responses");
        assert!(
            responses.keys().any(|s| s.starts_with('2')),
            "{method} {path}: no success response"
        );
        for t in op["tags"].as_array().expect("tags of the operation") {
            assert!(
                tags.contains(t.as_str().unwrap_or("")),
                "{method} {path}: tag {t}"
            );
        }
        for s in op["security"].as_array().into_iter().flatten() {
            for name in s.as_object().expect("requirement").keys() {
                assert!(schemes.contains_key(name), "{method} {path}: scheme {name}");
            }
        }
        // Every {param} of the path is a required path parameter, and nothing else is.
        let in_path: BTreeSet<&str> = path
            .split('/')
            .filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
            .collect();
        let declared: BTreeSet<&str> = op["parameters"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|p| p["in"] == "path")
            .map(|p| {
                assert_eq!(
                    p["required"], true,
                    "{method} {path}: optional path parameter"
                );
                p["name"].as_str().expect("name")
            })
            .collect();
        assert_eq!(in_path, declared, "{method} {path}: path parameters");
    }
    let mut all = Vec::new();
    refs(doc, String::new(), &mut all);
    assert!(all.len() > 50, "only {} $refs", all.len());
    for (at, r) in all {
        let pointer = r
            .strip_prefix('#')
            .unwrap_or_else(|| panic!("{at}: {r} not local"));
        assert!(
            doc.pointer(pointer).is_some(),
            "{at}: $ref {r} does not resolve"
        );
    }
}

/// Every example of the document (media types and schemas) against its schema; returns how
/// many there are.
fn check_examples(doc: &Value) -> usize {
    let v = Validator::new(doc);
    let mut n = 0;
    let mut fail = Vec::new();
    let mut media = |at: &str, m: &Value| {
        let schema = &m["schema"];
        let mut one = |label: String, e: &Value| {
            n += 1;
            fail.extend(v.check(schema, e, &label));
        };
        if let Some(e) = m.get("example") {
            one(format!("{at} example"), e);
        }
        for (name, e) in m["examples"].as_object().into_iter().flatten() {
            one(format!("{at} example {name}"), &e["value"]);
        }
    };
    for (path, method, op) in operations(doc) {
        for (mt, m) in op["requestBody"]["content"]
            .as_object()
            .into_iter()
            .flatten()
        {
            media(&format!("{method} {path} request {mt}"), m);
        }
        for (status, r) in op["responses"].as_object().into_iter().flatten() {
            for (mt, m) in r["content"].as_object().into_iter().flatten() {
                media(&format!("{method} {path} {status} {mt}"), m);
            }
        }
    }
    fn schemas<'a>(s: &'a Value, at: String, out: &mut Vec<(String, &'a Value)>) {
        let Some(o) = s.as_object() else { return };
        if o.contains_key("examples") || o.contains_key("example") {
            out.push((at.clone(), s));
        }
        for (k, x) in o {
            match k.as_str() {
                "properties" => {
                    for (p, ps) in x.as_object().into_iter().flatten() {
                        schemas(ps, format!("{at}.{p}"), out);
                    }
                }
                "items" | "additionalProperties" => schemas(x, format!("{at}[]"), out),
                "oneOf" | "anyOf" | "allOf" => {
                    for (i, a) in x.as_array().into_iter().flatten().enumerate() {
                        schemas(a, format!("{at}/{k}/{i}"), out);
                    }
                }
                _ => {}
            }
        }
    }
    let mut with_examples = Vec::new();
    for (name, s) in doc["components"]["schemas"].as_object().expect("schemas") {
        schemas(s, name.clone(), &mut with_examples);
    }
    for (at, s) in with_examples {
        let examples: Vec<&Value> = s["examples"]
            .as_array()
            .into_iter()
            .flatten()
            .chain(s.get("example"))
            .collect();
        for e in examples {
            n += 1;
            fail.extend(v.check(s, e, &format!("schema {at} example")));
        }
    }
    assert!(
        fail.is_empty(),
        "examples that do not validate:\n{}",
        fail.join("\n")
    );
    n
}

// ---------------------------------------------------------------- the router's routes

/// The paths of the router, as its `Debug` form lists them (axum keeps no public list).
fn router_paths() -> BTreeSet<String> {
    let ts = redb();
    let hub = qiao_hub::Hub::new(ts.store.clone(), HubConfig::default()).expect("hub");
    let debug = format!("{:?}", qiao_hub::router(Arc::new(hub)));
    let paths: BTreeSet<String> = debug
        .split('"')
        .filter(|s| s.starts_with("/api/"))
        .map(str::to_owned)
        .collect();
    assert!(
        paths.len() >= 20,
        "the router's Debug form no longer lists its paths (axum changed?): {paths:?}"
    );
    paths
}

/// The (path, method) pairs the running hub routes: each method is probed with a bare request
/// (no token, no body); 405 means the path has no such method.
fn routed(client: &HubClient, paths: &BTreeSet<String>) -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    for path in paths {
        let concrete: String = path
            .split('/')
            .map(|s| if s.starts_with('{') { "x1" } else { s })
            .collect::<Vec<_>>()
            .join("/");
        for m in METHODS {
            let r = client
                .raw(&m.to_uppercase(), &concrete, None)
                .expect("probe");
            if r.status != 405 {
                assert!(
                    r.json()["error"]["message"] != "no such endpoint",
                    "{m} {path}: the router lists the path but does not route it"
                );
                out.insert((path.clone(), m.to_string()));
            }
        }
    }
    out
}

// ---------------------------------------------------------------- a run through the API

/// Checks real answers against the document.
struct Run<'a> {
    doc: &'a Value,
    v: Validator<'a>,
    checked: BTreeSet<(String, String, u16)>,
}

impl Run<'_> {
    /// Calls `op` ("get /api/v1/jobs/{id}") as `client` at `path` (`""`: the op's own path),
    /// expects `status`, and validates the answer's body against the document's schema for
    /// that operation and status; returns the answer.
    fn call(
        &mut self,
        client: &HubClient,
        op: &str,
        path: &str,
        body: Option<Value>,
        status: u16,
    ) -> RawResponse {
        let (method, template) = op.split_once(' ').expect("method and path");
        let path = if path.is_empty() { template } else { path };
        let bytes = body.map(|b| b.to_string().into_bytes());
        let r = client
            .raw(&method.to_uppercase(), path, bytes.as_deref())
            .expect("call");
        let text = String::from_utf8_lossy(&r.body);
        assert_eq!(r.status, status, "{method} {path}: {text}");
        self.validate(op, status, &r);
        r
    }

    fn validate(&mut self, op: &str, status: u16, r: &RawResponse) {
        let (method, template) = op.split_once(' ').expect("method and path");
        let op = &self.doc["paths"][template][method];
        assert!(op.is_object(), "{method} {template} is not documented");
        let resp = &op["responses"][status.to_string()];
        assert!(
            resp.is_object(),
            "{method} {template}: status {status} is not documented"
        );
        match resp["content"].as_object() {
            None => assert!(r.body.is_empty(), "{method} {template} {status}: a body"),
            Some(c) => {
                if let Some(m) = c.get("application/json") {
                    let body: Value = serde_json::from_slice(&r.body)
                        .unwrap_or_else(|e| panic!("{method} {template} {status}: {e}"));
                    let errs = self.v.check(&m["schema"], &body, "$");
                    assert!(
                        errs.is_empty(),
                        "{method} {template} {status}: the answer does not fit its schema:\n{}\n{body:#}",
                        errs.join("\n")
                    );
                }
            }
        }
        self.checked
            .insert((template.to_owned(), method.to_owned(), status));
    }
}

#[test]
fn the_document_describes_the_running_hub() {
    let ts = redb();
    let store = ts.store.clone();
    let sys = Actor::System;
    store.create_site(&site("h1"), &sys, 1).unwrap();
    for (name, role) in [
        ("admin", UserRole::AllianceAdmin),
        ("alice", UserRole::SponsorResearcher),
        ("audrey", UserRole::Auditor),
    ] {
        store.create_user(&user(name, role), &sys, 1).unwrap();
    }
    let hub = start_hub(store.clone(), HubConfig::default());
    let url = hub.url();
    let anon = HubClient::new(&url, None).unwrap();
    let token = |name: &str| api_token(store.as_ref(), &format!("qiao-t-openapi-{name}"), name);
    let admin = HubClient::new(&url, None)
        .unwrap()
        .with_token(token("admin"));
    let auditor = HubClient::new(&url, None)
        .unwrap()
        .with_token(token("audrey"));

    // (c) the document is valid OpenAPI 3.1, fetched as the checks fetch it.
    let r = anon.raw("GET", "/api/v1/openapi.json", None).unwrap();
    assert_eq!(r.status, 200);
    let doc: Value = serde_json::from_slice(&r.body).expect("the document is JSON");
    if let Ok(dir) = std::env::var("QIAO_OPENAPI_DUMP") {
        // To read what the hub serves: the document and the page, written to `dir`.
        std::fs::write(format!("{dir}/openapi.json"), &r.body).expect("write");
        let page = anon.raw("GET", "/api/v1/docs", None).unwrap();
        std::fs::write(format!("{dir}/docs.html"), &page.body).expect("write");
    }
    check_document_rules(&doc);

    // (a) its operations are exactly the router's routes.
    let documented: BTreeSet<(String, String)> = operations(&doc)
        .into_iter()
        .map(|(p, m, _)| (p, m))
        .collect();
    let routes = routed(&anon, &router_paths());
    let undocumented: Vec<_> = routes.difference(&documented).collect();
    let unrouted: Vec<_> = documented.difference(&routes).collect();
    assert!(
        undocumented.is_empty(),
        "routes without documentation (annotate the handler with #[utoipa::path] and list it in its module's Doc): {undocumented:?}"
    );
    assert!(
        unrouted.is_empty(),
        "documented but not routed: {unrouted:?}"
    );

    // (b) every documented example validates against its schema ...
    let examples = check_examples(&doc);
    assert!(examples >= 30, "only {examples} examples");
    eprintln!("{} operations, {examples} examples", documented.len());

    // ... and so does every answer of a run through the API.
    let mut run = Run {
        doc: &doc,
        v: Validator::new(&doc),
        checked: BTreeSet::new(),
    };
    let r = &mut run;
    r.call(&anon, "get /api/v1/health", "", None, 200);
    r.call(&anon, "get /api/v1/docs", "", None, 200);
    r.call(&anon, "get /api/v1/openapi.json", "", None, 200);
    r.call(&anon, "get /api/v1/me", "", None, 401);
    let login = json!({"username": "alice", "password": PASSWORD});
    let session = r.call(&anon, "post /api/v1/login", "", Some(login), 200);
    let alice = HubClient::new(&url, None)
        .unwrap()
        .with_token(session.json()["token"].as_str().unwrap());
    let wrong = json!({"username": "alice", "password": "not her password"});
    r.call(&anon, "post /api/v1/login", "", Some(wrong), 401);
    r.call(&alice, "get /api/v1/me", "", None, 200);
    let label = json!({"label": "laptop CLI", "expires_in_days": 90});
    let minted = r.call(&alice, "post /api/v1/tokens", "", Some(label), 201);
    assert!(minted.json()["token"]
        .as_str()
        .unwrap()
        .starts_with("qiao-t-"));
    let tokens = r.call(&alice, "get /api/v1/tokens", "", None, 200).json();
    let mut listed = tokens.as_array().unwrap().iter();
    let minted = listed.find(|t| t["label"] == "laptop CLI").expect("listed");
    let minted_id = minted["id"].as_str().unwrap().to_owned();
    let revoke = "delete /api/v1/tokens/{id}";
    r.call(&alice, revoke, "/api/v1/tokens/zz", None, 400);
    r.call(&alice, revoke, "/api/v1/tokens/0123456789abcdef", None, 404);
    r.call(
        &alice,
        revoke,
        &format!("/api/v1/tokens/{minted_id}"),
        None,
        200,
    );

    let bob = json!({"id": "bob", "password": "a long passphrase 7",
        "role": "sponsor_researcher", "institution": "Pharma Inc"});
    r.call(&admin, "post /api/v1/users", "", Some(bob.clone()), 201);
    r.call(&admin, "post /api/v1/users", "", Some(bob), 409);
    r.call(&admin, "get /api/v1/users", "", None, 200);
    r.call(&alice, "get /api/v1/users", "", None, 403);

    // Sites: registration, a one-time token, enrollment by a site.
    let h2 = json!({"id": "h2", "name": "Hospital Two"});
    r.call(&admin, "post /api/v1/sites", "", Some(h2), 201);
    r.call(
        &admin,
        "post /api/v1/sites",
        "",
        Some(json!({"id": 7})),
        422,
    );
    let not_json = admin.raw("POST", "/api/v1/sites", Some(b"{")).unwrap();
    assert_eq!(not_json.status, 400);
    r.validate("post /api/v1/sites", 400, &not_json);
    let et = "post /api/v1/sites/{id}/enrollment-token";
    let issued = r.call(&admin, et, "/api/v1/sites/h1/enrollment-token", None, 201);
    let one_time = issued.json()["token"].as_str().unwrap().to_owned();
    let mut h1 = FakeSite::new("h1", &url);
    let enrolled = h1.enroll(&one_time);
    r.validate("post /api/v1/enroll", 200, &enrolled);
    let again = h1.enroll(&one_time);
    assert_eq!(again.status, 409);
    r.validate("post /api/v1/enroll", 409, &again);
    r.call(&alice, "get /api/v1/sites", "", None, 200);

    // Projects.
    let p1 = json!({"id": "p1", "title": "Diabetes feasibility", "members": ["alice"]});
    r.call(&admin, "post /api/v1/projects", "", Some(p1.clone()), 201);
    r.call(&admin, "post /api/v1/projects", "", Some(p1), 409);
    r.call(&alice, "get /api/v1/projects", "", None, 200);
    r.call(
        &alice,
        "get /api/v1/projects/{id}",
        "/api/v1/projects/p1",
        None,
        200,
    );
    r.call(
        &admin,
        "get /api/v1/projects/{id}",
        "/api/v1/projects/p9",
        None,
        404,
    );
    let query = json!({"query_type": "cohort_count", "definition": definition()});
    let (submit, at) = (
        "post /api/v1/projects/{id}/queries",
        "/api/v1/projects/p1/queries",
    );
    r.call(&alice, submit, at, Some(query.clone()), 403);
    let approve = "post /api/v1/projects/{id}/approve";
    r.call(&admin, approve, "/api/v1/projects/p1/approve", None, 200);
    let member = "post /api/v1/projects/{id}/members";
    let bob = json!({"user": "bob"});
    r.call(
        &admin,
        member,
        "/api/v1/projects/p1/members",
        Some(bob),
        200,
    );

    // A job: submitted, pulled and answered by the site, seen with its result.
    let bad = json!({"query_type": "nothing", "definition": {}});
    r.call(&alice, submit, at, Some(bad), 422);
    let submitted = r.call(&alice, submit, at, Some(query), 201);
    let job_id = submitted.json()["job_id"].as_str().unwrap().to_owned();
    let polled = h1.post_envelope("/api/v1/site/poll?wait_secs=5", &h1.poll_envelope());
    assert_eq!(polled.status, 200);
    r.validate("post /api/v1/site/poll", 200, &polled);
    let env = Envelope::from_json(&polled.body).unwrap();
    let verifier = h1.verifier.as_ref().unwrap();
    let Message::Job(job) = h1.guard.open(verifier, &env, now()).unwrap().message else {
        panic!("expected a job")
    };
    let result = cohort_result(&job.job_id, &h1.id, 1234, 1200);
    let sealed = h1.signer.seal_result(&result, now()).unwrap();
    let acked = h1.post_envelope("/api/v1/site/result", &sealed);
    assert_eq!(acked.status, 200);
    r.validate("post /api/v1/site/result", 200, &acked);
    let replayed = h1.post_envelope("/api/v1/site/result", &sealed);
    assert_eq!(replayed.status, 409);
    r.validate("post /api/v1/site/result", 409, &replayed);
    let idle = h1.post_envelope("/api/v1/site/poll?wait_secs=0", &h1.poll_envelope());
    assert_eq!(idle.status, 204);
    r.validate("post /api/v1/site/poll", 204, &idle);
    let job = "get /api/v1/jobs/{id}";
    let view = r.call(&alice, job, &format!("/api/v1/jobs/{job_id}"), None, 200);
    assert_eq!(view.json()["sites"][0]["status"], "done");
    r.call(&alice, job, "/api/v1/jobs/nope", None, 400);

    // A regression run: started, its round refused by the site (the run fails), resumed.
    let spec = json!({"spec": {"model": "logistic", "outcome": definition(),
        "covariates": [{"kind": "age"}]}, "definition": definition(), "round_timeout_secs": 60});
    let start = "post /api/v1/projects/{id}/runs";
    let started = r.call(&alice, start, "/api/v1/projects/p1/runs", Some(spec), 201);
    let run_id = started.json()["run_id"].as_str().unwrap().to_owned();
    let polled = h1.post_envelope("/api/v1/site/poll?wait_secs=5", &h1.poll_envelope());
    let env = Envelope::from_json(&polled.body).unwrap();
    let Message::Job(round) = h1.guard.open(verifier, &env, now()).unwrap().message else {
        panic!("expected the run's round 0")
    };
    let refused = JobResult {
        job_id: round.job_id,
        site_id: h1.id.clone(),
        outcome: Outcome::Refused {
            reason: RefusalReason::Policy,
        },
    };
    let sealed = h1.signer.seal_result(&refused, now()).unwrap();
    assert_eq!(h1.post_envelope("/api/v1/site/result", &sealed).status, 200);
    let (see, at) = ("get /api/v1/runs/{id}", format!("/api/v1/runs/{run_id}"));
    let seen = r.call(&alice, see, &at, None, 200);
    assert_eq!(seen.json()["status"], "failed");
    let failure = seen.json()["failure"].as_str().unwrap().to_owned();
    assert!(
        failure.contains("round 0: site h1 refused (policy)"),
        "{failure}"
    );
    let resume = "post /api/v1/runs/{id}/resume";
    let resumed = r.call(&alice, resume, &format!("{at}/resume"), None, 200);
    assert_eq!(resumed.json()["status"], "running");
    assert_eq!(resumed.json()["rounds"].as_array().unwrap().len(), 1);
    r.call(&alice, resume, &format!("{at}/resume"), None, 409);
    r.call(&alice, "get /api/v1/budget", "", None, 200);
    r.call(
        &auditor,
        "get /api/v1/audit",
        "/api/v1/audit?limit=50",
        None,
        200,
    );
    r.call(&alice, "get /api/v1/audit", "", None, 403);

    let disable = "post /api/v1/users/{id}/disable";
    r.call(&admin, disable, "/api/v1/users/bob/disable", None, 200);
    r.call(&alice, "post /api/v1/logout", "", None, 200);

    // Every operation was called with at least one documented success answer.
    let succeeded: BTreeSet<(String, String)> = run
        .checked
        .iter()
        .filter(|(_, _, s)| (200..300).contains(s))
        .map(|(p, m, _)| (p.clone(), m.clone()))
        .collect();
    let missed: Vec<_> = documented.difference(&succeeded).collect();
    assert!(
        missed.is_empty(),
        "operations the run did not call: {missed:?}"
    );

    // The page shows every operation; the README's examples name documented paths.
    let page = anon.raw("GET", "/api/v1/docs", None).unwrap();
    let page = String::from_utf8(page.body).unwrap();
    for (path, method) in &documented {
        let id = doc["paths"][path][method]["operationId"].as_str().unwrap();
        assert!(
            page.contains(&format!("id=\"op-{id}\"")),
            "the page lacks {id}"
        );
    }
    assert!(page.contains("id=\"schema-JobView\""));
    let readme = std::fs::read_to_string("README.md").expect("README.md");
    let mut named = 0;
    for (i, _) in readme.match_indices("/api/v1/") {
        let path: String = readme[i..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || "/{}_-.".contains(*c))
            .collect();
        let segs: Vec<&str> = path.trim_end_matches('.').split('/').collect();
        let known = documented.iter().any(|(p, _)| {
            let ps: Vec<&str> = p.split('/').collect();
            ps.len() == segs.len()
                && ps
                    .iter()
                    .zip(&segs)
                    .all(|(d, s)| d == s || (d.starts_with('{') && !s.is_empty()))
        });
        assert!(known, "README.md names {path}, which the document lacks");
        named += 1;
    }
    assert!(named >= 30, "README.md names only {named} API paths");
}
