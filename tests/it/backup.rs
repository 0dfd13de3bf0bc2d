//! Backups against real parts: local and removable repositories, `rclone serve restic`, PostgreSQL, Debian's restic, the built binary killed mid-run.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use lantern::backup::adaptor::{self, BackupError};
use lantern::backup::jobs;

use crate::backup_setup::{Setup, reload, repo, request, runs};
use crate::support::{self, TOKEN, free_port, poll_async};

fn write_files(dir: &Path) {
    std::fs::create_dir_all(dir.join("sub")).unwrap();
    std::fs::write(dir.join("a.txt"), "alpha\n").unwrap();
    // Several chunks' worth of varied bytes, so verification walks many blobs.
    let big: Vec<u8> = (0..3_000_000u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    std::fs::write(dir.join("sub/big.bin"), &big).unwrap();
    std::fs::write(dir.join("sub/empty"), "").unwrap();
    std::fs::write(dir.join("skip.tmp"), "excluded").unwrap();
}

/// Every regular file under `root`, relative, with its bytes.
fn tree(root: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push((
                    p.strip_prefix(root).unwrap().to_path_buf(),
                    std::fs::read(&p).unwrap(),
                ));
            }
        }
    }
    out.sort();
    out
}

/// Where an absolute source path lands below a restore target.
fn restored(target: &Path, source: &Path) -> PathBuf {
    target.join(source.strip_prefix("/").unwrap())
}

