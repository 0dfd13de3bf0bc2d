//! Shared test helpers: start lantern in-process or as the built binary on 127.0.0.1:0, poll with deadlines.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use lantern::config::Config;
use lantern::daemon::{self, Launch};
use tokio_util::sync::CancellationToken;

pub const TOKEN: &str = "test-token-0123456789abcdef";

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_lantern")
}

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A config file in a fresh temp dir, with its state under that dir.
pub struct TestConfig {
    pub dir: tempfile::TempDir,
    pub path: PathBuf,
}

impl TestConfig {
    /// `extra` is appended after a `[server]` table holding the test token and
    /// a `[daemon]` table pointing the state into the temp dir.
    pub fn new(extra: &str) -> TestConfig {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lantern.toml");
        let cfg = TestConfig { dir, path };
        cfg.write(extra);
        cfg
    }

    pub fn write(&self, extra: &str) {
        let text = format!(
            "[server]\nlisten = \"127.0.0.1:0\"\napi-token = \"{TOKEN}\"\nmax-body-bytes = 2048\n\n[daemon]\nstate-dir = \"state\"\ngrace-period = \"5s\"\ntick-interval = \"100ms\"\n\n{extra}\n"
        );
        std::fs::write(&self.path, text).unwrap();
    }

    pub fn state_dir(&self) -> PathBuf {
        self.dir.path().join("state")
    }
}

/// Lantern running inside the test's runtime.
pub struct InProcess {
    pub addr: SocketAddr,
    pub shutdown: CancellationToken,
    pub task: tokio::task::JoinHandle<anyhow::Result<()>>,
    pub config: TestConfig,
}

impl InProcess {
    pub async fn start(extra: &str) -> InProcess {
        Self::resume(TestConfig::new(extra)).await
    }

    /// Starts a daemon on an existing config and state dir (a restart).
    pub async fn resume(config: TestConfig) -> InProcess {
        let loaded = Config::load(&config.path).expect("test config is valid");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(daemon::run(Launch {
            config: loaded,
            listener,
            shutdown: shutdown.clone(),
            listen_override: None,
        }));
        let d = InProcess {
            addr,
            shutdown,
            task,
            config,
        };
        d.wait_ready().await;
        d
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    async fn wait_ready(&self) {
        let client = reqwest::Client::new();
        let url = self.url("/-/ready");
        let ok = poll_async(Duration::from_secs(10), || {
            let client = client.clone();
            let url = url.clone();
            async move { matches!(client.get(url).send().await, Ok(r) if r.status() == 200) }
        })
        .await;
        assert!(ok, "in-process lantern did not become ready");
    }

    /// Stops the daemon and hands back its config (and so its temp dir) for inspection.
    pub async fn stop(self) -> anyhow::Result<TestConfig> {
        self.shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(10), self.task)
            .await
            .expect("daemon drained in time")
            .unwrap()?;
        Ok(self.config)
    }
}

