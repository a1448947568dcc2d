//! Reading the CDM from a PostgreSQL schema: tables (also views, materialized views, partitioned
//! and foreign tables) are found in the system catalog, then each is streamed with
//! `COPY (SELECT * FROM schema.table) TO STDOUT (FORMAT csv, HEADER)` through the same row checks as
//! a CSV file, so both paths produce the same store. Nothing is buffered beyond the parsed columns.
//! Every session reads dates in ISO form and `timestamptz` in one explicit time zone.

use std::collections::BTreeMap;

use postgres::Client;
use qiao_cdm::{RawTable, TableKind, TableSpec, TABLES};

use crate::conninfo::{self, Conn};
use crate::delimited::{read_table_chunks, Chunks, ReadOptions};
use crate::report::{IngestReport, TableReport};
use crate::{IngestError, Located};

/// A PostgreSQL database with the CDM schema (and the vocabulary schema, if different).
pub struct PostgresSource {
    /// A `postgres://` URL or libpq `key=value` string; empty: all from the environment
    /// (`PGHOST`, `PGSERVICE`, …). `PGPASSWORD`, `~/.pgpass` and the service file supply a password
    /// it does not carry.
    pub url: String,
    pub schema: String,
    pub vocab_schema: Option<String>,
    /// The zone `timestamptz` values are read in (a PostgreSQL `TimeZone` name); None: the
    /// server's `TimeZone` setting for this login. The one used is reported.
    pub timezone: Option<String>,
}

/// The message of an error and of its sources, each once (drivers repeat their source's text).
pub(crate) fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut cur = Some(e);
    while let Some(err) = cur {
        let text = err.to_string();
        if !text.is_empty() && !parts.iter().any(|p| p.contains(&text)) {
            // A generic wrapper ("db error", "error performing TLS handshake") goes first.
            parts.retain(|p| !text.contains(p.as_str()));
            parts.push(text);
        }
        cur = err.source();
    }
    parts.join(": ")
}

fn pg_err(context: &str, e: postgres::Error) -> IngestError {
    IngestError::Postgres(format!("{context}: {}", error_chain(&e)))
}

/// Quotes an identifier for PostgreSQL (double quotes, embedded quotes doubled).
fn ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

/// A relation of a schema, from the catalog.
struct Relation {
    name: String,
    kind: &'static str,
    readable: bool,
}

impl PostgresSource {
    fn conn(&self) -> Result<Conn, IngestError> {
        conninfo::resolve(&self.url, &conninfo::ProcessEnv).map_err(IngestError::Postgres)
    }

    /// Connects and sets the session up; returns the client and a description of the
    /// connection (TLS or not, the time zone used).
    fn connect(&self, conn: &Conn) -> Result<(Client, String, String), IngestError> {
        let (mut client, tls) = conn
            .connect()
            .map_err(|e| pg_err(&format!("cannot connect to {}", conn.display), e))?;
        let (zone, whence) = match &self.timezone {
            Some(z) => (z.clone(), "--timezone".to_string()),
            None => {
                let row = client
                    .query_one(
                        "SELECT setting, source FROM pg_settings WHERE name = 'TimeZone'",
                        &[],
                    )
                    .map_err(|e| pg_err("reading the server's TimeZone", e))?;
                let source: String = row.get(1);
                (
                    row.get(0),
                    format!("the server's TimeZone setting ({source})"),
                )
            }
        };
        client
            .batch_execute(&format!(
                "SET DateStyle = 'ISO, YMD'; SET extra_float_digits = 3; \
                 SET client_encoding = 'UTF8'; SET TimeZone = {}",
                literal(&zone)
            ))
            .map_err(|e| pg_err("session setup", e))?;
        let tls = if tls {
            let version: Option<String> = client
                .query_opt(
                    "SELECT version FROM pg_stat_ssl WHERE pid = pg_backend_pid() AND ssl",
                    &[],
                )
                .ok()
                .flatten()
                .map(|r| r.get(0));
            format!("TLS {}", version.unwrap_or_default())
        } else {
            "no TLS".to_string()
        };
        let description = format!(
            "{} ({}, sslmode={})",
            conn.display,
            tls.trim(),
            conn.sslmode.name()
        );
        Ok((client, description, format!("{zone} ({whence})")))
    }

