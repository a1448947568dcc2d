//! Reading the CDM from a PostgreSQL schema: each table is streamed with
//! `COPY (SELECT * FROM schema.table) TO STDOUT (FORMAT csv, HEADER)` through the same row checks as
//! a CSV file, so both paths produce the same store. Nothing is buffered beyond the parsed columns.

use std::collections::BTreeMap;

use postgres::{Client, NoTls};
use qiao_cdm::{RawTable, TableKind, TableSpec, TABLES};

use crate::delimited::{read_table, ReadOptions};
use crate::report::{IngestReport, TableReport};
use crate::{IngestError, Located};

/// A PostgreSQL database URL with the CDM schema (and the vocabulary schema, if different).
pub struct PostgresSource {
    pub url: String,
    pub schema: String,
    pub vocab_schema: Option<String>,
}

fn pg_err(context: &str, e: postgres::Error) -> IngestError {
    // The driver's Display is terse ("db error"); the source carries the server's message.
    let detail = std::error::Error::source(&e).map_or_else(|| e.to_string(), |s| s.to_string());
    IngestError::Postgres(format!("{context}: {detail}"))
}

/// Quotes an identifier for PostgreSQL (double quotes, embedded quotes doubled).
fn ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

impl PostgresSource {
    fn connect(&self) -> Result<Client, IngestError> {
        let mut client = Client::connect(&self.url, NoTls)
            .map_err(|e| pg_err(&format!("cannot connect to {}", redact(&self.url)), e))?;
        client
            .batch_execute("SET DateStyle = 'ISO, YMD'; SET extra_float_digits = 3")
            .map_err(|e| pg_err("session setup", e))?;
        Ok(client)
    }

    /// Lists the schema's tables and matches them to CDM tables (names in any case).
    pub(crate) fn locate(
        &self,
        report: &mut IngestReport,
    ) -> Result<Vec<(&'static TableSpec, Located)>, IngestError> {
        let mut client = self.connect()?;
        let vocab = self
            .vocab_schema
            .clone()
            .unwrap_or_else(|| self.schema.clone());
        let mut names: BTreeMap<(String, String), String> = BTreeMap::new();
        for schema in [&self.schema, &vocab] {
            let found = client
                .query_opt(
                    "SELECT 1 FROM information_schema.schemata WHERE schema_name = $1",
                    &[schema],
                )
                .map_err(|e| pg_err("listing schemas", e))?;
            if found.is_none() {
                return Err(IngestError::Postgres(format!(
                    "schema {schema} does not exist in {}",
                    redact(&self.url)
                )));
            }
            let rows = client
                .query(
                    "SELECT table_name FROM information_schema.tables WHERE table_schema = $1",
                    &[schema],
                )
                .map_err(|e| pg_err("listing tables", e))?;
            for row in rows {
                let name: String = row.get(0);
                names.insert((schema.clone(), name.to_ascii_lowercase()), name);
            }
        }
        let mut out = Vec::new();
        for spec in TABLES {
            let schema = if spec.kind == TableKind::Vocabulary {
                &vocab
            } else {
                &self.schema
            };
            match names.get(&(schema.clone(), spec.name.to_string())) {
                Some(table) => out.push((
                    *spec,
                    Located::Postgres {
                        schema: schema.clone(),
                        table: table.clone(),
                    },
                )),
                None if spec.required => {
                    return Err(IngestError::Postgres(format!(
                        "required table {schema}.{} not found",
                        spec.name
                    )));
                }
                None => report.absent_tables.push(spec.name.to_string()),
            }
        }
        Ok(out)
    }

