//! lantern's exposition against the real Prometheus tools: promtool's linter and a live scrape.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rustix::process::Signal;

use crate::prometheus_support::Prometheus;
use crate::support::{Process, TestConfig, get, tool};

#[test]
fn promtool_check_metrics_finds_nothing_to_report() {
    // Checks of several kinds, one of them failing, so every check and
    // incident family has samples to lint.
    let cfg = TestConfig::new(CHECKS);
    let mut p = Process::start(&cfg.path, &[], &[]);
    // Touch a few routes first so the per-route HTTP families have samples too.
    for path in ["/-/ready", "/-/healthy", "/api/v1/info", "/nope", "/status"] {
        get(&p.url(path));
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    let exposition = loop {
        let (status, exposition) = get(&p.url("/metrics"));
        assert_eq!(status, 200);
        if exposition.contains("lantern_incidents_opened_total 1")
            && exposition.contains(r#"lantern_check_state{check="self",state="UP"} 1"#)
        {
            break exposition;
        }
        assert!(
            Instant::now() < deadline,
            "checks never settled: {exposition}"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    for family in [
        "lantern_http_requests_total",
        "lantern_check_success",
        "lantern_check_duration_seconds_bucket",
        "lantern_check_observations_total",
        "lantern_check_consecutive_failures",
        "lantern_check_start_lateness_seconds_bucket",
        "lantern_check_last_observation_timestamp_seconds",
        "lantern_incidents_open",
    ] {
        assert!(exposition.contains(family), "{family} missing");
    }
    let mut promtool = Command::new(tool("PROMTOOL_BIN", "promtool"))
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    promtool
        .stdin
        .take()
        .unwrap()
        .write_all(exposition.as_bytes())
        .unwrap();
    let out = promtool.wait_with_output().unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(0), "promtool: {said}");
    assert!(said.trim().is_empty(), "promtool reported: {said}");
    p.signal(Signal::TERM);
    p.wait_exit(Duration::from_secs(10));
}

const CHECKS: &str = r#"
[[checks]]
name = "self"
kind = "http"
url = "http://{self}/-/healthy"
interval = "100ms"

[[checks]]
name = "closed-port"
kind = "tcp"
address = "127.0.0.1:1"
interval = "100ms"
failure-threshold = 1

[[checks]]
name = "nightly-backup"
kind = "heartbeat"
period = "1h"
"#;

#[test]
fn lantern_status_prints_the_checks_and_open_incidents_of_the_running_daemon() {
    let cfg = TestConfig::new(CHECKS);
    let mut p = Process::start(&cfg.path, &[], &[]);
    let deadline = Instant::now() + Duration::from_secs(20);
    let out = loop {
        let out = Command::new(crate::support::bin())
            .args(["status", "--url", &p.url("")])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{out:?}");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        if text.contains("1 open incident") && text.contains("self ") && text.contains(" UP ") {
            break text;
        }
        assert!(Instant::now() < deadline, "never settled: {text}");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(out.contains("closed-port"), "{out}");
    assert!(out.contains("DOWN"), "{out}");
    assert!(out.contains("closed-port is down"), "{out}");
    assert!(out.contains("mode: degraded"), "{out}");
    p.signal(Signal::TERM);
    assert_eq!(p.wait_exit(Duration::from_secs(10)).code(), Some(0));
    // Nothing listening: a clear error and a failure exit, not a panic.
    let out = Command::new(crate::support::bin())
        .args(["status", "--url", &p.url("")])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot reach lantern"));
}

#[test]
fn a_real_prometheus_scrapes_lantern_and_sees_the_target_up() {
    let cfg = TestConfig::new("");
    let mut p = Process::start(&cfg.path, &[], &[]);
    let prom = Prometheus::start("lantern", p.addr);
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut last = None;
    loop {
        if let Some(v) = prom.api("/api/v1/targets") {
            let active = &v["data"]["activeTargets"];
            if active[0]["health"] == "up" {
                break;
            }
            last = Some(v);
        }
        assert!(
            Instant::now() < deadline,
            "target never up; last answer: {last:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // The scraped series are queryable, labelled as lantern exposes them.
    let q = prom
        .api("/api/v1/query?query=lantern_build_info")
        .expect("query answers");
    let result = &q["data"]["result"];
    assert_eq!(result.as_array().map(Vec::len), Some(1), "{q}");
    assert_eq!(result[0]["metric"]["version"], env!("CARGO_PKG_VERSION"));
    let q = prom
        .api("/api/v1/query?query=up%7Bjob%3D%22lantern%22%7D")
        .unwrap();
    assert_eq!(q["data"]["result"][0]["value"][1], "1", "{q}");
    p.signal(Signal::TERM);
    assert_eq!(p.wait_exit(Duration::from_secs(10)).code(), Some(0));
}
