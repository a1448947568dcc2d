//! The chain: hashing, verification, stores.

use std::io;

use proptest::prelude::*;
use qiao_audit::*;

const T0: i64 = 1_760_000_000;

fn draft(i: u64) -> EntryDraft {
    let d = EntryDraft::new(T0 + i as i64, Actor::User(format!("u{i}")), "job.submit")
        .project("proj-7")
        .job(format!("{i:032x}"));
    if i % 2 == 1 {
        d
    } else {
        d.decision("approved")
            .released_json(&serde_json::json!({"entries": "< 10", "final_persons": 415}))
    }
}

fn chain_of(n: u64) -> Vec<Entry> {
    let mut c = Chain::open(MemoryStore::default(), None).unwrap();
    for i in 1..=n {
        c.append(draft(i)).unwrap();
    }
    c.into_store().entries
}

#[test]
fn canonical_form_and_hash_match_an_independent_implementation() {
    // Computed with Python's hashlib and json.dumps(separators=(',', ':'), ensure_ascii=False).
    let e = Entry::seal(
        EntryDraft::new(T0, Actor::User("alice".into()), "job.submit")
            .project("proj-7")
            .job("0123456789abcdef0123456789abcdef")
            .released_json(&serde_json::json!({"entries": "< 10"})),
        1,
        EntryHash::GENESIS,
    );
    assert_eq!(
        String::from_utf8(e.canonical_json()).unwrap(),
        r#"{"action":"job.submit","actor":"user:alice","decision":null,"job_id":"0123456789abcdef0123456789abcdef","prev_hash":"0000000000000000000000000000000000000000000000000000000000000000","project":"proj-7","released":"{\"entries\":\"< 10\"}","seq":1,"timestamp":1760000000}"#
    );
    assert_eq!(
        e.hash.to_string(),
        "d98c2a54a63565752ebb0273bc167ae45805742d876d392f7e261645857e9348"
    );
}

#[test]
fn a_chain_verifies_and_reports_its_head() {
    let entries = chain_of(5);
    let report = verify_entries(&entries, None).unwrap();
    assert_eq!(report.entries, 5);
    assert_eq!(
        report.head,
        Some(Checkpoint {
            seq: 5,
            hash: entries[4].hash
        })
    );
    assert_eq!(entries[0].prev_hash, EntryHash::GENESIS);
    for w in entries.windows(2) {
        assert_eq!(w[1].prev_hash, w[0].hash);
        assert_eq!(w[1].seq, w[0].seq + 1);
    }
    assert_eq!(
        verify_entries(&[], None).unwrap(),
        VerifyReport {
            entries: 0,
            head: None,
            torn_tail_bytes: 0
        }
    );
}

fn broken_at(entries: &[Entry]) -> ChainError {
    verify_entries(entries, None).unwrap_err()
}

#[test]
fn editing_any_field_of_a_middle_entry_names_that_entry() {
    let entries = chain_of(5);
    type Edit = Box<dyn Fn(&mut Entry)>;
    let edits: Vec<(&str, Edit)> = vec![
        ("seq", Box::new(|e| e.seq = 9)),
        ("timestamp", Box::new(|e| e.timestamp += 1)),
        (
            "actor",
            Box::new(|e| e.actor = Actor::User("mallory".into())),
        ),
        ("actor kind", Box::new(|e| e.actor = Actor::Hub)),
        ("action", Box::new(|e| e.action = "job.cancel".into())),
        ("project", Box::new(|e| e.project = Some("proj-8".into()))),
        ("project removed", Box::new(|e| e.project = None)),
        ("job_id", Box::new(|e| e.job_id = None)),
        (
            "decision",
            Box::new(|e| e.decision = Some("refused".into())),
        ),
        ("decision removed", Box::new(|e| e.decision = None)),
        (
            "released",
            Box::new(|e| e.released = Some("{\"final_persons\":416}".into())),
        ),
        ("prev_hash", Box::new(|e| e.prev_hash.0[0] ^= 1)),
        ("hash", Box::new(|e| e.hash.0[31] ^= 0x80)),
    ];
    for (name, edit) in edits {
        let mut t = entries.clone();
        edit(&mut t[3]); // seq 4
        assert_ne!(t[3], entries[3], "{name}");
        let err = broken_at(&t);
        assert_eq!(err.seq, 4, "{name}: {err}");
        let expected = match name {
            "seq" => ChainErrorReason::SeqMismatch { found: 9 },
            "prev_hash" => ChainErrorReason::PrevHashMismatch,
            _ => ChainErrorReason::HashMismatch,
        };
        assert_eq!(err.reason, expected, "{name}");
    }
}