    /// The relations of `schema` that can hold rows, by lower-case name.
    fn relations(
        client: &mut Client,
        schema: &str,
        display: &str,
    ) -> Result<BTreeMap<String, Vec<Relation>>, IngestError> {
        let row = client
            .query_opt(
                "SELECT has_schema_privilege(oid, 'USAGE') FROM pg_namespace WHERE nspname = $1",
                &[&schema],
            )
            .map_err(|e| pg_err("listing schemas", e))?;
        match row.map(|r| r.get::<_, bool>(0)) {
            None => {
                return Err(IngestError::Postgres(format!(
                    "schema {schema} does not exist in {display}"
                )))
            }
            Some(false) => {
                return Err(IngestError::Postgres(format!(
                    "schema {schema}: permission denied: the role lacks the USAGE privilege on it \
                     (GRANT USAGE ON SCHEMA {schema} TO …)"
                )))
            }
            Some(true) => {}
        }
        let rows = client
            .query(
                "SELECT c.relname::text, c.relkind::text, has_table_privilege(c.oid, 'SELECT') \
                 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
                 WHERE n.nspname = $1 AND c.relkind IN ('r', 'v', 'm', 'p', 'f')",
                &[&schema],
            )
            .map_err(|e| pg_err("listing tables", e))?;
        let mut out: BTreeMap<String, Vec<Relation>> = BTreeMap::new();
        for row in rows {
            let name: String = row.get(0);
            let kind = match row.get::<_, String>(1).as_str() {
                "v" => "view",
                "m" => "materialized view",
                "p" => "partitioned table",
                "f" => "foreign table",
                _ => "table",
            };
            out.entry(name.to_ascii_lowercase())
                .or_default()
                .push(Relation {
                    name,
                    kind,
                    readable: row.get(2),
                });
        }
        Ok(out)
    }

    /// Lists the schemas' relations in the catalog and matches them to CDM tables (names in any
    /// case). A CDM table the role cannot read is an error, never "absent".
    pub(crate) fn locate(
        &self,
        report: &mut IngestReport,
    ) -> Result<Vec<(&'static TableSpec, Located)>, IngestError> {
        let conn = self.conn()?;
        let (mut client, description, zone) = self.connect(&conn)?;
        report.connection = Some(description);
        report.timezone = Some(zone);
        let vocab = self
            .vocab_schema
            .clone()
            .unwrap_or_else(|| self.schema.clone());
        let mut names = BTreeMap::new();
        for schema in [&self.schema, &vocab] {
            if !names.contains_key(schema) {
                let rels = Self::relations(&mut client, schema, &conn.display)?;
                names.insert(schema.clone(), rels);
            }
        }
        let mut out = Vec::new();
        for spec in TABLES {
            let schema = if spec.kind == TableKind::Vocabulary {
                &vocab
            } else {
                &self.schema
            };
            match names[schema].get(spec.name).map(Vec::as_slice) {
                Some([rel]) if !rel.readable => {
                    return Err(IngestError::Postgres(format!(
                        "cannot read {schema}.{} ({}): permission denied: the role {} lacks the \
                         SELECT privilege on it (GRANT SELECT ON {schema}.{} TO …)",
                        rel.name,
                        rel.kind,
                        conn.config.get_user().unwrap_or("?"),
                        ident(&rel.name),
                    )));
                }
                Some([rel]) => out.push((
                    *spec,
                    Located::Postgres {
                        schema: schema.clone(),
                        table: rel.name.clone(),
                    },
                )),
                Some(several) => {
                    return Err(IngestError::Postgres(format!(
                        "schema {schema} has {} relations for table {}: {} (keep one)",
                        several.len(),
                        spec.name,
                        several
                            .iter()
                            .map(|r| format!("{} ({})", ident(&r.name), r.kind))
                            .collect::<Vec<_>>()
                            .join(", ")
                    )));
                }
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

    /// Streams one table through the row checks. Problems are located by the row's primary key.
    pub(crate) fn read(
        &self,
        spec: &'static TableSpec,
        (schema, table): (&str, &str),
        opts: &ReadOptions,
        on_bytes: &mut dyn FnMut(u64),
        chunks: &Chunks,
        sink: &mut dyn FnMut(RawTable) -> Result<(), IngestError>,
    ) -> Result<TableReport, IngestError> {
        let conn = self.conn()?;
        let (mut client, _, _) = self.connect(&conn)?;
        let sql = format!(
            "COPY (SELECT * FROM {}.{}) TO STDOUT WITH (FORMAT csv, HEADER true)",
            ident(schema),
            ident(table)
        );
        let what = format!("{schema}.{table}");
        let reader = client
            .copy_out(sql.as_str())
            .map_err(|e| pg_err(&format!("reading {what}"), e))?;
        // COPY's CSV: always quoted, NULL is an empty unquoted field, text is UTF-8 (the session's
        // client_encoding), and a text value such as 'NA' is data, not NULL.
        let copy_opts = ReadOptions {
            quote_tabs: true,
            null_tokens: Vec::new(),
            encoding: crate::TextEncoding::Utf8,
            max_field_lines: u64::MAX,
            locate_by_key: true,
            ..opts.clone()
        };
        read_table_chunks(
            spec,
            &format!("postgres:{what}"),
            reader,
            &copy_opts,
            on_bytes,
            chunks,
            sink,
        )
        .map_err(|e| match e {
            // The stream broke: the server's message (statement_timeout, a failing view, …).
            IngestError::Unreadable { detail, .. } => {
                IngestError::Postgres(format!("reading {what}: {detail}"))
            }
            e => e,
        })
    }
}

/// A PostgreSQL string literal.
fn literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_and_literals_are_quoted() {
        assert_eq!(ident("cdm"), "\"cdm\"");
        assert_eq!(ident("a\"b"), "\"a\"\"b\"");
        assert_eq!(literal("Asia/Shanghai"), "'Asia/Shanghai'");
        assert_eq!(literal("x'; DROP"), "'x''; DROP'");
    }
}
