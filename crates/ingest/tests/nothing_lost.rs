//! Real exports must not lose rows silently (issue 13, part A). Every case is a variant of Eunomia
//! GiBleed made here: the folder links GiBleed's files and overrides the one under test, as an
//! Athena download, a Windows or a Chinese hospital system would write it.

use std::fs;
use std::path::{Path, PathBuf};

use qiao_cdm::{Column, RawTable};
use qiao_ingest::{
    ingest, read_all, IngestError, IngestReport, Options, ProblemKind, ReadOptions, Source,
    TextEncoding,
};
use qiao_store::Store;

const GIBLEED: &str = "../../../shared/data/eunomia-gibleed-5.3";

/// GiBleed's rows of one file, parsed (header first).
fn gibleed_rows(file: &str) -> Vec<Vec<String>> {
    let mut rdr = csv::ReaderBuilder::new()
        .has_headers(false)
        .from_path(Path::new(GIBLEED).join(file))
        .unwrap();
    rdr.records()
        .map(|r| r.unwrap().iter().map(str::to_string).collect())
        .collect()
}

/// A CDM folder: GiBleed's files linked, except those given (name → bytes) and those removed.
fn variant(files: &[(&str, Vec<u8>)], remove: &[&str]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let src = fs::canonicalize(GIBLEED).unwrap();
    for e in fs::read_dir(&src).unwrap() {
        let name = e.unwrap().file_name().to_string_lossy().into_owned();
        let stem = name.trim_end_matches(".csv");
        let replaced = files
            .iter()
            .any(|(f, _)| f.to_ascii_lowercase().trim_end_matches(".csv") == stem);
        if name.ends_with(".csv") && !replaced && !remove.contains(&stem) {
            std::os::unix::fs::symlink(src.join(&name), dir.path().join(&name)).unwrap();
        }
    }
    for (name, bytes) in files {
        fs::write(dir.path().join(name), bytes).unwrap();
    }
    dir
}

fn read(dir: &Path, text: ReadOptions) -> Result<(Vec<RawTable>, IngestReport), IngestError> {
    read_all(
        &Source::CsvDir(dir.to_path_buf()),
        Options {
            text,
            ..Options::default()
        },
    )
}

fn table<'a>(tables: &'a [RawTable], name: &str) -> &'a RawTable {
    tables.iter().find(|t| t.spec.name == name).unwrap()
}

fn text(t: &RawTable, column: &str) -> Vec<Option<String>> {
    let Some(Column::Text(c)) = t.column(column) else {
        panic!("{column} is not a text column")
    };
    (0..c.len()).map(|i| c.get(i).map(str::to_string)).collect()
}

/// Rows as delimited text; a field holding the separator is quoted (others are written raw, so
/// that a test can plant a stray quote).
fn join(rows: &[Vec<String>], sep: &str, eol: &str) -> Vec<u8> {
    let field = |f: &String| {
        if f.contains(sep) {
            format!("\"{}\"", f.replace('"', "\"\""))
        } else {
            f.clone()
        }
    };
    rows.iter()
        .map(|r| format!("{}{eol}", r.iter().map(field).collect::<Vec<_>>().join(sep)))
        .collect::<String>()
        .into_bytes()
}

/// GiBleed's concept file as Athena writes it: tab-delimited, unquoted, upper-case name, and
/// concept names with `"` in them (real Athena names such as `Tablet "Brand"` do).
fn athena_concept() -> (Vec<Vec<String>>, Vec<u8>) {
    let mut rows = gibleed_rows("concept.csv");
    for (i, r) in rows.iter_mut().enumerate().skip(1) {
        match i % 50 {
            7 => r[1] = format!("\"{}", r[1]),
            17 => r[1] = format!("{} 5\" tube", r[1]),
            27 => r[1] = format!("\"{}\" (quoted)", r[1]),
            _ => {}
        }
    }
    let bytes = join(&rows, "\t", "\n");
    (rows, bytes)
}