#[test]
fn deleted_reordered_and_inserted_entries_are_detected() {
    let entries = chain_of(6);

    let mut t = entries.clone();
    t.remove(2);
    let err = broken_at(&t);
    assert_eq!(
        (err.seq, err.reason),
        (3, ChainErrorReason::SeqMismatch { found: 4 })
    );

    let mut t = entries.clone();
    t.swap(2, 3);
    assert_eq!(broken_at(&t).seq, 3);

    // A duplicate.
    let mut t = entries.clone();
    t.insert(3, entries[2].clone());
    let err = broken_at(&t);
    assert_eq!(
        (err.seq, err.reason),
        (4, ChainErrorReason::SeqMismatch { found: 3 })
    );

    // A forged entry that fits after entry 2: the original entry 3 no longer fits after it.
    let mut t = entries.clone();
    let forged = Entry::seal(draft(99), 3, entries[1].hash);
    t.insert(2, forged);
    let err = broken_at(&t);
    assert_eq!(err.seq, 4);

    // A forged entry renumbered into place: its successor's prev_hash gives it away.
    let mut t = entries.clone();
    t[2] = Entry::seal(draft(99), 3, entries[1].hash);
    let err = broken_at(&t);
    assert_eq!(
        (err.seq, err.reason),
        (4, ChainErrorReason::PrevHashMismatch)
    );

    // Deleting the first entry.
    let mut t = entries.clone();
    t.remove(0);
    assert_eq!(broken_at(&t).seq, 1);
}

#[test]
fn checkpoints_catch_truncation_and_rewrites() {
    let entries = chain_of(6);
    let head = verify_entries(&entries, None).unwrap().head.unwrap();

    // Dropping the last entries leaves a valid chain...
    assert!(verify_entries(&entries[..4], None).is_ok());
    // ...that a checkpoint exposes.
    let err = verify_entries(&entries[..4], Some(head)).unwrap_err();
    assert_eq!(err.seq, 6);
    assert_eq!(
        err.reason,
        ChainErrorReason::CheckpointMissing { entries: 4 }
    );

    // A wholesale rewrite from entry 3 on (every later hash recomputed) is valid on its own...
    let mut c = Chain::open(
        MemoryStore {
            entries: entries[..2].to_vec(),
        },
        None,
    )
    .unwrap();
    for i in 3..=6 {
        c.append(draft(i + 100)).unwrap();
    }
    let rewritten = c.into_store().entries;
    assert!(verify_entries(&rewritten, None).is_ok());
    // ...but not against the checkpoint.
    let err = verify_entries(&rewritten, Some(head)).unwrap_err();
    assert_eq!(
        (err.seq, err.reason),
        (6, ChainErrorReason::CheckpointMismatch)
    );
    assert!(verify_entries(&entries, Some(head)).is_ok());
}

#[test]
fn a_chain_refuses_to_open_broken_and_to_append_empty_actions() {
    let mut entries = chain_of(3);
    entries[1].action = "x".into();
    let err = Chain::open(MemoryStore { entries }, None).unwrap_err();
    assert!(matches!(err, AuditError::Chain(ChainError { seq: 2, .. })));

    let mut c = Chain::open(MemoryStore::default(), None).unwrap();
    assert!(matches!(
        c.append(EntryDraft::new(T0, Actor::Hub, "")),
        Err(AuditError::EmptyAction)
    ));
    assert!(matches!(
        c.append(EntryDraft::new(T0, Actor::User(String::new()), "login")),
        Err(AuditError::InvalidActor)
    ));
    assert_eq!(c.head(), None);
}

/// A store that fails on its `fail_at`-th append.
#[derive(Default)]
struct Flaky {
    inner: MemoryStore,
    appends: u32,
    fail_at: u32,
}

impl AuditStore for Flaky {
    type Error = io::Error;
    fn append(&mut self, e: &Entry) -> io::Result<()> {
        self.appends += 1;
        if self.appends == self.fail_at {
            return Err(io::Error::other("disk full"));
        }
        self.inner.entries.push(e.clone());
        Ok(())
    }
    fn entries(&self) -> io::Result<Vec<Entry>> {
        Ok(self.inner.entries.clone())
    }
}

