//! A real `prometheus` scraping one target every second, on a free port with its config and data in a temp dir; killed on drop.

use std::fmt::Display;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::{KillOnDrop, free_port, tool};

pub struct Prometheus {
    // Declared first so Prometheus is gone before its data dir is removed.
    _child: KillOnDrop,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Prometheus {
    /// Spawns Prometheus scraping `target` as job `job`; does not wait for it.
    pub fn start(job: &str, target: impl Display) -> Prometheus {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  scrape_timeout: 900ms\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: {job}\n    static_configs:\n      - targets: ['{target}']\n"
            ),
        )
        .unwrap();
        // Prometheus cannot listen on port 0 and tell us; take a port that was just free.
        let port = free_port();
        let child = Command::new(tool("PROMETHEUS_BIN", "prometheus"))
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--log.level=warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start prometheus");
        Prometheus {
            _child: KillOnDrop(child),
            port,
            _dir: dir,
        }
    }

    /// [`Prometheus::start`], then waits until `/-/ready` answers 200.
    pub async fn start_ready(job: &str, target: impl Display) -> Prometheus {
        let p = Prometheus::start(job, target);
        let url = format!("{}/-/ready", p.url());
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(r) = reqwest::get(&url).await
                && r.status() == 200
            {
                break;
            }
            assert!(Instant::now() < deadline, "prometheus never became ready");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        p
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// A blocking GET of an API path; `None` until Prometheus answers with JSON.
    pub fn api(&self, path: &str) -> Option<serde_json::Value> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let r = reqwest::get(format!("{}{}", self.url(), path)).await.ok()?;
            r.json().await.ok()
        })
    }
}
