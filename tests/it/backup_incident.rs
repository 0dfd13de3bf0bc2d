//! Backup sets and incidents on a real daemon: a set failing 3-2-1 opens one `backup:SET` incident that pages and resolves, survives restarts once, and missed schedules are caught up at start.

use std::time::Duration;

use lantern::backup::jobs;
use serde_json::Value;

use crate::backup_setup::{Setup, reload, request, runs};
use crate::support::{InProcess, poll_async};

const KEY: &str = "backup:files";

/// `[backup]` with a local primary and an off-site copy on another medium:
/// the set `files` complies once both hold a fresh snapshot. `schedules`
/// go into the set; `check` and `read-data` are off unless `extra` says so.
fn backup(set: &str, schedules: &str, extra: &str) -> String {
    format!(
        r#"[backup]
compliance-interval = "1s"
check = "off"
read-data = "off"
{extra}

[[backup.repositories]]
name = "main"
repository = "repos/main"
password-file = "pw"

[[backup.repositories]]
name = "away"
repository = "repos/away"
password-file = "pw"
medium = "nas"
offsite = true

[[backup.sets]]
name = "{set}"
paths = ["data"]
rpo = "1h"
{schedules}
"#
    )
}

const NO_SCHEDULES: &str =
    "snapshot = \"off\"\ncopy = \"off\"\nforget = \"off\"\ndrill = \"off\"\n";

/// Alice is on duty all day; her channel appends each page to `pages.jsonl`.
const PAGING: &str = r#"
[oncall]
time-zone = "UTC"

[[oncall.people]]
id = "alice"
name = "Alice"
channels = ["pages"]

[[oncall.shifts]]
name = "all-day"
start = "00:00"
end = "00:00"
days = "all"
primary = { people = ["alice"] }

[[channels]]
name = "pages"
kind = "file"
path = "pages.jsonl"

[paging]
tick = "50ms"

[[escalation]]
name = "default"
ack-timeout = "1h"

[[escalation.steps]]
delay = "0s"
targets = ["primary"]
"#;

async fn get_json(url: String) -> Value {
    reqwest::get(url).await.unwrap().json().await.unwrap()
}

/// Every incident (open and resolved) with `key`, newest first.
async fn incidents(d: &InProcess, key: &str) -> Vec<Value> {
    let body = get_json(d.url("/api/v1/incidents?status=all")).await;
    body["incidents"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|i| i["dedup_key"] == key)
        .collect()
}

/// Waits until `key` has an incident with `status`, and returns it.
async fn wait_incident(d: &InProcess, key: &str, status: &str) -> Value {
    let found = poll_async(Duration::from_secs(60), || async {
        incidents(d, key)
            .await
            .iter()
            .any(|i| i["status"] == status)
    })
    .await;
    let all = incidents(d, key).await;
    assert!(found, "no {status} incident {key}: {all:?}");
    all.into_iter().find(|i| i["status"] == status).unwrap()
}

