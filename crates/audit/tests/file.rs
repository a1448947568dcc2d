//! The file-backed log: tampering, torn tails, locking, concurrent appenders.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use qiao_audit::*;

const T0: i64 = 1_760_000_000;

fn draft(i: u64) -> EntryDraft {
    EntryDraft::new(
        T0 + i as i64,
        Actor::Site("st-olav".into()),
        "result.release",
    )
    .project("proj-7")
    .job(format!("{i:032x}"))
    .decision("auto_approved")
    .released_json(&serde_json::json!({"final_persons": {"kind": "obfuscated", "value": 415}}))
}

fn log_with(path: &Path, n: u64) -> Vec<Entry> {
    let (log, report) = AuditLog::open(path).unwrap();
    assert!(report.created);
    (1..=n).map(|i| log.append(draft(i)).unwrap()).collect()
}

fn lines(path: &Path) -> Vec<String> {
    fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

fn write_lines(path: &Path, lines: &[String]) {
    let mut text = lines.join("\n");
    text.push('\n');
    fs::write(path, text).unwrap();
}

fn chain_error(path: &Path) -> ChainError {
    match verify(path) {
        Err(FileLogError::Chain { source, .. }) => source,
        other => panic!("expected a chain error, got {other:?}"),
    }
}

#[test]
fn append_reopen_continue() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    let written = log_with(&path, 3);
    assert_eq!(written.iter().map(|e| e.seq).collect::<Vec<_>>(), [1, 2, 3]);
    let report = verify(&path).unwrap();
    assert_eq!(report.entries, 3);
    assert_eq!(report.head.unwrap().hash, written[2].hash);
    assert_eq!(report.torn_tail_bytes, 0);

    let (log, report) = AuditLog::open(&path).unwrap();
    assert!(!report.created);
    assert_eq!(report.entries, 3);
    assert_eq!(report.torn_tail, None);
    let e = log.append(draft(4)).unwrap();
    assert_eq!((e.seq, e.prev_hash), (4, written[2].hash));
    assert_eq!(log.head().unwrap().seq, 4);
    drop(log);

    let (entries, report) = read_entries(&path).unwrap();
    assert_eq!(entries.len(), 4);
    assert_eq!(entries[3], e);
    assert_eq!(report.entries, 4);
    // One JSON object per line.
    for l in lines(&path) {
        let v: serde_json::Value = serde_json::from_str(&l).unwrap();
        assert!(v.is_object());
    }
}

#[test]
fn editing_any_field_of_a_middle_line_names_its_seq_and_blocks_appends() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    log_with(&path, 5);
    let original = lines(&path);
    let edits: &[(&str, serde_json::Value)] = &[
        ("seq", serde_json::json!(7)),
        ("timestamp", serde_json::json!(T0)),
        ("actor", serde_json::json!("site:other")),
        ("action", serde_json::json!("result.withhold")),
        ("project", serde_json::json!(null)),
        (
            "job_id",
            serde_json::json!("ffffffffffffffffffffffffffffffff"),
        ),
        ("decision", serde_json::json!("manual_approved")),
        (
            "released",
            serde_json::json!("{\"final_persons\":{\"kind\":\"exact\",\"value\":3}}"),
        ),
        ("prev_hash", serde_json::json!("00".repeat(32))),
        ("hash", serde_json::json!("ab".repeat(32))),
    ];
    for (field, value) in edits {
        let mut t = original.clone();
        let mut v: serde_json::Value = serde_json::from_str(&t[2]).unwrap();
        assert_ne!(&v[field], value, "{field}");
        v[field] = value.clone();
        t[2] = v.to_string();
        write_lines(&path, &t);
        let err = chain_error(&path);
        assert_eq!(err.seq, 3, "{field}: {err}");
        assert_eq!(err.line, Some(3), "{field}");
        // The log refuses to open, and leaves the file as it is.
        let before = fs::read(&path).unwrap();
        assert!(matches!(
            AuditLog::open(&path),
            Err(FileLogError::Chain {
                source: ChainError { seq: 3, .. },
                ..
            })
        ));
        assert_eq!(fs::read(&path).unwrap(), before);
    }
    // An added field is tampering too (it would not be covered by the hash).
    let mut t = original.clone();
    let mut v: serde_json::Value = serde_json::from_str(&t[2]).unwrap();
    v["note"] = serde_json::json!("harmless?");
    t[2] = v.to_string();
    write_lines(&path, &t);
    let err = chain_error(&path);
    assert_eq!(err.seq, 3);
    assert!(matches!(err.reason, ChainErrorReason::Malformed(_)));
    // So is a line of garbage.
    let mut t = original.clone();
    t[2] = "not json".into();
    write_lines(&path, &t);
    assert_eq!(chain_error(&path).seq, 3);
    // Restored, it verifies again.
    write_lines(&path, &original);
    assert_eq!(verify(&path).unwrap().entries, 5);
}

