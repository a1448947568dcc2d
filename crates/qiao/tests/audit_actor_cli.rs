//! Changes made from the command line are audited as the operating-system user who ran the
//! command (`user:os:<name>`), not as "system": the site's policy (`qiao site policy set`) and
//! the hub's accounts (`qiao hub create-user`).

use std::path::Path;
use std::process::Command;

fn qiao(args: &[&str], os_user: &str) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_qiao"))
        .args(args)
        .env("USER", os_user)
        .env("LOGNAME", os_user)
        .env("QIAO_HUB_PASSWORD", "a long enough pass phrase 7")
        .output()
        .expect("run qiao");
    assert!(
        out.status.success(),
        "qiao {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn a_site_policy_change_from_the_cli_names_the_os_user() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("site");
    let dir = qiao_site::SiteDir::create(&data).unwrap();
    qiao_site::SitePolicy::default().save(&dir).unwrap();
    qiao(
        &[
            "site",
            "policy",
            "set",
            "--data",
            s(&data),
            "--min-cell-count",
            "11",
        ],
        "steward-wang",
    );
    let (entries, _) = qiao_site::audit::read(&dir).expect("the chain verifies");
    let set: Vec<_> = entries
        .iter()
        .filter(|e| e.action == "policy.set")
        .collect();
    assert_eq!(set.len(), 1, "{entries:?}");
    assert_eq!(set[0].actor.to_string(), "user:os:steward-wang");
    assert_eq!(
        qiao_site::SitePolicy::load(&dir).unwrap().min_cell_count,
        11
    );
}

#[test]
fn a_hub_account_created_from_the_cli_names_the_os_user() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("hub");
    qiao(
        &[
            "hub",
            "create-user",
            "--data",
            s(&data),
            "--id",
            "li.na",
            "--role",
            "auditor",
        ],
        "admin-zhao",
    );
    let log = qiao(
        &["hub", "audit", "--data", s(&data), "--json"],
        "admin-zhao",
    );
    let created: Vec<serde_json::Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .filter(|e: &serde_json::Value| {
            e["action"].as_str().is_some_and(|a| a.starts_with("user."))
        })
        .collect();
    assert!(!created.is_empty(), "{log}");
    for e in &created {
        assert_eq!(e["actor"], "user:os:admin-zhao", "{e}");
    }
}