/// The incident's timeline kinds that change its state (not pages, not notes).
async fn state_events(d: &InProcess, id: i64) -> Vec<String> {
    let body = get_json(d.url(&format!("/api/v1/incidents/{id}"))).await;
    body["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["kind"].as_str())
        .filter(|k| ["opened", "reopened", "updated", "resolved"].contains(k))
        .map(str::to_string)
        .collect()
}

/// The lines the file channel wrote, parsed.
fn pages(s: &Setup) -> Vec<Value> {
    std::fs::read_to_string(s.path("pages.jsonl"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

fn title(m: &Value) -> &str {
    m["message"]["title"]
        .as_str()
        .or_else(|| m["title"].as_str())
        .unwrap_or("")
}

async fn wait_page(s: &Setup, what: &str, f: impl Fn(&Value) -> bool) -> Value {
    let found = poll_async(Duration::from_secs(30), || async {
        pages(s).iter().any(&f)
    })
    .await;
    assert!(found, "no {what} was paged; pages: {:?}", pages(s));
    pages(s).into_iter().find(|m| f(m)).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_set_without_a_fresh_offsite_copy_opens_one_incident_that_pages_and_a_copy_resolves_it() {
    let s = Setup::new();
    std::fs::write(s.path("data/x"), "x").unwrap();
    let config = s.write(&format!("{}\n{PAGING}", backup("files", NO_SCHEDULES, "")));
    // The primary holds a fresh snapshot; the off-site repository holds none.
    jobs::snapshot(&Setup::env_of(config), "files")
        .await
        .unwrap();
    let d = s.start().await;

    let open = wait_incident(&d, KEY, "open").await;
    assert_eq!(incidents(&d, KEY).await.len(), 1);
    assert_eq!(open["check"], KEY, "{open}");
    assert!(open["title"].as_str().unwrap().contains("3-2-1"), "{open}");
    let reason = open["last_reason"].as_str().unwrap();
    assert!(
        reason.contains("main") && reason.contains("3 needed"),
        "{reason}"
    );
    // The on-duty primary is paged by the default policy, as for a check.
    let page = wait_page(&s, "trigger page", |m| {
        title(m).contains("backup set files") && !title(m).starts_with("RESOLVED")
    })
    .await;
    assert!(page.to_string().contains("Alice"), "{page}");
    assert_eq!(page["dedup-key"], KEY, "{page}");
    let text = page["text"].as_str().unwrap_or_default();
    assert!(
        text.contains("备份集 files 不满足 3-2-1") && text.contains("· backup set files ·"),
        "{page}"
    );

    request(&d, "files", "copy").await;
    let resolved = wait_incident(&d, KEY, "resolved").await;
    assert_eq!(resolved["id"], open["id"]);
    assert_eq!(incidents(&d, KEY).await.len(), 1, "still the one incident");
    wait_page(&s, "resolve notice", |m| {
        title(m).starts_with("RESOLVED") && title(m).contains("backup set files")
    })
    .await;
    let id = open["id"].as_i64().unwrap();
    assert_eq!(state_events(&d, id).await, ["opened", "resolved"]);
    d.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_restart_while_a_set_is_not_compliant_keeps_its_one_incident_open() {
    let s = Setup::new();
    std::fs::write(s.path("data/x"), "x").unwrap();
    s.write(&backup("files", NO_SCHEDULES, ""));
    let d = s.start().await;
    let open = wait_incident(&d, KEY, "open").await;
    d.stop().await.unwrap();

    let d = s.start().await;
    // The restarted daemon judged the set afresh (its gauge is back)...
    let metrics = d.url("/metrics");
    let judged = poll_async(Duration::from_secs(30), || {
        let url = metrics.clone();
        async move {
            let text = reqwest::get(url).await.unwrap().text().await.unwrap();
            text.contains("lantern_backup_compliant{set=\"files\"} 0")
        }
    })
    .await;
    assert!(judged, "the restarted daemon never judged the set");
    let list = incidents(&d, KEY).await;
    assert_eq!(list.len(), 1, "{list:?}");
    assert_eq!(list[0]["id"], open["id"]);
    assert_eq!(list[0]["status"], "open");

    // ...and a request is served only after that first judgement was
    // written, so once the backup resolves the incident its whole history
    // shows whether the restart resolved, reopened or duplicated it.
    request(&d, "files", "run").await;
    let resolved = wait_incident(&d, KEY, "resolved").await;
    assert_eq!(resolved["id"], open["id"]);
    assert_eq!(resolved["reopened"], 0, "{resolved}");
    assert_eq!(incidents(&d, KEY).await.len(), 1);
    let id = open["id"].as_i64().unwrap();
    assert_eq!(state_events(&d, id).await, ["opened", "resolved"]);
    d.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_set_removed_by_a_reload_has_its_incident_resolved() {
    let s = Setup::new();
    std::fs::write(s.path("data/x"), "x").unwrap();
    s.write(&backup("files", NO_SCHEDULES, ""));
    let d = s.start().await;
    wait_incident(&d, KEY, "open").await;
    s.write(&backup("renamed", NO_SCHEDULES, ""));
    reload(&d).await;
    let resolved = wait_incident(&d, KEY, "resolved").await;
    assert!(incidents(&d, KEY).await.len() == 1, "{resolved}");
    wait_incident(&d, "backup:renamed", "open").await;
    let id = resolved["id"].as_i64().unwrap();
    let body = get_json(d.url(&format!("/api/v1/incidents/{id}"))).await;
    assert!(body.to_string().contains("no longer configured"), "{body}");
    d.stop().await.unwrap();
}

fn scheduled_snapshots(runs: &[Value]) -> usize {
    runs.iter()
        .filter(|r| r["job"] == "snapshot" && r["who"] == "schedule" && r["result"] == "success")
        .count()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_snapshot_whose_scheduled_fire_was_missed_runs_at_start_and_only_once() {
    let s = Setup::new();
    std::fs::write(s.path("data/x"), "x").unwrap();
    // Fires once a year: its last fire was missed (no run is recorded) and
    // its next one is months away, so only a catch-up can take a snapshot.
    s.write(&backup(
        "files",
        "snapshot = \"0 0 1 1 *\"\ncopy = \"off\"\nforget = \"off\"\ndrill = \"off\"\n",
        "",
    ));
    let d = s.start().await;
    let caught_up = poll_async(Duration::from_secs(60), || async {
        scheduled_snapshots(&runs(&d).await) == 1
    })
    .await;
    assert!(caught_up, "no catch-up snapshot: {:?}", runs(&d).await);
    d.stop().await.unwrap();

    // Restarted, the run recorded after the last fire means nothing was missed.
    let d = s.start().await;
    // Two requests in turn: the second is taken on a later tick than the
    // first, so once it is recorded any catch-up at start would be too.
    for n in 1..=2 {
        request(&d, "files", "snapshot").await;
        let done = poll_async(Duration::from_secs(60), || async {
            runs(&d).await.iter().filter(|r| r["who"] == "api").count() == n
        })
        .await;
        assert!(done, "request {n} was not served: {:?}", runs(&d).await);
    }
    assert_eq!(
        scheduled_snapshots(&runs(&d).await),
        1,
        "{:?}",
        runs(&d).await
    );
    d.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_fresh_install_is_not_paged_before_its_first_caught_up_runs() {
    let s = Setup::new();
    std::fs::write(s.path("data/x"), "x").unwrap();
    // Nothing recorded yet: the snapshot and the copy are caught up at
    // start, after which the set complies; judging before them would open
    // (and page) an incident for the second the repositories were empty.
    s.write(&format!(
        "{}{PAGING}",
        backup(
            "files",
            "snapshot = \"0 * * * *\"\ncopy = \"5 * * * *\"\nforget = \"off\"\ndrill = \"off\"\n",
            "",
        )
    ));
    let d = s.start().await;
    let done = poll_async(Duration::from_secs(60), || async {
        let runs = runs(&d).await;
        ["snapshot", "copy"].iter().all(|j| {
            runs.iter()
                .any(|r| r["job"] == *j && r["result"] == "success")
        })
    })
    .await;
    assert!(
        done,
        "the missed runs were not caught up: {:?}",
        runs(&d).await
    );
    // One more compliance round after both (compliance-interval is 1s).
    request(&d, "files", "forget").await;
    let forgot = poll_async(Duration::from_secs(60), || async {
        runs(&d).await.iter().any(|r| r["job"] == "forget")
    })
    .await;
    assert!(forgot, "{:?}", runs(&d).await);
    assert_eq!(incidents(&d, KEY).await, Vec::<Value>::new());
    assert!(pages(&s).is_empty(), "{:?}", pages(&s));
    d.stop().await.unwrap();
}
