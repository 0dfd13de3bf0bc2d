//! The built binary's life: signals, reloads, systemd notifications, JSON logs, and store failures.

use std::os::unix::net::UnixDatagram;
use std::process::Command;
use std::time::{Duration, Instant};

use rustix::process::Signal;

use crate::support::{Process, TOKEN, TestConfig, bin, get, metric_value, post_with_token};

const GRACE: Duration = Duration::from_secs(5);

fn ready(p: &Process) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while get(&p.url("/-/ready")).0 != 200 {
        assert!(Instant::now() < deadline, "never ready");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn sigterm_drains_and_exits_0_within_the_grace_period() {
    let cfg = TestConfig::new("");
    let mut p = Process::start(&cfg.path, &[], &[]);
    ready(&p);
    let sent = Instant::now();
    p.signal(Signal::TERM);
    let status = p.wait_exit(GRACE + Duration::from_secs(2));
    assert_eq!(status.code(), Some(0), "{}", p.log.join("\n"));
    assert!(sent.elapsed() < GRACE);
    assert!(
        p.log.iter().any(|l| l.contains("SIGTERM")),
        "{}",
        p.log.join("\n")
    );
}

#[test]
fn sigint_takes_the_same_graceful_path() {
    let cfg = TestConfig::new("");
    let mut p = Process::start(&cfg.path, &[], &[]);
    ready(&p);
    p.signal(Signal::INT);
    assert_eq!(p.wait_exit(GRACE + Duration::from_secs(2)).code(), Some(0));
    assert!(p.log.iter().any(|l| l.contains("SIGINT")));
}

#[test]
fn sighup_with_a_bad_file_keeps_the_old_config_and_with_a_good_file_swaps_it() {
    let cfg = TestConfig::new("");
    let mut p = Process::start(&cfg.path, &[], &[]);
    ready(&p);

    cfg.write("[metrics]\nnot-a-key = 1\n");
    p.signal(Signal::HUP);
    let refused = p.wait_for_line(Duration::from_secs(10), |l| l.contains("reload refused"));
    let refused = refused.unwrap_or_else(|| panic!("{}", p.log.join("\n")));
    assert!(
        refused.contains("metrics.not-a-key"),
        "the log names the key: {refused}"
    );
    let (_, body) = get(&p.url("/metrics"));
    assert_eq!(
        metric_value(&body, "lantern_config_last_reload_successful"),
        Some(0.0)
    );
    assert_eq!(
        get(&p.url("/-/ready")).0,
        200,
        "still serving on the old config"
    );

    cfg.write("");
    p.signal(Signal::HUP);
    assert!(
        p.wait_for_line(Duration::from_secs(10), |l| l
            .contains("configuration reloaded"))
            .is_some()
    );
    let (_, body) = get(&p.url("/metrics"));
    assert_eq!(
        metric_value(&body, "lantern_config_last_reload_successful"),
        Some(1.0)
    );

    p.signal(Signal::TERM);
    assert_eq!(p.wait_exit(GRACE + Duration::from_secs(2)).code(), Some(0));
}

/// Receives datagrams until one contains `want`, or fails after `limit`.
fn expect_notify(sock: &UnixDatagram, want: &str, limit: Duration, seen: &mut Vec<String>) {
    let deadline = Instant::now() + limit;
    let mut buf = [0u8; 4096];
    loop {
        let left = deadline
            .checked_duration_since(Instant::now())
            .unwrap_or_else(|| {
                panic!("no {want} within {limit:?}; got {seen:?}");
            });
        sock.set_read_timeout(Some(left.max(Duration::from_millis(1))))
            .unwrap();
        match sock.recv(&mut buf) {
            Ok(n) => {
                let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
                seen.push(msg.clone());
                if msg.lines().any(|l| l == want) {
                    return;
                }
            }
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(e) => panic!("notify socket: {e}"),
        }
    }
}

#[test]
fn systemd_hears_ready_watchdog_reloading_and_stopping() {
    let cfg = TestConfig::new("");
    let sock_path = cfg.dir.path().join("notify.sock");
    let sock = UnixDatagram::bind(&sock_path).unwrap();
    let sock_env = sock_path.to_str().unwrap();
    // 400 ms watchdog: lantern must ping every 200 ms.
    let mut p = Process::start(
        &cfg.path,
        &[("NOTIFY_SOCKET", sock_env), ("WATCHDOG_USEC", "400000")],
        &[],
    );
    let mut seen = Vec::new();
    expect_notify(&sock, "READY=1", Duration::from_secs(10), &mut seen);
    let start = Instant::now();
    expect_notify(&sock, "WATCHDOG=1", Duration::from_secs(2), &mut seen);
    expect_notify(&sock, "WATCHDOG=1", Duration::from_secs(2), &mut seen);
    assert!(start.elapsed() < Duration::from_millis(2500));

    p.signal(Signal::HUP);
    expect_notify(&sock, "RELOADING=1", Duration::from_secs(5), &mut seen);
    let reloading = seen.last().unwrap().clone();
    assert!(
        reloading.contains("MONOTONIC_USEC="),
        "systemd 253+ needs MONOTONIC_USEC: {reloading}"
    );
    expect_notify(&sock, "READY=1", Duration::from_secs(5), &mut seen);

    p.signal(Signal::TERM);
    expect_notify(&sock, "STOPPING=1", Duration::from_secs(5), &mut seen);
    assert_eq!(p.wait_exit(GRACE + Duration::from_secs(2)).code(), Some(0));
}

#[test]
fn json_logs_are_one_object_a_line() {
    let cfg = TestConfig::new("");
    let mut p = Process::start(&cfg.path, &[], &["--log-format", "json"]);
    ready(&p);
    p.signal(Signal::TERM);
    assert_eq!(p.wait_exit(GRACE + Duration::from_secs(2)).code(), Some(0));
    assert!(p.log.len() >= 3, "{:?}", p.log);
    for line in &p.log {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert!(
            v["level"].is_string() && v["message"].is_string() && v["timestamp"].is_string(),
            "{v}"
        );
    }
}

/// `lantern run` on `cfg` in the foreground until it exits, for starts that
/// must fail: the exit code and stderr.
fn run_to_exit(cfg: &TestConfig) -> (Option<i32>, String) {
    let out = Command::new(bin())
        .args(["run", "--config"])
        .arg(&cfg.path)
        .args(["--listen", "127.0.0.1:0", "--log-format", "text"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    (out.status.code(), stderr)
}

#[test]
fn a_state_dir_that_cannot_be_created_is_a_clear_error() {
    let cfg = TestConfig::new("");
    std::fs::write(cfg.dir.path().join("state"), "a file, not a directory").unwrap();
    let (code, stderr) = run_to_exit(&cfg);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains("state directory") && stderr.contains("state"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn a_corrupt_store_is_a_clear_error_not_a_panic() {
    let cfg = TestConfig::new("");
    std::fs::create_dir_all(cfg.state_dir()).unwrap();
    std::fs::write(cfg.state_dir().join("lantern.db"), vec![7u8; 16384]).unwrap();
    let (code, stderr) = run_to_exit(&cfg);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains("corrupt") && stderr.contains("lantern.db"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn a_second_lantern_on_the_same_state_dir_is_refused() {
    let cfg = TestConfig::new("");
    let first = Process::start(&cfg.path, &[], &[]);
    ready(&first);
    let (code, stderr) = run_to_exit(&cfg);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("in use by another lantern"), "{stderr}");
    assert_eq!(
        get(&first.url("/-/ready")).0,
        200,
        "the first one is unharmed"
    );
}

#[test]
fn the_api_token_never_reaches_the_log() {
    let cfg = TestConfig::new("[log]\nlevel = \"trace\"\n");
    let mut p = Process::start(&cfg.path, &[], &[]);
    ready(&p);
    assert_eq!(post_with_token(&p.url("/api/v1/reload"), TOKEN), 200);
    p.signal(Signal::TERM);
    p.wait_exit(GRACE + Duration::from_secs(2));
    let log = p.log.join("\n");
    assert!(!log.contains(TOKEN), "the token leaked into the log");
    assert!(log.contains("configuration reloaded"));
}

#[test]
fn version_names_the_release() {
    let out = Command::new(bin()).arg("version").output().unwrap();
    assert!(out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stdout)
            .starts_with(&format!("lantern {}", env!("CARGO_PKG_VERSION")))
    );
}