/// (4) Athena's unquoted tab files keep every row and every `"` verbatim; with `--quote` the
/// runaway quote is reported, not swallowed in silence.
#[test]
fn athena_tab_files_with_quotes_keep_every_row() {
    let (rows, bytes) = athena_concept();
    let d = variant(&[("CONCEPT.csv", bytes)], &[]);
    let (tables, report) = read(d.path(), ReadOptions::default()).unwrap();
    let concept = table(&tables, "concept");
    assert_eq!(concept.rows(), 442);
    assert_eq!(report.tables["concept"].rows_read, 442);
    assert_eq!(report.tables["concept"].rows_skipped(), 0);
    let names = text(concept, "concept_name");
    for (i, r) in rows.iter().enumerate().skip(1) {
        assert_eq!(names[i - 1].as_deref(), Some(r[1].as_str()), "row {i}");
    }
    assert!(names.iter().flatten().any(|n| n.starts_with('"')));

    // With quote processing a name that opens a quote would swallow the rest: reported.
    let (tables, report) = read(
        d.path(),
        ReadOptions {
            quote_tabs: true,
            ..ReadOptions::default()
        },
    )
    .unwrap();
    let t = &report.tables["concept"];
    assert!(table(&tables, "concept").rows() < 442);
    assert!(
        t.skipped
            .get(&ProblemKind::RunawayQuote)
            .copied()
            .unwrap_or(0)
            + t.skipped
                .get(&ProblemKind::WrongFieldCount)
                .copied()
                .unwrap_or(0)
            > 0,
        "{t:?}"
    );
    let first = &t.samples[0];
    assert_eq!(first.line, 8, "{first}");
    assert!(first.detail.contains("quote"), "{first}");
}

/// (4) A comma file whose quote is never closed: the rest of the file is one field, reported as
/// a runaway quote with its line; a field running across more lines than allowed is too.
#[test]
fn an_unterminated_quote_is_reported() {
    let mut rows = gibleed_rows("condition_occurrence.csv");
    let stop = rows[0].iter().position(|c| c == "stop_reason").unwrap();
    rows[100][stop] = "\"never closed".into();
    let d = variant(&[("condition_occurrence.csv", join(&rows, ",", "\n"))], &[]);
    let (_, report) = read(d.path(), ReadOptions::default()).unwrap();
    let t = &report.tables["condition_occurrence"];
    assert_eq!(t.skipped[&ProblemKind::RunawayQuote], 1, "{t:?}");
    assert_eq!(t.samples[0].line, 101);
    assert!(
        t.samples[0].detail.contains("end of the input"),
        "{}",
        t.samples[0]
    );
    assert_eq!(t.rows_read, 100);

    // Closed, but 30 lines later: more than --max-field-lines 20.
    rows[130][stop] = "closed\"".into();
    let d = variant(&[("condition_occurrence.csv", join(&rows, ",", "\n"))], &[]);
    let (_, report) = read(
        d.path(),
        ReadOptions {
            max_field_lines: 20,
            ..ReadOptions::default()
        },
    )
    .unwrap();
    let t = &report.tables["condition_occurrence"];
    assert_eq!(t.skipped[&ProblemKind::RunawayQuote], 1, "{t:?}");
    assert!(t.samples[0].detail.contains("101-131"), "{}", t.samples[0]);
    assert_eq!(t.rows_read, rows.len() as u64 - 1 - 30);
}

/// Encodes text as GB18030 or Windows-1252.
fn encode(s: &str, enc: &'static encoding_rs::Encoding) -> Vec<u8> {
    let (bytes, _, bad) = enc.encode(s);
    assert!(!bad, "{s} is not representable in {}", enc.name());
    bytes.into_owned()
}