#[test]
fn deleted_reordered_and_inserted_lines_are_detected() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    log_with(&path, 5);
    let original = lines(&path);

    let mut t = original.clone();
    t.remove(2);
    write_lines(&path, &t);
    let err = chain_error(&path);
    assert!(err.to_string().contains("entry 3"), "{err}");
    assert_eq!(
        (err.seq, err.reason),
        (3, ChainErrorReason::SeqMismatch { found: 4 })
    );

    let mut t = original.clone();
    t.swap(1, 2);
    write_lines(&path, &t);
    assert_eq!(chain_error(&path).seq, 2);

    let mut t = original.clone();
    t.insert(3, original[1].clone());
    write_lines(&path, &t);
    assert_eq!(chain_error(&path).seq, 4);

    let mut t = original.clone();
    t.insert(2, String::new());
    write_lines(&path, &t);
    assert!(matches!(
        chain_error(&path),
        ChainError {
            seq: 3,
            line: Some(3),
            reason: ChainErrorReason::Malformed(_)
        }
    ));

    // Removing the last line cannot be seen from inside; a checkpoint sees it.
    write_lines(&path, &original);
    let head = verify(&path).unwrap().head.unwrap();
    write_lines(&path, &original[..4]);
    assert_eq!(verify(&path).unwrap().entries, 4);
    assert!(matches!(
        verify_with_checkpoint(&path, Some(head)),
        Err(FileLogError::Chain {
            source: ChainError {
                seq: 5,
                reason: ChainErrorReason::CheckpointMissing { entries: 4 },
                ..
            },
            ..
        })
    ));
    assert!(matches!(
        AuditLog::open_with_checkpoint(&path, Some(head)),
        Err(FileLogError::Chain { .. })
    ));
}

#[test]
fn a_torn_last_line_is_reported_then_truncated_on_open() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    log_with(&path, 3);
    let good_len = fs::metadata(&path).unwrap().len();

    // A crash in the middle of appending entry 4: half its line, no newline.
    let mut c = Chain::open(
        MemoryStore {
            entries: read_entries(&path).unwrap().0,
        },
        None,
    )
    .unwrap();
    let full = serde_json::to_string(&c.append(draft(4)).unwrap()).unwrap();
    let torn = &full.as_bytes()[..full.len() / 2];
    OpenOptions::new()
        .append(true)
        .open(&path)
        .unwrap()
        .write_all(torn)
        .unwrap();

    // Read-only verification reports it and changes nothing.
    let report = verify(&path).unwrap();
    assert_eq!(report.entries, 3);
    assert_eq!(report.torn_tail_bytes, torn.len() as u64);
    assert_eq!(
        fs::metadata(&path).unwrap().len(),
        good_len + torn.len() as u64
    );

    // Opening for append truncates it.
    let (log, report) = AuditLog::open(&path).unwrap();
    assert_eq!(
        report.torn_tail,
        Some(TornTail {
            offset: good_len,
            bytes: torn.len() as u64
        })
    );
    assert_eq!(report.entries, 3);
    assert_eq!(fs::metadata(&path).unwrap().len(), good_len);
    assert_eq!(log.append(draft(4)).unwrap().seq, 4);
    drop(log);
    assert_eq!(verify(&path).unwrap().entries, 4);

    // A whole entry without its newline was never acknowledged either (the append returns only
    // after the newline is durable): it is dropped too.
    let len = fs::metadata(&path).unwrap().len();
    let mut c = Chain::open(
        MemoryStore {
            entries: read_entries(&path).unwrap().0,
        },
        None,
    )
    .unwrap();
    let e5 = serde_json::to_string(&c.append(draft(5)).unwrap()).unwrap();
    OpenOptions::new()
        .append(true)
        .open(&path)
        .unwrap()
        .write_all(e5.as_bytes())
        .unwrap();
    let (_, report) = AuditLog::open(&path).unwrap();
    assert_eq!(report.entries, 4);
    assert_eq!(report.torn_tail.unwrap().bytes, e5.len() as u64);
    assert_eq!(fs::metadata(&path).unwrap().len(), len);

    // A tail of zeros (what some file systems leave after a crash) likewise.
    OpenOptions::new()
        .append(true)
        .open(&path)
        .unwrap()
        .write_all(&[0u8; 100])
        .unwrap();
    let (_, report) = AuditLog::open(&path).unwrap();
    assert_eq!(report.torn_tail.unwrap().bytes, 100);
    assert_eq!(verify(&path).unwrap().entries, 4);
}

