//! The shipped systemd unit passes `systemd-analyze verify` silently and scores at most 2.0 on `security`.

use std::path::PathBuf;
use std::process::Command;

use crate::support::{bin, repo_root};

/// systemd-analyze, when this machine has it. The test command installs it,
/// so under CI its absence fails the test instead of skipping it.
fn systemd_analyze() -> Option<PathBuf> {
    let p = PathBuf::from("/usr/bin/systemd-analyze");
    if p.is_file() {
        return Some(p);
    }
    assert!(
        std::env::var("CI").is_err(),
        "systemd-analyze is missing under CI"
    );
    eprintln!("systemd-analyze not installed here; skipping");
    None
}

/// The shipped unit, copied next to a sysusers-free stand-in, with ExecStart
/// pointed at the binary under test (verify insists it exists).
fn unit_under_test() -> (tempfile::TempDir, PathBuf) {
    let text = std::fs::read_to_string(repo_root().join("systemd/lantern.service")).unwrap();
    assert!(
        text.contains("ExecStart=/usr/bin/lantern "),
        "unit must start /usr/bin/lantern"
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("lantern.service");
    std::fs::write(
        &path,
        text.replace("/usr/bin/lantern ", &format!("{} ", bin())),
    )
    .unwrap();
    (dir, path)
}

#[test]
fn the_unit_passes_systemd_analyze_verify_with_nothing_on_stderr() {
    let Some(sa) = systemd_analyze() else { return };
    let (_dir, unit) = unit_under_test();
    let out = Command::new(sa)
        .args(["verify", "--man=no"])
        .arg(&unit)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "verify failed: {stderr}");
    assert!(stderr.trim().is_empty(), "verify warned: {stderr}");
}

#[test]
fn the_unit_scores_at_most_2_0_on_systemd_analyze_security() {
    let Some(sa) = systemd_analyze() else { return };
    let (_dir, unit) = unit_under_test();
    let out = Command::new(sa)
        .args(["security", "--offline=yes", "--no-pager", "--threshold=20"])
        .arg(&unit)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let score_line = stdout
        .lines()
        .find(|l| l.contains("Overall exposure level"))
        .unwrap_or_else(|| {
            panic!(
                "no score in:\n{stdout}\n{}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
    let score: f64 = score_line
        .split(':')
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("cannot read score from {score_line}"));
    assert!(score <= 2.0, "exposure {score} > 2.0:\n{stdout}");
    assert!(out.status.success(), "above threshold:\n{stdout}");
}

#[test]
fn the_sysusers_snippet_creates_the_lantern_user() {
    let sysusers = PathBuf::from("/usr/bin/systemd-sysusers");
    if !sysusers.is_file() {
        assert!(
            std::env::var("CI").is_err(),
            "systemd-sysusers is missing under CI"
        );
        return;
    }
    let root = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(root.path().join("etc")).unwrap();
    let out = Command::new(sysusers)
        .arg(format!("--root={}", root.path().display()))
        .arg(repo_root().join("systemd/lantern.sysusers.conf"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let passwd = std::fs::read_to_string(root.path().join("etc/passwd")).unwrap();
    assert!(
        passwd.lines().any(|l| l.starts_with("lantern:")),
        "{passwd}"
    );
}