/// (5) A Chinese HIS export in GB18030 and a Windows export in Windows-1252: detected, decoded,
/// no row dropped; a wrong `--encoding` keeps the rows and flags them; text in columns Qiao does
/// not keep is never decoded.
#[test]
fn gb18030_and_windows_1252_exports_keep_every_row() {
    let mut rows = gibleed_rows("concept.csv");
    rows[1][1] = "胃肠道出血 (gastrointestinal hemorrhage)".into();
    rows[2][1] = "塞来昔布".into();
    let plain = join(&rows, ",", "\n");
    let text_of = String::from_utf8(plain).unwrap();
    let d = variant(
        &[("concept.csv", encode(&text_of, encoding_rs::GB18030))],
        &[],
    );
    let (tables, report) = read(d.path(), ReadOptions::default()).unwrap();
    assert_eq!(report.tables["concept"].encoding, "gb18030 (detected)");
    let names = text(table(&tables, "concept"), "concept_name");
    assert_eq!(names.len(), 442);
    assert_eq!(names[0].as_deref(), Some(rows[1][1].as_str()));
    assert_eq!(names[1].as_deref(), Some("塞来昔布"));
    assert_eq!(report.tables["concept"].rows_flagged(), 0);

    // Read as UTF-8: every row kept, the two flagged as invalid text.
    let (tables, report) = read(
        d.path(),
        ReadOptions {
            encoding: TextEncoding::Utf8,
            ..ReadOptions::default()
        },
    )
    .unwrap();
    assert_eq!(table(&tables, "concept").rows(), 442);
    assert_eq!(report.tables["concept"].flagged[&ProblemKind::NotUtf8], 2);
    assert_eq!(report.tables["concept"].encoding, "UTF-8 (given)");

    // Windows-1252: detected too.
    let mut rows = gibleed_rows("concept.csv");
    rows[1][1] = "Sjögren's syndrome – café".into();
    let text_of = String::from_utf8(join(&rows[..3], ",", "\n")).unwrap();
    let mut bytes = encode(&text_of, encoding_rs::WINDOWS_1252);
    bytes.extend(join(&rows[3..], ",", "\n"));
    let d = variant(&[("concept.csv", bytes)], &[]);
    let (tables, report) = read(d.path(), ReadOptions::default()).unwrap();
    assert_eq!(report.tables["concept"].encoding, "windows-1252 (detected)");
    let names = text(table(&tables, "concept"), "concept_name");
    assert_eq!(names[0].as_deref(), Some("Sjögren's syndrome – café"));
    assert_eq!(names.len(), 442);

    // Bytes that are no text at all in a column Qiao does not keep: never decoded, never flagged.
    let mut person = gibleed_rows("person.csv");
    let gsv = person[0]
        .iter()
        .position(|c| c == "gender_source_value")
        .unwrap();
    person[5][gsv] = "XX".into();
    let mut bytes = join(&person, ",", "\n");
    let at = bytes.windows(2).position(|w| w == b"XX").unwrap();
    bytes[at] = 0xff;
    bytes[at + 1] = 0xfe;
    let d = variant(&[("person.csv", bytes)], &[]);
    let (tables, report) = read(
        d.path(),
        ReadOptions {
            encoding: TextEncoding::Utf8,
            ..ReadOptions::default()
        },
    )
    .unwrap();
    assert_eq!(table(&tables, "person").rows(), 2694);
    assert_eq!(report.tables["person"].rows_flagged(), 0);
    assert_eq!(report.tables["person"].rows_skipped(), 0);
}