#[test]
fn a_failed_append_poisons_the_chain_until_reopened() {
    let mut c = Chain::open(
        Flaky {
            fail_at: 2,
            ..Flaky::default()
        },
        None,
    )
    .unwrap();
    c.append(draft(1)).unwrap();
    assert!(matches!(c.append(draft(2)), Err(AuditError::Store(_))));
    assert!(matches!(c.append(draft(3)), Err(AuditError::Poisoned)));
    let mut c = Chain::open(c.into_store(), None).unwrap();
    assert_eq!(c.append(draft(2)).unwrap().seq, 2);
    assert_eq!(c.verify().unwrap().entries, 2);
}

#[test]
fn actors_parse_strictly() {
    for (s, a) in [
        ("user:alice", Actor::User("alice".into())),
        ("site:st-olav", Actor::Site("st-olav".into())),
        ("hub", Actor::Hub),
        ("system", Actor::System),
    ] {
        assert_eq!(s.parse::<Actor>().unwrap(), a);
        assert_eq!(a.to_string(), s);
    }
    assert_eq!(
        "user:a\nb".parse::<Actor>().unwrap(),
        Actor::User("a\nb".into())
    );
    for bad in ["", "user:", "site:", "root", "Hub"] {
        assert!(bad.parse::<Actor>().is_err(), "{bad:?}");
    }
}

#[test]
fn display_escapes_control_characters() {
    let e = Entry::seal(
        EntryDraft::new(T0, Actor::Hub, "job.submit").decision("\u{1b}[2Jx"),
        1,
        EntryHash::GENESIS,
    );
    let shown = e.to_string();
    assert!(!shown.contains('\u{1b}'), "{shown}");
    assert!(shown.contains("decision=\\u{1b}[2Jx"));
}

fn arb_text() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z._-]{1,12}",
        any::<String>().prop_filter("non-empty", |s| !s.is_empty())
    ]
}

fn arb_draft() -> impl Strategy<Value = EntryDraft> {
    (
        any::<i64>(),
        prop_oneof![
            any::<String>()
                .prop_filter("non-empty", |s| !s.is_empty())
                .prop_map(Actor::User),
            "[a-z]{1,8}".prop_map(Actor::Site),
            Just(Actor::Hub),
            Just(Actor::System)
        ],
        arb_text(),
        proptest::option::of(any::<String>()),
        proptest::option::of(any::<String>()),
        proptest::option::of(any::<String>()),
        proptest::option::of(any::<String>()),
    )
        .prop_map(
            |(timestamp, actor, action, project, job_id, decision, released)| EntryDraft {
                timestamp,
                actor,
                action,
                project,
                job_id,
                decision,
                released,
            },
        )
}

proptest! {
    /// Arbitrary text survives the JSON-lines form with its hash intact, and any single change
    /// to any entry is caught at that entry (or, for an edit that only shifts where the chain
    /// breaks, no later than it).
    #[test]
    fn any_edit_is_caught_at_its_entry(
        drafts in proptest::collection::vec(arb_draft(), 1..12),
        which in any::<prop::sample::Index>(),
        field in 0usize..9,
        replacement in arb_draft(),
    ) {
        let mut c = Chain::open(MemoryStore::default(), None).unwrap();
        for d in drafts {
            c.append(d).unwrap();
        }
        let entries = c.into_store().entries;
        // Through the file form.
        let reread: Vec<Entry> = entries
            .iter()
            .map(|e| serde_json::from_str(&serde_json::to_string(e).unwrap()).unwrap())
            .collect();
        prop_assert_eq!(&reread, &entries);
        prop_assert!(verify_entries(&reread, None).is_ok());

        let i = which.index(entries.len());
        let mut t = entries.clone();
        let e = &mut t[i];
        match field {
            0 => e.seq = e.seq.wrapping_add(1 + replacement.timestamp.unsigned_abs() % 5),
            1 => e.timestamp = if replacement.timestamp == e.timestamp { e.timestamp ^ 1 } else { replacement.timestamp },
            2 => e.actor = if replacement.actor == e.actor { Actor::User("zz-mallory".into()) } else { replacement.actor },
            3 => e.action.push('!'),
            4 => e.project = Some(format!("{}!", e.project.clone().unwrap_or_default())),
            5 => e.job_id = match &e.job_id { Some(_) => None, None => Some(String::new()) },
            6 => e.decision = Some(format!("{}!", e.decision.clone().unwrap_or_default())),
            7 => e.released = match &e.released { Some(r) => Some(format!("{r} ")), None => Some(String::new()) },
            _ => e.hash.0[i % 32] ^= 1,
        }
        let err = verify_entries(&t, None).unwrap_err();
        prop_assert_eq!(err.seq, i as u64 + 1, "{}", err);
    }
}