fn sh(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_restore_is_byte_for_byte_equal_to_the_source_and_excludes_stay_out() {
    let s = Setup::new();
    write_files(&s.path("data"));
    let env = s.env(&format!(
        "[backup]\n{}\n[[backup.sets]]\nname = \"files\"\npaths = [\"data\"]\nexclude = [\"*.tmp\"]\n",
        repo("main", "repos/main", "")
    ));
    let out = jobs::snapshot(&env, "files").await.unwrap();
    assert_eq!(out.snapshots.len(), 1);
    assert_eq!(out.files_processed, 3, "{out:?}");
    let target = s.path("restore");
    let r = jobs::restore(&env, "files", None, "latest", target.clone())
        .await
        .unwrap();
    assert_eq!(r.files, 3);
    assert!(r.mismatches.is_empty());
    let mut source = tree(&s.path("data"));
    source.retain(|(p, _)| p != Path::new("skip.tmp"));
    assert_eq!(tree(&restored(&target, &s.path("data"))), source);

    // A second, unchanged run adds (almost) nothing: the repository was reopened.
    let again = jobs::snapshot(&env, "files").await.unwrap();
    assert!(again.bytes_added < 10_000, "{again:?}");
    assert_eq!(
        adaptor::snapshots(
            env.ws.clone(),
            env.repo("main").unwrap().clone(),
            Some("files".into())
        )
        .await
        .unwrap()
        .len(),
        2
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_restore_brings_back_modes_times_and_symlinks_and_can_run_over_itself() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
    let s = Setup::new();
    let data = s.path("data");
    write_files(&data);
    let set_mode = |p: &str, mode: u32| {
        std::fs::set_permissions(data.join(p), std::fs::Permissions::from_mode(mode)).unwrap()
    };
    std::fs::write(data.join("run.sh"), "#!/bin/sh\n").unwrap();
    set_mode("run.sh", 0o750);
    std::fs::write(data.join("frozen"), "read only").unwrap();
    set_mode("frozen", 0o444);
    symlink("sub/big.bin", data.join("link")).unwrap();
    std::fs::hard_link(data.join("a.txt"), data.join("sub/a-again.txt")).unwrap();
    let old = std::time::SystemTime::UNIX_EPOCH + Duration::from_secs(1_600_000_000);
    std::fs::File::options()
        .write(true)
        .open(data.join("sub/big.bin"))
        .unwrap()
        .set_modified(old)
        .unwrap();
    let env = s.env(&format!(
        "[backup]\n{}\n[[backup.sets]]\nname = \"files\"\npaths = [\"data\"]\n",
        repo("main", "repos/main", "")
    ));
    jobs::snapshot(&env, "files").await.unwrap();
    let target = s.path("restore");
    // Twice: the second restore lands on the first one's read-only file.
    for round in 0..2 {
        let r = jobs::restore(&env, "files", None, "latest", target.clone())
            .await
            .unwrap_or_else(|e| panic!("round {round}: {e}"));
        assert_eq!(r.files, 7, "round {round}: {r:?}");
        assert!(r.mismatches.is_empty(), "round {round}: {r:?}");
        let back = restored(&target, &data);
        let mode = |p: &str| {
            std::fs::symlink_metadata(back.join(p))
                .unwrap()
                .permissions()
                .mode()
                & 0o7777
        };
        assert_eq!(mode("run.sh"), 0o750, "round {round}");
        assert_eq!(mode("frozen"), 0o444, "round {round}");
        assert_eq!(
            std::fs::read_link(back.join("link")).unwrap(),
            Path::new("sub/big.bin"),
            "round {round}"
        );
        assert_eq!(
            std::fs::metadata(back.join("sub/big.bin"))
                .unwrap()
                .modified()
                .unwrap(),
            old,
            "round {round}"
        );
        let inode = |p: &str| std::fs::metadata(back.join(p)).unwrap().ino();
        assert_eq!(
            inode("a.txt"),
            inode("sub/a-again.txt"),
            "round {round}: a hard link again"
        );
        assert_eq!(tree(&back), tree(&data), "round {round}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failing_dump_command_leaves_no_snapshot_behind() {
    let s = Setup::new();
    std::fs::write(s.path("data/x"), "x").unwrap();
    let env = s.env(&format!(
        "[backup]\n{}\n[[backup.sets]]\nname = \"db\"\ncommand = [\"sh\", \"-c\", \"echo partial dump; exit 3\"]\ncommand-file = \"db.sql\"\n\n[[backup.sets]]\nname = \"ok\"\ncommand = [\"echo\", \"a good dump\"]\ncommand-file = \"ok.sql\"\n",
        repo("main", "repos/main", "")
    ));
    let main = env.repo("main").unwrap().clone();
    jobs::snapshot(&env, "ok").await.unwrap();
    let err = jobs::snapshot(&env, "db").await.unwrap_err();
    assert!(err.to_string().contains("`sh` failed"), "{err}");
    let all = adaptor::snapshots(env.ws.clone(), main.clone(), None)
        .await
        .unwrap();
    assert_eq!(
        all.len(),
        1,
        "only the good dump's snapshot remains: {all:?}"
    );
    assert_eq!(all[0].label, "ok");
    // The good dump's content is what was stored.
    let target = s.path("restore");
    jobs::restore(&env, "ok", None, "latest", target.clone())
        .await
        .unwrap();
    assert_eq!(
        std::fs::read_to_string(target.join("ok.sql")).unwrap(),
        "a good dump\n"
    );
}

/// `rclone serve restic` on a free loopback port, serving a temp dir.
struct RestServer {
    child: Child,
    url: String,
    _dir: tempfile::TempDir,
}

impl RestServer {
    fn start() -> RestServer {
        let rclone = support::tool("RCLONE", "rclone");
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let child = Command::new(rclone)
            .args(["serve", "restic", "--addr", &format!("127.0.0.1:{port}")])
            .arg(dir.path().join("repo"))
            .env("RCLONE_CONFIG", dir.path().join("rclone.conf"))
            .env("XDG_CACHE_HOME", dir.path().join("cache"))
            .env("XDG_CONFIG_HOME", dir.path().join("config"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start rclone serve restic");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "rclone serve restic did not listen"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        RestServer {
            child,
            url: format!("rest:http://127.0.0.1:{port}/"),
            _dir: dir,
        }
    }
}

impl Drop for RestServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn copies_reach_a_rest_repository_and_a_removable_one_only_while_it_is_attached() {
    let rest = RestServer::start();
    let s = Setup::new();
    write_files(&s.path("data"));
    let env = s.env(&format!(
        "[backup]\n{}{}{}\n[[backup.sets]]\nname = \"files\"\npaths = [\"data\"]\n",
        repo("main", "repos/main", ""),
        repo(
            "rest",
            &rest.url,
            "medium = \"object-store\"\noffsite = true"
        ),
        repo("usb", "usb/repo", "medium = \"usb-disk\"\noffline = true"),
    ));
    jobs::snapshot(&env, "files").await.unwrap();
    let results = jobs::copy(&env, "files").await;
    assert!(results[0].1.is_ok(), "{results:?}");
    assert!(
        matches!(results[1].1, Err(BackupError::Absent { .. })),
        "the unplugged disk is absent, not failed: {results:?}"
    );

    // The disk is plugged in (its mount point appears): the copy catches up.
    std::fs::create_dir_all(s.path("usb/repo")).unwrap();
    jobs::snapshot(&env, "files").await.unwrap();
    let results = jobs::copy(&env, "files").await;
    assert_eq!(
        results[0].1.as_ref().unwrap(),
        &1,
        "only the new snapshot goes to rest"
    );
    assert_eq!(results[1].1.as_ref().unwrap(), &2, "both go to the disk");
    for name in ["main", "rest", "usb"] {
        let snaps = adaptor::snapshots(
            env.ws.clone(),
            env.repo(name).unwrap().clone(),
            Some("files".into()),
        )
        .await
        .unwrap();
        assert_eq!(snaps.len(), 2, "{name}");
    }
    // Restore from the REST copy is byte-for-byte too.
    let target = s.path("from-rest");
    jobs::restore(&env, "files", Some("rest"), "latest", target.clone())
        .await
        .unwrap();
    assert_eq!(
        tree(&restored(&target, &s.path("data"))),
        tree(&s.path("data"))
    );

    // Unplugged again: absent once more, and the checks of the others pass.
    std::fs::remove_dir_all(s.path("usb")).unwrap();
    let results = jobs::copy(&env, "files").await;
    assert!(matches!(results[1].1, Err(BackupError::Absent { .. })));
    let checks = jobs::check(&env, Some("all".into())).await;
    assert!(checks[0].1.is_ok() && checks[1].1.is_ok(), "{checks:?}");
    assert!(
        matches!(checks[2].1, Err(BackupError::Absent { .. })),
        "{checks:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn compliance_turns_false_when_the_offsite_copy_ages_past_the_rpo_and_true_after_a_copy() {
    let s = Setup::new();
    std::fs::write(s.path("data/x"), "x").unwrap();
    let env = s.env(&format!(
        "[backup]\n{}{}\n[[backup.sets]]\nname = \"files\"\npaths = [\"data\"]\nrpo = \"10s\"\n",
        repo("main", "repos/main", ""),
        repo("away", "repos/away", "medium = \"nas\"\noffsite = true"),
    ));
    let mut seen = Default::default();
    assert!(
        !env.evaluate(&mut seen)[0].compliant,
        "nothing backed up yet"
    );
    jobs::snapshot(&env, "files").await.unwrap();
    jobs::copy(&env, "files").await;
    let v = env.evaluate(&mut seen).remove(0);
    assert!(v.compliant, "{v:?}");

    // The objective passes: both copies are stale.
    let stale = poll_async(Duration::from_secs(30), || {
        let ok = !env.evaluate(&mut Default::default())[0].compliant;
        async move { ok }
    })
    .await;
    assert!(stale, "compliance never turned false");
    // A fresh snapshot on the primary alone is not enough: the off-site copy is old.
    jobs::snapshot(&env, "files").await.unwrap();
    let v = env.evaluate(&mut seen).remove(0);
    assert!(!v.compliant);
    assert_eq!(v.reason.as_str(), "too_few_copies");
    assert!(v.detail.contains("main"), "{}", v.detail);
    // After a copy it holds again.
    jobs::copy(&env, "files").await;
    let v = env.evaluate(&mut seen).remove(0);
    assert!(v.compliant, "{v:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn restic_lists_checks_and_restores_a_repository_lantern_wrote() {
    let restic = support::tool("RESTIC", "restic");
    let s = Setup::new();
    write_files(&s.path("data"));
    let env = s.env(&format!(
        "[backup]\n{}\n[[backup.sets]]\nname = \"files\"\npaths = [\"data\"]\n",
        repo("main", "repos/main", "")
    ));
    let out = jobs::snapshot(&env, "files").await.unwrap();
    let restic_cmd = |args: &[&str]| {
        let mut c = Command::new(&restic);
        c.args(["-r"])
            .arg(s.path("repos/main"))
            .args(args)
            .env("RESTIC_PASSWORD_FILE", s.path("pw"))
            .env("RESTIC_CACHE_DIR", s.path("restic-cache"));
        sh(&mut c)
    };
    let listed = restic_cmd(&["snapshots", "--json"]);
    assert!(listed.contains(&out.snapshots[0].id), "{listed}");
    restic_cmd(&["check", "--read-data"]);
    let target = s.path("by-restic");
    restic_cmd(&["restore", "latest", "--target", target.to_str().unwrap()]);
    assert_eq!(
        tree(&restored(&target, &s.path("data"))),
        tree(&s.path("data"))
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_drill_restores_verifies_runs_its_command_and_cleans_up() {
    let s = Setup::new();
    write_files(&s.path("data"));
    let probe = format!("test -s .{}/sub/big.bin", s.path("data").display());
    let env = s.env(&format!(
        "[backup]\n{}\n[[backup.sets]]\nname = \"files\"\npaths = [\"data\"]\ndrill-verify = [\"sh\", \"-c\", \"{probe}\"]\n\n[[backup.sets]]\nname = \"broken\"\npaths = [\"data\"]\ndrill-verify = [\"sh\", \"-c\", \"test -f nowhere\"]\n",
        repo("main", "repos/main", "")
    ));
    jobs::snapshot(&env, "files").await.unwrap();
    let out = jobs::drill(&env, "files").await.unwrap();
    assert_eq!(out.files, 4);
    jobs::snapshot(&env, "broken").await.unwrap();
    let err = jobs::drill(&env, "broken").await.unwrap_err();
    assert!(err.to_string().contains("drill-verify"), "{err}");
    let left: Vec<_> = std::fs::read_dir(env.ws.dir.join("drill"))
        .unwrap()
        .collect();
    assert!(left.is_empty(), "scratch space is cleaned up: {left:?}");
}

#[test]
fn a_backup_killed_mid_run_leaves_a_repository_the_next_run_and_a_read_data_check_accept() {
    let s = Setup::new();
    // Enough incompressible data that the debug-built backup runs for seconds.
    let mut seed = 0x9e3779b97f4a7c15u64;
    for i in 0..8 {
        let bytes: Vec<u8> = (0..16 << 20)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                seed as u8
            })
            .collect();
        std::fs::write(s.path(&format!("data/blob{i}")), bytes).unwrap();
    }
    s.write(&format!(
        "[backup]\n{}\n[[backup.sets]]\nname = \"files\"\npaths = [\"data\"]\n",
        repo("main", "repos/main", "")
    ));
    let lantern = |args: &[&str]| {
        let mut c = Command::new(support::bin());
        c.arg("backup").arg("--config").arg(&s.config).args(args);
        c
    };
    let mut child = lantern(&["run", "files"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Kill it once packs are being written: mid-run, before the snapshot.
    let data = s.path("repos/main/data");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let packs = files_under(&data).0;
        if packs >= 2 {
            break;
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "the backup finished before it could be killed"
        );
        assert!(Instant::now() < deadline, "no pack was ever written");
        std::thread::sleep(Duration::from_millis(10));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    assert!(
        !s.path("repos/main/snapshots")
            .read_dir()
            .map(|mut d| d.next().is_some())
            .unwrap_or(false),
        "the killed run saved no snapshot"
    );

    let out = lantern(&["run", "files"]).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = lantern(&["check", "--read-data"]).output().unwrap();
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let out = lantern(&["snapshots", "files"]).output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 1);
}

/// How many files lie under `dir` (at any depth), and their bytes; nothing when it is missing.
fn files_under(dir: &Path) -> (usize, u64) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return (0, 0);
    };
    rd.filter_map(Result::ok)
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => files_under(&e.path()),
            Ok(m) => (1, m.len()),
            Err(_) => (0, 0),
        })
        .fold((0, 0), |(n, b), (n2, b2)| (n + n2, b + b2))
}

#[tokio::test(flavor = "multi_thread")]
async fn the_daemon_runs_a_requested_backup_records_it_and_exports_its_metrics() {
    let s = Setup::new();
    std::fs::write(s.path("data/x"), "x").unwrap();
    let body = format!(
        "[backup]\ncompliance-interval = \"1s\"\n{}{}\n[[backup.sets]]\nname = \"files\"\npaths = [\"data\"]\nsnapshot = \"off\"\ncopy = \"off\"\nforget = \"off\"\ndrill = \"off\"\n",
        repo("main", "repos/main", ""),
        repo("usb", "usb", "medium = \"usb-disk\"\noffline = true"),
    );
    s.write(&body);
    let d = s.start().await;
    let client = reqwest::Client::new();
    let status = client
        .post(d.url("/api/v1/backups/files/run"))
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 401, "a run needs the token");
    let status = client
        .post(d.url("/api/v1/backups/nope/run"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 404);
    let status = client
        .post(d.url("/api/v1/backups/files/run"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 202);
    let recorded = poll_async(Duration::from_secs(60), || async {
        let runs = runs(&d).await;
        runs.iter()
            .any(|r| r["job"] == "snapshot" && r["result"] == "success" && r["who"] == "api")
            && runs
                .iter()
                .any(|r| r["job"] == "copy" && r["result"] == "absent")
    })
    .await;
    assert!(recorded, "the run was not recorded");
    let metrics = client
        .get(d.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for name in [
        "lantern_backup_last_success_timestamp_seconds",
        "lantern_backup_snapshots",
        "lantern_backup_compliant",
        "lantern_backup_runs_total",
        "lantern_backup_repository_present",
        "lantern_backup_repository_size_bytes",
    ] {
        assert!(metrics.contains(name), "{name} missing:\n{metrics}");
    }
    assert!(
        metrics.contains(
            "lantern_backup_compliance_reason{reason=\"too_few_copies\",set=\"files\"} 1"
        ),
        "{metrics}"
    );
    assert!(
        metrics.contains("lantern_backup_repository_present{repository=\"usb\"} 0"),
        "{metrics}"
    );
    d.stop().await.unwrap();
}

/// A throwaway PostgreSQL cluster owned by `postgres` (initdb refuses root), trusting loopback.
struct Postgres {
    dir: tempfile::TempDir,
    bin: PathBuf,
    port: u16,
}

impl Postgres {
    fn start() -> Postgres {
        let root = Path::new("/usr/lib/postgresql");
        let newest = std::fs::read_dir(root)
            .expect("PostgreSQL is installed (Debian package postgresql)")
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
            .max()
            .expect("a PostgreSQL version directory");
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("sock")).unwrap();
        sh(Command::new("chown")
            .args(["-R", "postgres:postgres"])
            .arg(dir.path()));
        let pg = Postgres {
            dir,
            bin: root.join(newest.to_string()).join("bin"),
            port: free_port(),
        };
        sh(pg.as_postgres("initdb").args([
            "-D",
            "data",
            "-N",
            "-E",
            "UTF8",
            "--locale=C",
            "--auth=trust",
            "-U",
            "super",
        ]));
        let opts = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1",
            pg.port,
            pg.dir.path().join("sock").display()
        );
        sh(pg
            .as_postgres("pg_ctl")
            .args(["-D", "data", "-l", "log", "-w", "-o", &opts, "start"]));
        pg
    }

    fn as_postgres(&self, tool: &str) -> Command {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"])
            .arg(self.bin.join(tool))
            .current_dir(self.dir.path());
        c
    }

    fn tool(&self, tool: &str) -> Command {
        let mut c = Command::new(self.bin.join(tool));
        c.args([
            "-h",
            "127.0.0.1",
            "-p",
            &self.port.to_string(),
            "-U",
            "super",
        ]);
        c
    }

    fn psql(&self, db: &str, sql: &str) -> String {
        sh(self.tool("psql").args([
            "-d",
            db,
            "-X",
            "-q",
            "-A",
            "-t",
            "-v",
            "ON_ERROR_STOP=1",
            "-c",
            sql,
        ]))
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let _ = self
            .as_postgres("pg_ctl")
            .args(["-D", "data", "-m", "immediate", "-w", "stop"])
            .output();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_postgres_dump_taken_through_stdin_restores_with_pg_restore_to_the_same_rows() {
    let pg = Postgres::start();
    pg.psql("postgres", "CREATE DATABASE orders");
    pg.psql(
        "orders",
        "CREATE TABLE orders (id int PRIMARY KEY, item text, qty int);
         INSERT INTO orders SELECT g, 'item-' || g, g % 7 FROM generate_series(1, 5000) g;",
    );
    let s = Setup::new();
    let dump = pg.bin.join("pg_dump");
    let restore = pg.bin.join("pg_restore");
    let env = s.env(&format!(
        "[backup]\n{}\n[[backup.sets]]\nname = \"orders\"\ncommand = [\"{}\", \"-Fc\", \"-h\", \"127.0.0.1\", \"-p\", \"{}\", \"-U\", \"super\", \"orders\"]\ncommand-file = \"orders.dump\"\ndrill-verify = [\"{}\", \"--list\", \"orders.dump\"]\n",
        repo("main", "repos/main", ""),
        dump.display(),
        pg.port,
        restore.display(),
    ));
    let out = jobs::snapshot(&env, "orders").await.unwrap();
    assert!(out.bytes_processed > 10_000, "{out:?}");
    // The drill's verify command (pg_restore --list) reads the restored dump.
    jobs::drill(&env, "orders").await.unwrap();

    let target = s.path("restore");
    jobs::restore(&env, "orders", None, "latest", target.clone())
        .await
        .unwrap();
    pg.psql("postgres", "CREATE DATABASE orders_restored");
    sh(pg
        .tool("pg_restore")
        .args(["-d", "orders_restored", "--no-owner"])
        .arg(target.join("orders.dump")));
    let q = "SELECT count(*), sum(qty), md5(string_agg(item, ',' ORDER BY id)) FROM orders";
    assert_eq!(pg.psql("orders_restored", q), pg.psql("orders", q));
}

#[tokio::test(flavor = "multi_thread")]
async fn the_daemon_takes_snapshots_on_its_cron_schedule() {
    let s = Setup::new();
    std::fs::write(s.path("data/x"), "x").unwrap();
    s.write(&format!(
        "[backup]\n{}\n[[backup.sets]]\nname = \"files\"\npaths = [\"data\"]\nsnapshot = \"*/2 * * * * *\"\ncopy = \"off\"\nforget = \"off\"\ndrill = \"off\"\n",
        repo("main", "repos/main", ""),
    ));
    let d = s.start().await;
    let url = d.url("/metrics");
    let two = poll_async(Duration::from_secs(60), || {
        let url = url.clone();
        async move {
            let text = reqwest::get(url).await.unwrap().text().await.unwrap();
            support::metric_value(&text, "lantern_backup_snapshots").is_some_and(|v| v >= 2.0)
        }
    })
    .await;
    assert!(two, "the schedule did not take two snapshots");
    d.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_job_on_a_repository_another_job_holds_waits_then_reports_busy() {
    let s = Setup::new();
    std::fs::write(s.path("data/x"), "x").unwrap();
    let env = s.env(&format!(
        "[backup]\nlock-wait = \"1s\"\n{}\n[[backup.sets]]\nname = \"files\"\npaths = [\"data\"]\n",
        repo("main", "repos/main", "")
    ));
    // Another process's job holds the repository's lock.
    std::fs::create_dir_all(env.ws.dir.join("locks")).unwrap();
    let held = std::fs::File::create(env.ws.dir.join("locks/main.lock")).unwrap();
    rustix::fs::flock(&held, rustix::fs::FlockOperation::LockExclusive).unwrap();
    let start = Instant::now();
    let err = jobs::snapshot(&env, "files").await.unwrap_err();
    assert!(matches!(err, BackupError::Busy { .. }), "{err}");
    assert!(start.elapsed() >= Duration::from_secs(1));
    drop(held);
    jobs::snapshot(&env, "files").await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_reload_during_a_running_backup_lets_it_finish_and_record_its_run() {
    let s = Setup::new();
    std::fs::write(s.path("data/x"), "x").unwrap();
    // The before hook says it started, then holds the run until `go` exists.
    let hook = format!(
        "touch {started}; while [ ! -e {go} ]; do sleep 0.05; done",
        started = s.path("started").display(),
        go = s.path("go").display()
    );
    let body = format!(
        "[backup]\n{}\n[[backup.sets]]\nname = \"files\"\npaths = [\"data\"]\nbefore = [\"sh\", \"-c\", {hook:?}]\nsnapshot = \"off\"\ncopy = \"off\"\nforget = \"off\"\ndrill = \"off\"\n",
        repo("main", "repos/main", ""),
    );
    let env = s.env(&body);
    let d = s.start().await;
    request(&d, "files", "snapshot").await;
    let started = s.path("started");
    assert!(
        poll_async(Duration::from_secs(30), || {
            let started = started.clone();
            async move { started.exists() }
        })
        .await,
        "the hook never started"
    );
    reload(&d).await;
    std::fs::write(s.path("go"), "").unwrap();
    let finished = poll_async(Duration::from_secs(60), || async {
        runs(&d)
            .await
            .iter()
            .any(|r| r["job"] == "snapshot" && r["result"] == "success")
    })
    .await;
    assert!(
        finished,
        "the run interrupted by the reload was not recorded"
    );
    let snaps = adaptor::snapshots(
        env.ws.clone(),
        env.repo("main").unwrap().clone(),
        Some("files".into()),
    )
    .await
    .unwrap();
    assert_eq!(snaps.len(), 1, "{snaps:?}");
    d.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn an_offline_repository_is_copied_to_as_soon_as_it_is_attached() {
    let s = Setup::new();
    std::fs::write(s.path("data/x"), "x").unwrap();
    // No copy schedule at all: only the attachment can start the copy.
    let body = format!(
        "[backup]\n{}{}\n[[backup.sets]]\nname = \"files\"\npaths = [\"data\"]\nsnapshot = \"off\"\ncopy = \"off\"\nforget = \"off\"\ndrill = \"off\"\n",
        repo("main", "repos/main", ""),
        repo("usb", "usb", "medium = \"usb-disk\"\noffline = true"),
    );
    let env = s.env(&body);
    let d = s.start().await;
    request(&d, "files", "snapshot").await;
    assert!(
        poll_async(Duration::from_secs(60), || async {
            runs(&d)
                .await
                .iter()
                .any(|r| r["job"] == "snapshot" && r["result"] == "success")
        })
        .await,
        "the snapshot was not taken"
    );
    assert!(
        !runs(&d).await.iter().any(|r| r["job"] == "copy"),
        "nothing copies while the medium is away"
    );
    std::fs::create_dir(s.path("usb")).unwrap();
    assert!(
        poll_async(Duration::from_secs(60), || async {
            runs(&d).await.iter().any(|r| {
                r["job"] == "copy"
                    && r["repository"] == "usb"
                    && r["result"] == "success"
                    && r["who"] == "schedule"
            })
        })
        .await,
        "plugging the medium in did not copy to it: {:?}",
        runs(&d).await
    );
    let on_usb = adaptor::snapshots(
        env.ws.clone(),
        env.repo("usb").unwrap().clone(),
        Some("files".into()),
    )
    .await
    .unwrap();
    assert_eq!(on_usb.len(), 1, "{on_usb:?}");
    d.stop().await.unwrap();
}

#[test]
fn sigterm_during_a_backup_exits_within_the_grace_periods_not_when_the_backup_ends() {
    use rustix::process::Signal;
    let s = Setup::new();
    std::fs::write(s.path("data/x"), "x").unwrap();
    // A dump that says it started, then runs far past the test's patience.
    let dump = format!(
        "echo $$ > {pid}; touch {started}; exec sleep 120",
        pid = s.path("dump.pid").display(),
        started = s.path("started").display()
    );
    s.write(&format!(
        "[backup]\n{}\n[[backup.sets]]\nname = \"db\"\ncommand = [\"sh\", \"-c\", {dump:?}]\ncommand-file = \"db.sql\"\nsnapshot = \"off\"\ncopy = \"off\"\nforget = \"off\"\ndrill = \"off\"\n",
        repo("main", "repos/main", ""),
    ));
    let mut p = support::Process::start(&s.config, &[], &[]);
    let status = support::post_with_token(&p.url("/api/v1/backups/db/run?job=snapshot"), TOKEN);
    assert_eq!(status, 202);
    let deadline = Instant::now() + Duration::from_secs(30);
    while !s.path("started").exists() {
        assert!(Instant::now() < deadline, "the dump never started");
        std::thread::sleep(Duration::from_millis(20));
    }
    let sent = Instant::now();
    p.signal(Signal::TERM);
    // The config's grace-period is 5s: the drain, then as long again for
    // the blocking backup thread.
    let status = p.wait_exit(Duration::from_secs(20));
    let took = sent.elapsed();
    if let Some(pid) = std::fs::read_to_string(s.path("dump.pid"))
        .ok()
        .and_then(|p| p.trim().parse::<i32>().ok())
        .and_then(rustix::process::Pid::from_raw)
    {
        let _ = rustix::process::kill_process(pid, Signal::KILL);
    }
    assert_eq!(status.code(), Some(0), "{}", p.log.join("\n"));
    assert!(took < Duration::from_secs(15), "took {took:?}");
}

/// Mounts a tmpfs of `mib` MiB at `dir` for the life of the guard (needs root, as CI runs).
struct SmallDisk(PathBuf);

impl SmallDisk {
    fn mount(dir: PathBuf, mib: u32) -> SmallDisk {
        std::fs::create_dir_all(&dir).unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={mib}m"), "tmpfs"])
            .arg(&dir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "this test mounts a small tmpfs to fill it and needs root (CI runs as root): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        SmallDisk(dir)
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_full_target_fails_the_backup_with_the_cause_and_a_later_run_succeeds() {
    let s = Setup::new();
    // Incompressible, and more than the disk holds.
    let noise: Vec<u8> = (0..6_000_000u32)
        .map(|i| (i.wrapping_mul(2654435761).rotate_left(i % 31) >> 7) as u8)
        .collect();
    std::fs::write(s.path("data/big.bin"), &noise).unwrap();
    let disk = SmallDisk::mount(s.path("small"), 3);
    let env = s.env(&format!(
        "[backup]\n{}\n[[backup.sets]]\nname = \"files\"\npaths = [\"data\"]\n",
        repo("main", "small/repo", "")
    ));
    let err = jobs::snapshot(&env, "files").await.unwrap_err().to_string();
    assert!(
        err.contains("repository main") && err.contains("No space left on device"),
        "{err}"
    );
    // Room again (the data shrank): the same repository takes the next run.
    std::fs::write(s.path("data/big.bin"), "small now").unwrap();
    let out = jobs::snapshot(&env, "files").await.unwrap();
    assert_eq!(out.snapshots.len(), 1, "{out:?}");
    drop(disk);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cli_run_beside_the_running_daemon_is_recorded_in_its_store() {
    let s = Setup::new();
    std::fs::write(s.path("data/x"), "x").unwrap();
    s.write(&format!(
        "[backup]\n{}\n[[backup.sets]]\nname = \"files\"\npaths = [\"data\"]\nsnapshot = \"off\"\ncopy = \"off\"\nforget = \"off\"\ndrill = \"off\"\n",
        repo("main", "repos/main", ""),
    ));
    let d = s.start().await;
    let out = tokio::process::Command::new(support::bin())
        .args(["backup", "--config"])
        .arg(&s.config)
        .args(["run", "files"])
        .env("USER", "ops")
        .env_remove("SUDO_USER")
        .output()
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(!stderr.contains("not recorded"), "{stderr}");
    let recorded = runs(&d).await;
    assert!(
        recorded
            .iter()
            .any(|r| r["job"] == "snapshot" && r["who"] == "cli:ops" && r["result"] == "success"),
        "{recorded:?}"
    );
    d.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_hot_cold_repository_keeps_data_in_the_cold_part_and_restores_from_it() {
    let s = Setup::new();
    write_files(&s.path("data"));
    let env = s.env(&format!(
        "[backup]\n{}\n[[backup.sets]]\nname = \"files\"\npaths = [\"data\"]\n",
        repo("main", "repos/cold", "repository-hot = \"repos/hot\"")
    ));
    jobs::snapshot(&env, "files").await.unwrap();
    let (hot, cold) = (
        files_under(&s.path("repos/hot/data")).1,
        files_under(&s.path("repos/cold/data")).1,
    );
    assert!(
        cold > 100_000 && hot < cold / 10,
        "data packs belong in the cold part: hot {hot} B, cold {cold} B"
    );
    assert!(
        files_under(&s.path("repos/hot/snapshots")).1 > 0,
        "snapshots are hot"
    );
    let target = s.path("restore");
    let r = jobs::restore(&env, "files", None, "latest", target.clone())
        .await
        .unwrap();
    assert!(r.mismatches.is_empty(), "{r:?}");
    assert_eq!(
        tree(&restored(&target, &s.path("data"))),
        tree(&s.path("data"))
    );
    let checked = jobs::check(&env, Some("all".into())).await;
    assert!(
        checked
            .iter()
            .all(|(_, r)| r.as_ref().is_ok_and(|c| c.errors == 0)),
        "{checked:?}"
    );
}
