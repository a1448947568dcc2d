//! The OpenAPI document as one HTML page (`GET /api/v1/docs`): the operations by resource,
//! each with its parameters, request body, responses and examples, then every schema. Plain
//! server-rendered HTML: no script, nothing loaded from elsewhere.

use std::fmt::Write;

use serde_json::{Map, Value};

fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Text with `code` spans (backticks) kept as code.
fn prose(s: &str) -> String {
    esc(s)
        .split('`')
        .enumerate()
        .map(|(i, part)| {
            if i % 2 == 1 {
                format!("<code>{part}</code>")
            } else {
                part.to_owned()
            }
        })
        .collect()
}

fn anchor(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '-'
            }
        })
        .collect()
}

fn schema_link(name: &str) -> String {
    format!("<a href=\"#schema-{}\">{}</a>", anchor(name), esc(name))
}

/// A schema in one line: `string`, `array of Site`, `integer | null`, `"a" | "b"`, links to
/// named schemas.
fn type_of(s: &Value) -> String {
    if let Some(r) = s.get("$ref").and_then(Value::as_str) {
        return schema_link(r.rsplit('/').next().unwrap_or(r));
    }
    if let Some(values) = s.get("enum").and_then(Value::as_array) {
        return values
            .iter()
            .map(|v| format!("<code>{}</code>", esc(&v.to_string())))
            .collect::<Vec<_>>()
            .join(" | ");
    }
    for key in ["oneOf", "anyOf"] {
        if let Some(alts) = s.get(key).and_then(Value::as_array) {
            return alts.iter().map(type_of).collect::<Vec<_>>().join(" | ");
        }
    }
    if let Some(parts) = s.get("allOf").and_then(Value::as_array) {
        return parts.iter().map(type_of).collect::<Vec<_>>().join(" and ");
    }
    let types: Vec<String> = match s.get("type") {
        Some(Value::String(t)) => vec![t.clone()],
        Some(Value::Array(ts)) => ts
            .iter()
            .filter_map(Value::as_str)
            .map(String::from)
            .collect(),
        _ => Vec::new(),
    };
    let mut out: Vec<String> = types
        .iter()
        .map(|t| match t.as_str() {
            "array" => format!("array of {}", s.get("items").map_or("any".into(), type_of)),
            "object" if s.get("properties").is_some() => {
                let props = s["properties"]
                    .as_object()
                    .map(object_fields)
                    .unwrap_or_default();
                format!("object {{{props}}}")
            }
            t => esc(t),
        })
        .collect();
    if out.is_empty() {
        out.push("any JSON".into());
    }
    out.join(" | ")
}

fn object_fields(props: &Map<String, Value>) -> String {
    props
        .iter()
        .map(|(k, v)| format!("{}: {}", esc(k), type_of(v)))
        .collect::<Vec<_>>()
        .join(", ")
}

fn example_block(out: &mut String, label: &str, v: &Value) {
    let text = serde_json::to_string_pretty(v).unwrap_or_default();
    let _ = write!(
        out,
        "<p class=ex>{}</p><pre>{}</pre>",
        esc(label),
        esc(&text)
    );
}

fn examples_of(out: &mut String, media: &Value) {
    if let Some(e) = media.get("example") {
        example_block(out, "Example", e);
    }
    for (name, e) in media
        .get("examples")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
    {
        if let Some(v) = e.get("value") {
            example_block(out, &format!("Example: {name}"), v);
        }
    }
}

fn content(out: &mut String, c: &Value) {
    for (media_type, media) in c.as_object().into_iter().flatten() {
        let _ = write!(
            out,
            "<p><code>{}</code>: {}</p>",
            esc(media_type),
            media.get("schema").map_or("any".into(), type_of)
        );
        examples_of(out, media);
    }
}

