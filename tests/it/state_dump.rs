//! `lantern state dump` beside a running daemon: a consistent, complete copy of the state database on stdout.

use std::process::Command;

use crate::support::{self, InProcess, TOKEN};

#[tokio::test(flavor = "multi_thread")]
async fn a_dump_taken_beside_the_running_daemon_is_a_whole_consistent_database() {
    let d = InProcess::start("").await;
    let client = reqwest::Client::new();
    for n in 0..20 {
        let status = client
            .post(d.url("/api/v1/handovers/notes"))
            .bearer_auth(TOKEN)
            .json(&serde_json::json!({"text": format!("note {n}"), "author": "test"}))
            .send()
            .await
            .unwrap()
            .status();
        assert!(status.is_success(), "note {n}: {status}");
    }
    // The daemon holds the store the whole time.
    let out = Command::new(support::bin())
        .args(["state", "dump", "--config"])
        .arg(&d.config.path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.stdout.starts_with(b"SQLite format 3\0"),
        "not a database"
    );
    let copy = d.config.dir.path().join("copy.db");
    std::fs::write(&copy, &out.stdout).unwrap();
    let c = rusqlite::Connection::open(&copy).unwrap();
    let check: String = c
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(check, "ok");
    let notes: i64 = c
        .query_row("SELECT count(*) FROM handover_notes", [], |r| r.get(0))
        .unwrap();
    assert_eq!(notes, 20, "every committed note is in the dump");
    // A self-contained file: no -wal beside it is needed, and none is left in the state dir.
    let left: Vec<_> = std::fs::read_dir(d.config.state_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".lantern-dump-"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
    d.stop().await.unwrap();
}

#[test]
fn a_dump_without_a_state_database_fails_and_says_so() {
    let config = support::TestConfig::new("");
    let out = Command::new(support::bin())
        .args(["state", "dump", "--config"])
        .arg(&config.path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("lantern.db does not exist"), "{err}");
}