    /// Streams one table through the row checks.
    pub(crate) fn read(
        &self,
        spec: &'static TableSpec,
        schema: &str,
        table: &str,
        opts: ReadOptions,
        on_bytes: &mut dyn FnMut(u64),
    ) -> Result<(RawTable, TableReport), IngestError> {
        let mut client = self.connect()?;
        let sql = format!(
            "COPY (SELECT * FROM {}.{}) TO STDOUT WITH (FORMAT csv, HEADER true)",
            ident(schema),
            ident(table)
        );
        let reader = client
            .copy_out(sql.as_str())
            .map_err(|e| pg_err(&format!("reading {schema}.{table}"), e))?;
        read_table(
            spec,
            &format!("postgres:{schema}.{table}"),
            reader,
            opts,
            on_bytes,
        )
    }
}

/// The connection string without its password, for messages: a URL's `user:password@` and
/// `password=` query parameter, or a key/value conninfo's `password=…` (quoted or not).
fn redact(url: &str) -> String {
    let mut out = match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s && !url[s + 3..at].contains(['/', '?']) => {
            let creds = &url[s + 3..at];
            match creds.find(':') {
                Some(c) => format!("{}{}:***{}", &url[..s + 3], &creds[..c], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    };
    if out.contains("://") {
        // Query parameters: ?password=…&…
        if let Some(q) = out.find('?') {
            let query: Vec<String> = out[q + 1..]
                .split('&')
                .map(|kv| match kv.split_once('=') {
                    Some((k, _)) if k.eq_ignore_ascii_case("password") => format!("{k}=***"),
                    _ => kv.to_string(),
                })
                .collect();
            out = format!("{}?{}", &out[..q], query.join("&"));
        }
        return out;
    }
    redact_conninfo(&out)
}

/// `key=value` conninfo with every `password` value replaced by `***`.
fn redact_conninfo(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    while i < b.len() {
        // Copy whitespace, then one key.
        if b[i].is_ascii_whitespace() {
            out.push(b[i] as char);
            i += 1;
            continue;
        }
        let key_start = i;
        while i < b.len() && b[i] != b'=' && !b[i].is_ascii_whitespace() {
            i += 1;
        }
        let key = &s[key_start..i];
        out.push_str(key);
        // Spaces and '=' between key and value.
        let sep_start = i;
        while i < b.len() && (b[i].is_ascii_whitespace() || b[i] == b'=') {
            i += 1;
        }
        out.push_str(&s[sep_start..i]);
        if !s[sep_start..i].contains('=') {
            continue;
        }
        // The value: 'quoted, with \' escapes' or up to whitespace.
        let value_start = i;
        if i < b.len() && b[i] == b'\'' {
            i += 1;
            while i < b.len() && b[i] != b'\'' {
                i += if b[i] == b'\\' { 2 } else { 1 };
            }
            i = (i + 1).min(b.len());
        } else {
            while i < b.len() && !b[i].is_ascii_whitespace() {
                i += 1;
            }
        }
        if key.eq_ignore_ascii_case("password") {
            out.push_str("***");
        } else {
            out.push_str(&s[value_start..i]);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_are_quoted_and_passwords_redacted() {
        assert_eq!(ident("cdm"), "\"cdm\"");
        assert_eq!(ident("a\"b"), "\"a\"\"b\"");
        assert_eq!(
            redact("postgres://u:secret@h:5/db"),
            "postgres://u:***@h:5/db"
        );
        assert_eq!(redact("host=/tmp user=x"), "host=/tmp user=x");
        assert_eq!(
            redact("host=h user=u password=secret dbname=d"),
            "host=h user=u password=*** dbname=d"
        );
        assert_eq!(
            redact("host=h password = 'sec ret\\'s' port=5"),
            "host=h password = *** port=5"
        );
        assert_eq!(
            redact("postgres://h:5/db?user=u&password=secret&sslmode=disable"),
            "postgres://h:5/db?user=u&password=***&sslmode=disable"
        );
        assert_eq!(
            redact("postgresql://u:secret@h/db?connect_timeout=5"),
            "postgresql://u:***@h/db?connect_timeout=5"
        );
        assert_eq!(redact("postgres://u@h/db"), "postgres://u@h/db");
    }
}