fn operation(out: &mut String, path: &str, method: &str, op: &Map<String, Value>) {
    let id = op.get("operationId").and_then(Value::as_str).unwrap_or("");
    let _ = write!(
        out,
        "<section class=op id=\"op-{}\"><h3><span class=\"m {m}\">{}</span> <code>{}</code></h3>",
        anchor(id),
        esc(&method.to_uppercase()),
        esc(path),
        m = esc(method),
    );
    for key in ["summary", "description"] {
        if let Some(t) = op.get(key).and_then(Value::as_str) {
            let _ = write!(out, "<p>{}</p>", prose(t));
        }
    }
    let security: Vec<String> = op
        .get("security")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_object)
        .flat_map(|s| s.keys().map(|k| esc(k)))
        .collect();
    let _ = write!(
        out,
        "<p><b>Sign-in:</b> {}</p>",
        if security.is_empty() {
            "none".to_owned()
        } else {
            security.join(" or ")
        }
    );
    if let Some(params) = op.get("parameters").and_then(Value::as_array) {
        out.push_str(
            "<table><tr><th>Parameter</th><th>In</th><th>Type</th><th>Description</th></tr>",
        );
        for p in params {
            let _ = write!(
                out,
                "<tr><td><code>{}</code>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(p["name"].as_str().unwrap_or("")),
                if p["required"] == Value::Bool(true) {
                    " (required)"
                } else {
                    ""
                },
                esc(p["in"].as_str().unwrap_or("")),
                p.get("schema").map_or("any".into(), type_of),
                prose(p["description"].as_str().unwrap_or("")),
            );
        }
        out.push_str("</table>");
    }
    if let Some(body) = op.get("requestBody") {
        out.push_str("<h4>Request body</h4>");
        if let Some(d) = body.get("description").and_then(Value::as_str) {
            let _ = write!(out, "<p>{}</p>", prose(d));
        }
        content(out, &body["content"]);
    }
    out.push_str("<h4>Responses</h4>");
    for (status, r) in op["responses"].as_object().into_iter().flatten() {
        let _ = write!(
            out,
            "<div class=resp><p><b>{}</b> {}</p>",
            esc(status),
            prose(r["description"].as_str().unwrap_or(""))
        );
        content(out, &r["content"]);
        out.push_str("</div>");
    }
    out.push_str("</section>");
}

fn schema(out: &mut String, name: &str, s: &Value) {
    let _ = write!(
        out,
        "<section class=schema id=\"schema-{}\"><h3>{}</h3>",
        anchor(name),
        esc(name)
    );
    if let Some(d) = s.get("description").and_then(Value::as_str) {
        let _ = write!(out, "<p>{}</p>", prose(d));
    }
    if let Some(props) = s.get("properties").and_then(Value::as_object) {
        let required: Vec<&str> = s["required"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        out.push_str("<table><tr><th>Field</th><th>Type</th><th>Description</th></tr>");
        for (k, v) in props {
            let _ = write!(
                out,
                "<tr><td><code>{}</code>{}</td><td>{}</td><td>{}</td></tr>",
                esc(k),
                if required.contains(&k.as_str()) {
                    " (required)"
                } else {
                    ""
                },
                type_of(v),
                prose(v["description"].as_str().unwrap_or("")),
            );
        }
        out.push_str("</table>");
    } else if let Some(alts) = s.get("oneOf").and_then(Value::as_array) {
        out.push_str("<p>One of:</p><ul>");
        for a in alts {
            let d = a["description"].as_str().unwrap_or("");
            let _ = write!(out, "<li>{} {}</li>", type_of(a), prose(d));
        }
        out.push_str("</ul>");
    } else {
        let _ = write!(out, "<p>{}</p>", type_of(s));
    }
    if let Some(p) = s.get("pattern").and_then(Value::as_str) {
        let _ = write!(out, "<p>Pattern: <code>{}</code></p>", esc(p));
    }
    for e in s
        .get("examples")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        example_block(out, "Example", e);
    }
    out.push_str("</section>");
}