/// (6) NULL tokens: `NA`, `NULL`, `\N`, `null` are NULL, not a reason to drop the row; the list
/// is configurable; a required column given a NULL token is a missing value.
#[test]
fn null_tokens_are_null() {
    let mut rows = gibleed_rows("condition_occurrence.csv");
    let col = |n: &str| rows[0].iter().position(|c| c == n).unwrap();
    let (end, visit, status) = (
        col("condition_end_date"),
        col("visit_occurrence_id"),
        col("condition_status_concept_id"),
    );
    let _ = status;
    let tokens = ["NA", "NULL", "\\N", "null"];
    for (i, r) in rows.iter_mut().enumerate().skip(1).take(40) {
        r[end] = tokens[i % 4].into();
        r[visit] = tokens[(i + 1) % 4].into();
    }
    let d = variant(&[("condition_occurrence.csv", join(&rows, ",", "\n"))], &[]);
    let (tables, report) = read(d.path(), ReadOptions::default()).unwrap();
    let t = table(&tables, "condition_occurrence");
    assert_eq!(t.rows(), 65_332);
    assert_eq!(report.tables["condition_occurrence"].rows_skipped(), 0);
    let Some(Column::I32(ends)) = t.column("condition_end_date") else {
        panic!()
    };
    assert!(ends[..40].iter().all(|&d| d == qiao_cdm::NULL_INT));
    assert!(ends[40..].iter().any(|&d| d != qiao_cdm::NULL_INT));

    // Only `-` as a NULL token: NA is then a bad date, and the 40 rows are skipped and reported.
    let (tables, report) = read(
        d.path(),
        ReadOptions {
            null_tokens: vec!["-".into()],
            ..ReadOptions::default()
        },
    )
    .unwrap();
    assert_eq!(table(&tables, "condition_occurrence").rows(), 65_332 - 40);
    assert_eq!(
        report.tables["condition_occurrence"].skipped[&ProblemKind::Unparseable],
        40
    );
}

fn ingest_into(
    dir: &Path,
    opts: Options,
) -> (
    Result<IngestReport, IngestError>,
    tempfile::TempDir,
    PathBuf,
) {
    let out = tempfile::tempdir().unwrap();
    let path = out.path().join("s.qiao");
    let r = ingest(&Source::CsvDir(dir.to_path_buf()), &path, opts);
    (r, out, path)
}

fn fails_with(dir: &Path, opts: Options, needles: &[&str]) {
    let (r, out, path) = ingest_into(dir, opts);
    let msg = r.expect_err("ingest must fail").to_string();
    for n in needles {
        assert!(msg.contains(n), "{msg:?} should contain {n:?}");
    }
    assert!(!path.exists());
    assert_eq!(fs::read_dir(out.path()).unwrap().count(), 0);
}

/// (7) Two files for one table is an error naming both; a header-only person table is an error;
/// an unknown file gets the nearest table name; rows with trailing empty fields are kept.
#[test]
fn ambiguous_empty_and_misnamed_files() {
    let person = fs::read(Path::new(GIBLEED).join("person.csv")).unwrap();
    let d = variant(&[("PERSON.csv", person.clone())], &[]);
    std::os::unix::fs::symlink(
        fs::canonicalize(Path::new(GIBLEED).join("person.csv")).unwrap(),
        d.path().join("person.csv"),
    )
    .unwrap();
    fails_with(
        d.path(),
        Options::default(),
        &["PERSON.csv", "person.csv", "two files"],
    );

    let header = gibleed_rows("person.csv")[0].join(",") + "\n";
    let d = variant(&[("person.csv", header.into_bytes())], &[]);
    fails_with(d.path(), Options::default(), &["person.csv", "no rows"]);

    let devices = fs::read(Path::new(GIBLEED).join("device_exposure.csv")).unwrap();
    let d = variant(&[("DEVICES_EXPOSURE.csv", devices)], &["device_exposure"]);
    let (r, _o, _p) = ingest_into(d.path(), Options::default());
    let report = r.unwrap();
    assert!(
        report
            .warnings
            .iter()
            .any(|w| w.contains("DEVICES_EXPOSURE.csv")
                && w.contains("did you mean device_exposure?")),
        "{:?}",
        report.warnings
    );
    assert!(report.absent_tables.iter().any(|t| t == "device_exposure"));

    // Trailing empty fields (a spreadsheet's extra commas): kept, flagged.
    let rows = gibleed_rows("drug_era.csv");
    let mut body = format!("{}\n", rows[0].join(","));
    for (i, r) in rows.iter().enumerate().skip(1) {
        body += &r.join(",");
        body += if i % 2 == 0 { ",,\n" } else { "\n" };
    }
    let d = variant(&[("drug_era.csv", body.into_bytes())], &[]);
    let (tables, report) = read(d.path(), ReadOptions::default()).unwrap();
    assert_eq!(table(&tables, "drug_era").rows(), rows.len() - 1);
    assert_eq!(
        report.tables["drug_era"].flagged[&ProblemKind::TrailingEmptyFields],
        (rows.len() as u64 - 1) / 2
    );
}

