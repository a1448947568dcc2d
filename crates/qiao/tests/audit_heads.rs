//! Audit that detects truncation and rewriting, through the real processes and CLI: a site
//! signs its audit head with each poll and the hub keeps it; the hub answers with its own
//! signed head and the site keeps it. After one job, `qiao site audit verify` and
//! `qiao hub audit verify` pass on the intact logs and fail — naming the sequence numbers — on a
//! log whose last entries were removed, and on one whose entry was edited and whose chain was
//! recomputed (which the chain alone accepts). A head with a bad signature is refused.

mod support;

use std::path::Path;
use std::process::Output;
use std::time::Duration;

use qiao_hub::api::QueryRequest;
use qiao_hub::audit::{Entry, EntryHash};
use qiao_hub::protocol::{ProjectId, QueryType, SignedHead};
use qiao_hub::store::{HubStore, RedbStore, Table};
use qiao_hub::view::SiteStatus;
use support::{qiao, run_for, s, Project, User};

const GIBLEED: &str = "../../../shared/data/eunomia-gibleed-5.3";

fn run(args: &[&str]) -> Output {
    run_for(args, None, Duration::from_secs(60))
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn heads(text: &str) -> Vec<SignedHead> {
    SignedHead::parse_lines(text).expect("signed heads")
}

/// Recomputes every hash from the first entry on, as a forger who edited an entry would.
fn rechain(entries: &mut [Entry]) {
    let mut prev = EntryHash::GENESIS;
    for e in entries {
        e.prev_hash = prev;
        e.hash = e.compute_hash();
        prev = e.hash;
    }
}

fn write_log(path: &Path, entries: &[Entry]) {
    let mut text = String::new();
    for e in entries {
        text.push_str(&serde_json::to_string(e).unwrap());
        text.push('\n');
    }
    std::fs::write(path, text).unwrap();
}

fn hub_entries(store: &RedbStore) -> Vec<Entry> {
    let store: &dyn HubStore = store;
    store.audit_entries(0, usize::MAX).unwrap()
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_file() {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

#[test]
fn truncated_and_rewritten_audit_logs_are_detected_with_the_other_sides_signed_heads() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("g.qiao");
    qiao(&["ingest", "--cdm", GIBLEED, "--out", s(&store)]);
    let net = support::network(
        dir.path(),
        &[("hospital-a".into(), store)],
        &[User {
            id: "alice",
            institution: "Example Pharma",
        }],
        &[Project {
            id: "feasibility",
            members: &["alice"],
        }],
        Some(7),
        &[],
    );
    let site_data = net.sites[0].data.clone();
    let site_id = net.sites[0].id.to_string();
    let alice = support::client(&net, "alice");
    let definition: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(format!(
            "{GIBLEED}/../reference/cohortgenerator-eunomia/cohorts/3.json"
        ))
        .unwrap(),
    )
    .unwrap();
    let job = alice
        .submit_query(
            &ProjectId::new("feasibility").unwrap(),
            &QueryRequest {
                query: QueryType::CohortCount,
                definition,
                sites: None,
            },
        )
        .unwrap();
    let v = alice
        .wait_job(&job.job_id, Duration::from_secs(60))
        .unwrap();
    assert_eq!(v.sites[0].status, SiteStatus::Done, "{v:?}");
    // One more poll after the result, so that both sides hold heads covering the job.
    std::thread::sleep(Duration::from_secs(7));
    net.stop().unwrap();

    let hub_dir = dir.path().join("hub");
    let site_heads_text = qiao(&[
        "hub",
        "audit",
        "site-heads",
        "--data",
        s(&hub_dir),
        "--site",
        &site_id,
    ]);
    let hub_heads_text = qiao(&["site", "audit", "hub-heads", "--data", s(&site_data)]);
    let site_heads = heads(&site_heads_text);
    let hub_heads = heads(&hub_heads_text);
    let site_head = site_heads
        .last()
        .expect("the hub kept the site's heads")
        .seq;
    let hub_head = hub_heads.last().expect("the site kept the hub's heads").seq;
    assert!(site_head >= 4, "{site_heads_text}");
    assert!(hub_head >= 6, "{hub_heads_text}");
    let site_heads_file = dir.path().join("site-heads.jsonl");
    let hub_heads_file = dir.path().join("hub-heads.jsonl");
    std::fs::write(&site_heads_file, &site_heads_text).unwrap();
    std::fs::write(&hub_heads_file, &hub_heads_text).unwrap();

    // Intact logs pass.
    let site_verify = [
        "site",
        "audit",
        "verify",
        "--data",
        s(&site_data),
        "--heads",
        s(&site_heads_file),
    ];
    let out = qiao(&site_verify);
    assert!(out.contains("audit log verified"), "{out}");
    let out = qiao(&[
        "hub",
        "audit",
        "verify",
        "--data",
        s(&hub_dir),
        "--heads",
        s(&hub_heads_file),
    ]);
    assert!(out.contains("audit chain verified"), "{out}");

    // --- The site's log -------------------------------------------------------------------
    let log = qiao_site::SiteDir::open(&site_data).unwrap().audit_path();
    let original = std::fs::read_to_string(&log).unwrap();
    let entries: Vec<Entry> = original
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    // Truncated below the hub's newest head: the chain alone still verifies.
    let keep = site_head as usize - 2;
    write_log(&log, &entries[..keep]);
    qiao(&["site", "audit", "--data", s(&site_data)]);
    let o = run(&site_verify);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains(&format!(
            "entries #{}..#{site_head} are missing: the log ends at entry #{keep}",
            keep + 1
        )),
        "{}",
        stderr(&o)
    );
    // An entry edited and the whole chain recomputed: the chain alone still verifies.
    let mut rewritten = entries.clone();
    rewritten[1].decision = Some("nothing happened here".into());
    rechain(&mut rewritten);
    write_log(&log, &rewritten);
    qiao(&["site", "audit", "--data", s(&site_data)]);
    let o = run(&site_verify);
    assert!(!o.status.success());
    let e = stderr(&o);
    // The oldest head covering entry #2.
    let first_head = site_heads.iter().find(|h| h.seq >= 2).unwrap().seq;
    assert!(
        e.contains(&format!(
            "differs from the signed head #{first_head} on record"
        )) || e.contains(&format!("entry #{first_head} was altered")),
        "{e}"
    );
    // Restored, it passes again.
    std::fs::write(&log, &original).unwrap();
    qiao(&site_verify);
    // A head whose seq was changed no longer carries the site's signature.
    let mut forged = site_heads.last().unwrap().clone();
    forged.seq += 1;
    let forged_file = dir.path().join("forged.jsonl");
    std::fs::write(&forged_file, forged.to_json()).unwrap();
    let o = run(&[
        "site",
        "audit",
        "verify",
        "--data",
        s(&site_data),
        "--heads",
        s(&forged_file),
    ]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("does not verify"), "{}", stderr(&o));

    // --- The hub's chain ------------------------------------------------------------------
    let truncated = dir.path().join("hub-truncated");
    copy_dir(&hub_dir, &truncated);
    {
        let db = RedbStore::open(&truncated).unwrap();
        let n = hub_entries(&db).len() as u64;
        let store: &dyn HubStore = &db;
        store
            .write(&mut |tx| {
                for seq in hub_head - 1..=n {
                    tx.delete(Table::Audit, &format!("{seq:020}"))?;
                }
                Ok(())
            })
            .unwrap();
    }
    qiao(&["hub", "audit", "--quiet", "--data", s(&truncated)]);
    let o = run(&[
        "hub",
        "audit",
        "verify",
        "--data",
        s(&truncated),
        "--heads",
        s(&hub_heads_file),
    ]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains(&format!(
            "entries #{}..#{hub_head} are missing",
            hub_head - 1
        )),
        "{}",
        stderr(&o)
    );

    let rewritten_dir = dir.path().join("hub-rewritten");
    copy_dir(&hub_dir, &rewritten_dir);
    {
        let db = RedbStore::open(&rewritten_dir).unwrap();
        let mut entries = hub_entries(&db);
        // The last entry a kept head covers, edited; every hash recomputed.
        let k = hub_head as usize - 1;
        entries[k].decision = Some("nothing happened here".into());
        rechain(&mut entries);
        let store: &dyn HubStore = &db;
        store
            .write(&mut |tx| {
                for e in &entries {
                    tx.put(
                        Table::Audit,
                        &format!("{:020}", e.seq),
                        &serde_json::to_vec(e).unwrap(),
                    )?;
                }
                Ok(())
            })
            .unwrap();
    }
    qiao(&["hub", "audit", "--quiet", "--data", s(&rewritten_dir)]);
    let o = run(&[
        "hub",
        "audit",
        "verify",
        "--data",
        s(&rewritten_dir),
        "--heads",
        s(&hub_heads_file),
    ]);
    assert!(!o.status.success());
    let before = hub_heads
        .iter()
        .rev()
        .find(|h| h.seq < hub_head)
        .map_or(0, |h| h.seq);
    let e = stderr(&o);
    assert!(
        e.contains(&format!(
            "one of entries #{}..#{hub_head} was altered",
            before + 1
        )) || e.contains(&format!("entry #{hub_head} was altered")),
        "{e}"
    );
    // A forged hub head is refused.
    let mut forged = hub_heads.last().unwrap().clone();
    forged.hash.0[0] ^= 1;
    std::fs::write(&forged_file, forged.to_json()).unwrap();
    let o = run(&[
        "hub",
        "audit",
        "verify",
        "--data",
        s(&hub_dir),
        "--heads",
        s(&forged_file),
    ]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("does not verify"), "{}", stderr(&o));
}
