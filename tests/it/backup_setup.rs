//! What the backup tests share: a temp dir with a password file and `data/`, its config, the jobs' `Env`, an in-process daemon and its backup API.

use std::path::PathBuf;
use std::sync::Arc;

use lantern::backup::jobs::Env;
use lantern::config::Config;
use serde_json::Value;

use crate::support::{InProcess, TOKEN, TestConfig};

/// The repositories' password, in the file `pw`.
pub const PASSWORD: &str = "backup-test-password";

/// A temp dir holding a config (`lantern.toml`), its state, the repositories
/// and an empty `data/` for the sets to back up.
pub struct Setup {
    dir: tempfile::TempDir,
    pub config: PathBuf,
}

impl Setup {
    pub fn new() -> Setup {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("pw"), format!("{PASSWORD}\n")).unwrap();
        std::fs::create_dir(dir.path().join("data")).unwrap();
        let config = dir.path().join("lantern.toml");
        Setup { dir, config }
    }

    pub fn path(&self, p: &str) -> PathBuf {
        self.dir.path().join(p)
    }

    /// Writes `body` (the `[backup]` section and anything else) below a
    /// `[server]` with the test token and a `[daemon]` keeping its state here.
    pub fn write(&self, body: &str) -> Config {
        let text = format!(
            "[server]\nlisten = \"127.0.0.1:0\"\napi-token = \"{TOKEN}\"\n\n[daemon]\nstate-dir = \"state\"\ngrace-period = \"5s\"\ntick-interval = \"100ms\"\n\n{body}\n"
        );
        std::fs::write(&self.config, &text).unwrap();
        Config::parse(&self.config, &text).unwrap_or_else(|e| panic!("{e}\n{text}"))
    }

    /// Writes `body` and returns the jobs' environment for it.
    pub fn env(&self, body: &str) -> Env {
        Setup::env_of(self.write(body))
    }

    /// The jobs' environment for a written config, without a store (as the CLI).
    pub fn env_of(config: Config) -> Env {
        Env::new(
            Arc::new(config.backup.expect("a [backup] section")),
            &config.daemon.state_dir,
            "test",
        )
    }

    /// Starts a daemon in-process on the written config, with its state in this dir.
    pub async fn start(&self) -> InProcess {
        InProcess::resume(TestConfig {
            path: self.config.clone(),
            dir: tempfile::tempdir().unwrap(),
        })
        .await
    }
}

/// A `[[backup.repositories]]` entry using the password file; `extra` adds its keys.
pub fn repo(name: &str, location: &str, extra: &str) -> String {
    format!(
        "[[backup.repositories]]\nname = \"{name}\"\nrepository = \"{location}\"\npassword-file = \"pw\"\n{extra}\n"
    )
}

/// The runs the daemon recorded, newest first.
pub async fn runs(d: &InProcess) -> Vec<Value> {
    let body: Value = reqwest::get(d.url("/api/v1/backups"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    body["runs"].as_array().cloned().unwrap_or_default()
}

/// Asks the daemon to run `job` of `set` now, and checks it was accepted.
pub async fn request(d: &InProcess, set: &str, job: &str) {
    let status = reqwest::Client::new()
        .post(d.url(&format!("/api/v1/backups/{set}/run?job={job}")))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 202, "requesting {job} of {set}");
}

/// Has the daemon reload its config file, and checks it succeeded.
pub async fn reload(d: &InProcess) {
    let status = reqwest::Client::new()
        .post(d.url("/api/v1/reload"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
        .status();
    assert!(status.is_success(), "reload: {status}");
}