/// (8) CRLF line ends (and a quoted field holding a line break): problems are located on the
/// line a text editor shows.
#[test]
fn crlf_line_numbers_are_right() {
    let mut rows = gibleed_rows("condition_occurrence.csv");
    let stop = rows[0].iter().position(|c| c == "stop_reason").unwrap();
    let date = rows[0]
        .iter()
        .position(|c| c == "condition_start_date")
        .unwrap();
    rows[10][stop] = "\"two\r\nlines\"".into();
    rows[500][date] = "2020-02-30".into();
    rows[1000][date] = "20200230".into();
    let d = variant(
        &[("condition_occurrence.csv", join(&rows, ",", "\r\n"))],
        &[],
    );
    let (_, report) = read(d.path(), ReadOptions::default()).unwrap();
    let t = &report.tables["condition_occurrence"];
    assert_eq!(t.skipped[&ProblemKind::Unparseable], 2);
    // Row 500 (0-based, header = line 1) is on line 502: one extra line from row 10's field.
    let lines: Vec<(u64, usize)> = t.samples.iter().map(|p| (p.line, p.column)).collect();
    assert_eq!(lines, [(502, date + 1), (1002, date + 1)]);
}

/// (9) Year 0 and BC dates are rejected (they would read as AD dates), with the row located.
#[test]
fn year_zero_and_bc_dates_are_rejected() {
    let mut rows = gibleed_rows("drug_exposure.csv");
    let start = rows[0]
        .iter()
        .position(|c| c == "drug_exposure_start_date")
        .unwrap();
    rows[3][start] = "0000-06-01".into();
    rows[4][start] = "0044-03-15 BC".into();
    rows[5][start] = "00000101".into();
    let d = variant(&[("drug_exposure.csv", join(&rows, ",", "\n"))], &[]);
    let (tables, report) = read(d.path(), ReadOptions::default()).unwrap();
    let t = &report.tables["drug_exposure"];
    assert_eq!(t.skipped[&ProblemKind::Unparseable], 3, "{t:?}");
    assert_eq!(table(&tables, "drug_exposure").rows(), 67_707 - 3);
    let lines: Vec<u64> = t
        .samples
        .iter()
        .filter(|p| p.kind == ProblemKind::Unparseable)
        .map(|p| p.line)
        .collect();
    assert_eq!(lines, [4, 5, 6]);
    assert!(t.samples.iter().any(|p| p.detail.contains("BC")));
}

/// (2) No vocabulary is an error naming what is missing, unless `--no-vocabulary`: then the
/// report lists it and the store says so.
#[test]
fn no_vocabulary_is_an_error_unless_accepted() {
    let d = variant(&[], &["concept_ancestor"]);
    fails_with(
        d.path(),
        Options::default(),
        &[
            "no vocabulary",
            "concept_ancestor not found",
            "--no-vocabulary",
        ],
    );
    let header = gibleed_rows("concept.csv")[0].join(",") + "\n";
    let d = variant(
        &[("concept.csv", header.into_bytes())],
        &["concept_ancestor"],
    );
    fails_with(
        d.path(),
        Options::default(),
        &["concept empty", "concept_ancestor not found"],
    );
    let (r, _o, path) = ingest_into(
        d.path(),
        Options {
            no_vocabulary: true,
            ..Options::default()
        },
    );
    let report = r.unwrap();
    assert_eq!(
        report.missing_vocabulary.len(),
        2,
        "{:?}",
        report.missing_vocabulary
    );
    let store = Store::open(path).unwrap();
    let stored: IngestReport = serde_json::from_value(store.meta().ingest_report.clone()).unwrap();
    assert_eq!(stored.missing_vocabulary, report.missing_vocabulary);
    assert_eq!(store.meta().persons, 2694);
}