#[test]
fn a_broken_chain_before_a_torn_tail_is_not_repaired() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    log_with(&path, 3);
    let mut t = lines(&path);
    t.swap(0, 1);
    let mut text = t.join("\n");
    text.push_str("\n{\"seq\":4,");
    fs::write(&path, &text).unwrap();
    assert!(matches!(
        AuditLog::open(&path),
        Err(FileLogError::Chain { .. })
    ));
    assert_eq!(fs::read_to_string(&path).unwrap(), text);
}

#[test]
fn one_process_at_a_time() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    let (log, _) = AuditLog::open(&path).unwrap();
    let err = AuditLog::open(&path).unwrap_err();
    assert!(matches!(err, FileLogError::Locked { .. }));
    assert!(err.to_string().contains("in use"));
    // Read-only verification is always allowed.
    log.append(draft(1)).unwrap();
    assert_eq!(verify(&path).unwrap().entries, 1);
    drop(log);
    assert!(AuditLog::open(&path).is_ok());
}

#[test]
fn concurrent_appenders_are_serialized_and_the_chain_stays_valid() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    let (log, _) = AuditLog::open(&path).unwrap();
    let log = Arc::new(log);
    let threads: Vec<_> = (0..8u64)
        .map(|t| {
            let log = Arc::clone(&log);
            std::thread::spawn(move || {
                (0..40u64)
                    .map(|i| log.append(draft(t * 1000 + i)).unwrap().seq)
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let mut seqs: Vec<u64> = threads
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect();
    seqs.sort_unstable();
    assert_eq!(seqs, (1..=320).collect::<Vec<_>>());
    let report = verify(&path).unwrap();
    assert_eq!(report.entries, 320);
    assert_eq!(report.head, log.head());
    // Each thread's own entries are in its order.
    let (entries, _) = read_entries(&path).unwrap();
    for t in 0..8u64 {
        let mine: Vec<i64> = entries
            .iter()
            .filter(|e| (e.timestamp - T0) as u64 / 1000 == t)
            .map(|e| e.timestamp)
            .collect();
        assert_eq!(mine.len(), 40);
        assert!(mine.windows(2).all(|w| w[0] < w[1]));
    }
}

#[test]
fn missing_files_and_empty_actions_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    assert!(matches!(
        verify(&dir.path().join("nope.jsonl")),
        Err(FileLogError::Io { .. })
    ));
    let path = dir.path().join("audit.jsonl");
    let (log, report) = AuditLog::open(&path).unwrap();
    assert_eq!(report.entries, 0);
    assert_eq!(log.head(), None);
    assert!(matches!(
        log.append(EntryDraft::new(T0, Actor::Hub, "")),
        Err(FileLogError::EmptyAction)
    ));
    assert_eq!(verify(&path).unwrap().entries, 0);
    assert!(matches!(
        AuditLog::open(&dir.path().join("no-such-dir/audit.jsonl")),
        Err(FileLogError::Io { .. })
    ));
}

#[test]
fn the_log_file_is_readable_by_its_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.log");
    std::fs::write(&path, b"").unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let (log, _) = qiao_audit::AuditLog::open(&path).unwrap();
    log.append(qiao_audit::EntryDraft::new(
        1,
        qiao_audit::Actor::Unverified,
        "envelope.reject",
    ))
    .unwrap();
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let (entries, _) = qiao_audit::read_entries(&path).unwrap();
    assert_eq!(entries[0].actor.to_string(), "unverified");
}

/// Opening after a verified prefix: the lines another process appended since are verified and
/// continued; a broken continuation, a shorter file or another file falls back to the whole
/// chain; a prefix edited meanwhile is not re-read at the append but breaks every full
/// verification, the new entry chaining to the head this process verified.
#[test]
fn open_after_a_verified_prefix_reads_only_the_new_lines() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    let (log, _) = AuditLog::open(&path).unwrap();
    let first: Vec<Entry> = (1..=3).map(|i| log.append(draft(i)).unwrap()).collect();
    let known = log.verified().unwrap();
    drop(log);

    // Another process appends two entries; ours continues after them.
    let (other, _) = AuditLog::open(&path).unwrap();
    let theirs = other.append(draft(4)).unwrap();
    assert_eq!(theirs.prev_hash, first[2].hash);
    other.append(draft(5)).unwrap();
    drop(other);
    let (log, report) = AuditLog::open_after(&path, Some(&known)).unwrap();
    assert_eq!(report.entries, 5);
    assert_eq!(report.head.unwrap().seq, 5);
    let e = log.append(draft(6)).unwrap();
    assert_eq!(e.seq, 6);
    let known = log.verified().unwrap();
    drop(log);
    assert_eq!(verify(&path).unwrap().entries, 6);

    // A torn line after the prefix: truncated, as by a full open.
    let intact = fs::read(&path).unwrap();
    let mut torn = intact.clone();
    torn.extend_from_slice(b"{\"seq\":7,\"ti");
    fs::write(&path, &torn).unwrap();
    let (log, report) = AuditLog::open_after(&path, Some(&known)).unwrap();
    assert_eq!(report.torn_tail.unwrap().offset, intact.len() as u64);
    assert_eq!(fs::read(&path).unwrap(), intact);
    drop(log);

    // An edited line after the prefix: the full chain is verified and names it.
    let mut edited = lines(&path);
    let (log, _) = AuditLog::open_after(&path, Some(&known)).unwrap();
    log.append(draft(7)).unwrap();
    drop(log);
    edited.push(lines(&path)[6].replace("result.release", "result.relea5e"));
    write_lines(&path, &edited);
    match AuditLog::open_after(&path, Some(&known)) {
        Err(FileLogError::Chain { source, .. }) => {
            assert_eq!((source.seq, source.line), (7, Some(7)));
            assert_eq!(source.reason, ChainErrorReason::HashMismatch);
        }
        other => panic!("expected a chain error, got {other:?}"),
    }

    // A shorter file (entries removed from its end): the whole chain is read again, and it is
    // whole (5 entries), so the log opens at entry 5 — the hub's checkpoints catch the loss.
    let short: Vec<String> = lines(&path)[..5].to_vec();
    write_lines(&path, &short);
    let (log, report) = AuditLog::open_after(&path, Some(&known)).unwrap();
    assert_eq!(report.entries, 5);
    let head5 = report.head.unwrap();
    let known = log.verified().unwrap();
    drop(log);

    // The prefix edited in place between two appends: not re-read by this append, which chains
    // to the head verified before; every full verification names the edited entry.
    let mut edited = lines(&path);
    edited[1] = edited[1].replace("result.release", "result.relea5e");
    write_lines(&path, &edited);
    let (log, _) = AuditLog::open_after(&path, Some(&known)).unwrap();
    let e = log.append(draft(8)).unwrap();
    assert_eq!((e.seq, e.prev_hash), (6, head5.hash));
    drop(log);
    let broken = chain_error(&path);
    assert_eq!(broken.seq, 2);
    assert_eq!(broken.reason, ChainErrorReason::HashMismatch);
    // And a process without a verified prefix refuses to open it.
    assert!(matches!(
        AuditLog::open(&path),
        Err(FileLogError::Chain { .. })
    ));
    // Another file at the same path (a new inode): verified whole, from its first line.
    fs::remove_file(&path).unwrap();
    write_lines(&path, &edited[..1]);
    let (_, report) = AuditLog::open_after(&path, Some(&known)).unwrap();
    assert_eq!(report.entries, 1);
    assert_eq!(report.head.unwrap().hash, first[0].hash);
}
