//! Every shipped config and valid fixture passes `check-config`; every invalid fixture exits 78 naming file, line and key.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::{bin, repo_root};

const FIXTURE_TOKEN: &str = "fixture-env-token-0123456789";

fn toml_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        // extension(), not ends_with(".toml"): Path::ends_with compares whole components.
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    files
}

fn check_config(file: &Path, creds: &Path) -> std::process::Output {
    Command::new(bin())
        .arg("check-config")
        .arg(file)
        .env("LANTERN_TEST_TOKEN", FIXTURE_TOKEN)
        .env("CREDENTIALS_DIRECTORY", creds)
        .env_remove("LANTERN_TEST_SURELY_UNSET")
        .output()
        .unwrap()
}

/// The files the shipped config reads from `$CREDENTIALS_DIRECTORY`, and what they hold.
const CREDENTIALS: &[(&str, &str)] = &[
    ("api-token", "credential-token-0123456789"),
    ("order-api-token", "credential-order-api-token"),
    ("pg-password", "credential-pg-password"),
    ("mysql-password", "credential-mysql-password"),
    ("redis-password", "credential-redis-password"),
    ("backup-heartbeat-token", "credential-backup-token"),
    ("backup-password", "credential-backup-password"),
    (
        "dingtalk-webhook",
        "https://oapi.dingtalk.com/robot/send?access_token=credential-dingtalk-token",
    ),
    ("dingtalk-secret", "credential-dingtalk-secret"),
    (
        "feishu-webhook",
        "https://open.feishu.cn/open-apis/bot/v2/hook/credential-feishu-token",
    ),
    ("feishu-secret", "credential-feishu-secret"),
    (
        "wecom-webhook",
        "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=credential-wecom-key",
    ),
    ("pagerduty-routing-key", "credential-pagerduty-routing-key"),
    ("webhook-secret", "credential-webhook-secret"),
    ("smtp-password", "credential-smtp-password"),
];

/// A systemd-style credentials directory holding the shipped config's secrets.
fn credentials() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (name, value) in CREDENTIALS {
        std::fs::write(dir.path().join(name), format!("{value}\n")).unwrap();
    }
    dir
}

#[test]
fn every_valid_fixture_and_every_shipped_config_passes_check_config() {
    let creds = credentials();
    let valid = toml_files(&repo_root().join("tests/fixtures/config/valid"));
    // rota-*.toml are holiday calendars, not configs: lantern.toml reads them
    // through `oncall.calendar-file`, so checking it checks them.
    let (calendars, shipped): (Vec<PathBuf>, Vec<PathBuf>) =
        toml_files(&repo_root().join("config"))
            .into_iter()
            .partition(|p| {
                p.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with("rota-"))
            });
    let main_config = std::fs::read_to_string(repo_root().join("config/lantern.toml")).unwrap();
    for c in &calendars {
        let name = c.file_name().unwrap().to_string_lossy();
        assert!(
            main_config.contains(&format!("calendar-file = \"{name}\"")),
            "config/{name} is not read by config/lantern.toml, so nothing checks it"
        );
    }
    assert_eq!(valid.len(), 5, "valid fixtures found: {valid:?}");
    assert!(shipped.len() >= 2, "shipped configs found: {shipped:?}");
    for name in ["lantern.toml", "demo.toml"] {
        assert!(
            shipped.iter().any(|p| p.ends_with(name)),
            "config/{name} is missing"
        );
    }
    for file in valid.iter().chain(&shipped) {
        let out = check_config(file, creds.path());
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{}:\n{stderr}", file.display());
        assert!(
            stdout.contains("[server]"),
            "{}: effective config not printed:\n{stdout}",
            file.display()
        );
        let shown = [
            FIXTURE_TOKEN,
            "fixture-token-0123456789",
            "demo-token-0123456789",
        ];
        for secret in shown.into_iter().chain(CREDENTIALS.iter().map(|(_, v)| *v)) {
            assert!(
                !stdout.contains(secret) && !stderr.contains(secret),
                "{} printed a secret",
                file.display()
            );
        }
    }
}

#[test]
fn every_invalid_fixture_exits_78_and_names_file_line_and_key() {
    let creds = credentials();
    let invalid = toml_files(&repo_root().join("tests/fixtures/config/invalid"));
    assert_eq!(invalid.len(), 45, "invalid fixtures found: {invalid:?}");
    for file in &invalid {
        let text = std::fs::read_to_string(file).unwrap();
        let header = |name: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(&format!("# {name}: ")))
                .unwrap_or_else(|| panic!("{} lacks a `# {name}:` line", file.display()))
                .to_string()
        };
        let (key, line) = (header("expect-key"), header("expect-line"));
        let out = check_config(file, creds.path());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(78), "{}: {stderr}", file.display());
        let want = format!("{}:{line}: key `{key}`", file.display());
        assert!(
            stderr.contains(&want),
            "{}: wanted `{want}` in:\n{stderr}",
            file.display()
        );
        assert!(
            out.stdout.is_empty(),
            "an invalid config must not print an effective config"
        );
    }
}

#[test]
fn run_refuses_an_invalid_config_with_78_before_binding_anything() {
    let file = repo_root().join("tests/fixtures/config/invalid/bad-listen.toml");
    let out = Command::new(bin())
        .args(["run", "--config"])
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(78));
    assert!(String::from_utf8_lossy(&out.stderr).contains("server.listen"));
}

#[test]
fn a_missing_config_file_is_a_config_error() {
    let out = Command::new(bin())
        .args(["check-config", "/nonexistent/lantern.toml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(78));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/lantern.toml"));
}