/// Polls `f` every 20 ms until it is true or `limit` passes.
pub async fn poll_async<F, Fut>(limit: Duration, mut f: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + limit;
    loop {
        if f().await {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The built binary running as a child process, its stderr collected line by line.
pub struct Process {
    pub child: Child,
    pub addr: SocketAddr,
    lines: mpsc::Receiver<String>,
    pub log: Vec<String>,
}

impl Process {
    /// Starts `lantern run --config path --listen 127.0.0.1:0` and waits for the
    /// line that names the bound address.
    pub fn start(config: &Path, envs: &[(&str, &str)], extra_args: &[&str]) -> Process {
        let mut cmd = Command::new(bin());
        cmd.args(["run", "--config"])
            .arg(config)
            .args(["--listen", "127.0.0.1:0"]);
        if !extra_args.contains(&"--log-format") {
            cmd.args(["--log-format", "text"]);
        }
        cmd.args(extra_args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .env_remove("NOTIFY_SOCKET")
            .env_remove("WATCHDOG_USEC")
            .env_remove("RUST_LOG");
        for (k, v) in envs {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn lantern");
        let stderr = child.stderr.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut p = Process {
            child,
            addr: "0.0.0.0:0".parse().unwrap(),
            lines,
            log: Vec::new(),
        };
        let line = p.wait_for_line(Duration::from_secs(15), |l| {
            l.contains("listening on http://")
        });
        let line = line.unwrap_or_else(|| {
            panic!(
                "lantern never said where it listens; log:\n{}",
                p.log.join("\n")
            )
        });
        let after = line.rsplit("http://").next().unwrap();
        let addr: String = after
            .chars()
            .take_while(|c| c.is_ascii_digit() || ".:[]".contains(*c))
            .collect();
        p.addr = addr
            .parse()
            .unwrap_or_else(|_| panic!("cannot parse address from {line}"));
        p
    }

    /// Waits for a stderr line matching `pred`, keeping every line seen in `log`.
    pub fn wait_for_line(
        &mut self,
        limit: Duration,
        pred: impl Fn(&str) -> bool,
    ) -> Option<String> {
        let deadline = Instant::now() + limit;
        loop {
            let left = deadline.checked_duration_since(Instant::now())?;
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.log.push(line.clone());
                    if pred(&line) {
                        return Some(line);
                    }
                }
                Err(_) => return None,
            }
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub fn signal(&self, sig: rustix::process::Signal) {
        let pid = rustix::process::Pid::from_child(&self.child);
        rustix::process::kill_process(pid, sig).unwrap();
    }

    /// Waits for exit within `limit`; kills and fails the test otherwise.
    pub fn wait_exit(&mut self, limit: Duration) -> std::process::ExitStatus {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                // Drain what is left of stderr for the assertions that follow.
                while let Ok(line) = self.lines.recv_timeout(Duration::from_millis(200)) {
                    self.log.push(line);
                }
                return status;
            }
            if Instant::now() >= deadline {
                let _ = self.child.kill();
                panic!(
                    "lantern did not exit within {limit:?}; log:\n{}",
                    self.log.join("\n")
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A blocking GET returning status and body.
pub fn get(url: &str) -> (u16, String) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let r = reqwest::get(url)
            .await
            .unwrap_or_else(|e| panic!("GET {url}: {e}"));
        let status = r.status().as_u16();
        (status, r.text().await.unwrap())
    })
}

/// An async GET's body as JSON.
pub async fn get_json(url: &str) -> serde_json::Value {
    let r = reqwest::get(url)
        .await
        .unwrap_or_else(|e| panic!("GET {url}: {e}"));
    r.json()
        .await
        .unwrap_or_else(|e| panic!("GET {url}: not JSON: {e}"))
}

/// An async GET's body as text.
pub async fn get_text(url: &str) -> String {
    let r = reqwest::get(url)
        .await
        .unwrap_or_else(|e| panic!("GET {url}: {e}"));
    r.text().await.unwrap()
}

/// A POST with a bearer token from a sync test; returns the status.
pub fn post_with_token(url: &str, token: &str) -> u16 {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        reqwest::Client::new()
            .post(url)
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    })
}

/// Reads a gauge's value out of a text exposition.
pub fn metric_value(exposition: &str, name: &str) -> Option<f64> {
    exposition
        .lines()
        .filter(|l| !l.starts_with('#'))
        .find(|l| l.split([' ', '{']).next() == Some(name))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

/// A command that must be installed: the test command installs it, so its
/// absence is a failure, not a skip.
pub fn tool(env_var: &str, name: &str) -> PathBuf {
    if let Ok(p) = std::env::var(env_var) {
        return PathBuf::from(p);
    }
    for dir in std::env::var("PATH").unwrap_or_default().split(':') {
        let p = Path::new(dir).join(name);
        if p.is_file() {
            return p;
        }
    }
    panic!(
        "{name} is not installed (set {env_var} or run the README's test command, which installs it)"
    );
}

/// A child process killed and reaped on drop, so a failing test leaves nothing running.
pub struct KillOnDrop(pub Child);

impl KillOnDrop {
    pub fn stop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A port that was free a moment ago, for tools that cannot bind port 0 and report it.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