const STYLE: &str = "body{font:15px/1.45 system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;color:#222}\
code,pre{font-family:ui-monospace,monospace;font-size:13px}pre{background:#f5f5f5;padding:.5rem;overflow:auto}\
table{border-collapse:collapse;margin:.5rem 0}td,th{border:1px solid #ddd;padding:.2rem .5rem;text-align:left;vertical-align:top}\
section{border-top:1px solid #ccc;margin-top:1rem}.m{font-weight:bold;text-transform:uppercase}.get{color:#06c}.post{color:#080}.delete{color:#b00}\
.resp{margin-left:1rem}.ex{margin-bottom:0;color:#555}";

/// The page of `doc`, its operations grouped by `tags` (in that order).
pub fn render(doc: &Value, tags: &[(&str, &str)]) -> String {
    let title = doc["info"]["title"].as_str().unwrap_or("API");
    let mut out = String::new();
    let _ = write!(
        out,
        "<!doctype html><html lang=en><head><meta charset=utf-8><title>{t}</title><style>{STYLE}</style></head><body><h1>{t} <small>{}</small></h1><p>{}</p><p>OpenAPI {}: <a href=\"/api/v1/openapi.json\">/api/v1/openapi.json</a></p>",
        esc(doc["info"]["version"].as_str().unwrap_or("")),
        prose(doc["info"]["description"].as_str().unwrap_or("")),
        esc(doc["openapi"].as_str().unwrap_or("")),
        t = esc(title),
    );
    out.push_str("<h2>Sign-in</h2><ul>");
    for (name, s) in doc["components"]["securitySchemes"]
        .as_object()
        .into_iter()
        .flatten()
    {
        let _ = write!(
            out,
            "<li><b>{}</b>: {}</li>",
            esc(name),
            prose(s["description"].as_str().unwrap_or(""))
        );
    }
    out.push_str("</ul>");
    let ops = operations(doc);
    let tag_of = |op: &Map<String, Value>| {
        op.get("tags")
            .and_then(|t| t.get(0))
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned()
    };
    out.push_str("<h2>Operations</h2><ul>");
    for (tag, _) in tags {
        for (path, method, op) in ops.iter().filter(|(_, _, op)| tag_of(op) == *tag) {
            let id = op.get("operationId").and_then(Value::as_str).unwrap_or("");
            let _ = write!(
                out,
                "<li><a href=\"#op-{}\"><span class=\"m {m}\">{m}</span> <code>{}</code></a> {}</li>",
                anchor(id),
                esc(path),
                esc(op.get("summary").and_then(Value::as_str).unwrap_or("")),
                m = esc(method),
            );
        }
    }
    out.push_str("</ul>");
    for (tag, description) in tags {
        let _ = write!(out, "<h2>{}</h2><p>{}</p>", esc(tag), prose(description));
        for (path, method, op) in ops.iter().filter(|(_, _, op)| tag_of(op) == *tag) {
            operation(&mut out, path, method, op);
        }
    }
    out.push_str("<h2>Schemas</h2>");
    for (name, s) in doc["components"]["schemas"]
        .as_object()
        .into_iter()
        .flatten()
    {
        schema(&mut out, name, s);
    }
    out.push_str("</body></html>\n");
    out
}

/// The operations of a document: (path, method, operation).
fn operations(doc: &Value) -> Vec<(&str, &str, &Map<String, Value>)> {
    let mut out = Vec::new();
    for (path, item) in doc["paths"].as_object().into_iter().flatten() {
        for (method, op) in item.as_object().into_iter().flatten() {
            if let Some(op) = op
                .as_object()
                .filter(|_| METHODS.contains(&method.as_str()))
            {
                out.push((path.as_str(), method.as_str(), op));
            }
        }
    }
    out
}

/// The HTTP methods a path item can hold.
const METHODS: &[&str] = &[
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];
