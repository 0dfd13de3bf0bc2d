//! `postgres` and `mysql` checks against real servers: a throwaway PostgreSQL cluster and the machine's MariaDB.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use lantern::config::{CheckSpec, Config};
use lantern::probe::ProbeContext;
use lantern::probe::runner::{Observation, observe};

use crate::support::{free_port, poll_async};

const SUPER: &str = "lantern_super";
const SUPER_PASSWORD: &str = "super-Secret-1";

/// One check of `kind` with `keys`, validated as a whole config would be.
fn check(kind: &str, keys: &str) -> CheckSpec {
    let text = format!(
        "[[checks]]\nname = \"db\"\nkind = \"{kind}\"\ntimeout = \"5s\"\nretries = 0\n{keys}\n"
    );
    let mut config =
        Config::parse(Path::new("t.toml"), &text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    config.checks.remove(0)
}

async fn run(spec: &CheckSpec) -> Observation {
    observe(spec, &ProbeContext::standalone("db", spec.timeout)).await
}

fn reason(obs: &Observation) -> String {
    obs.reason.clone().unwrap_or_default()
}

/// Runs `cmd`, failing the test with its output if it does not succeed.
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

/// A name no other test run uses, for databases and users.
fn unique(prefix: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("{prefix}_{}_{nanos}", std::process::id())
}

// ---------------------------------------------------------------- PostgreSQL

/// A PostgreSQL cluster of its own in a temp dir, owned by `postgres` (initdb
/// and postgres refuse to run as root), with SCRAM for every login except the
/// `md5_user` role, which proves the md5 exchange too.
struct Cluster {
    dir: tempfile::TempDir,
    bin: PathBuf,
    port: u16,
}

fn pg_bin() -> PathBuf {
    let root = Path::new("/usr/lib/postgresql");
    let newest = std::fs::read_dir(root)
        .ok()
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .max()
        .unwrap_or_else(|| {
            panic!(
                "no PostgreSQL under {} (install the `postgresql` package)",
                root.display()
            )
        });
    root.join(newest.to_string()).join("bin")
}

impl Cluster {
    fn new() -> Cluster {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("pw"), SUPER_PASSWORD).unwrap();
        std::fs::create_dir(dir.path().join("sock")).unwrap();
        sh(Command::new("chown")
            .arg("-R")
            .arg("postgres:postgres")
            .arg(dir.path()));
        let c = Cluster {
            dir,
            bin: pg_bin(),
            port: free_port(),
        };
        sh(c.as_postgres("initdb")
            .args(["-D", "data", "-N", "-E", "UTF8", "--locale=C"])
            .args(["--auth=scram-sha-256", "--pwfile=pw", "-U", SUPER]));
        // First match wins, so this line must come before initdb's own.
        let hba = c.dir.path().join("data/pg_hba.conf");
        let rest = std::fs::read_to_string(&hba).unwrap();
        std::fs::write(&hba, format!("host all md5_user 127.0.0.1/32 md5\n{rest}")).unwrap();
        c.start();
        c.psql(
            "CREATE TABLE t (n int); INSERT INTO t VALUES (1), (2), (3);
             CREATE ROLE checker LOGIN PASSWORD 'checker-pw';
             GRANT SELECT ON t TO checker;
             SET password_encryption = 'md5';
             CREATE ROLE md5_user LOGIN PASSWORD 'md5-pw';",
        );
        c
    }

    fn as_postgres(&self, tool: &str) -> Command {
        let mut cmd = Command::new("runuser");
        cmd.args(["-u", "postgres", "--"])
            .arg(self.bin.join(tool))
            .current_dir(self.dir.path());
        cmd
    }

    fn start(&self) {
        let opts = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1",
            self.port,
            self.dir.path().join("sock").display()
        );
        // `-l`: without a log file the server inherits pg_ctl's stdout and
        // the pipe read by `output()` would never close.
        sh(self
            .as_postgres("pg_ctl")
            .args(["-D", "data", "-l", "log", "-w", "-o", &opts, "start"]));
    }

    fn stop(&self) {
        sh(self
            .as_postgres("pg_ctl")
            .args(["-D", "data", "-m", "fast", "-w", "stop"]));
    }

    /// Runs SQL as the superuser over TCP; returns unaligned output.
    fn psql(&self, sql: &str) -> String {
        sh(Command::new(self.bin.join("psql"))
            .arg(format!(
                "host=127.0.0.1 port={} user={SUPER} dbname=postgres",
                self.port
            ))
            .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-c", sql])
            .env("PGPASSWORD", SUPER_PASSWORD))
        .trim()
        .to_string()
    }

    fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Backends of `user` the server still has, to prove probes hang up.
    fn backends_of(&self, user: &str) -> u32 {
        self.psql(&format!(
            "SELECT count(*) FROM pg_stat_activity WHERE usename = '{user}'"
        ))
        .parse()
        .unwrap()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = self
            .as_postgres("pg_ctl")
            .args(["-D", "data", "-m", "fast", "-w", "stop"])
            .output();
    }
}

#[tokio::test]
async fn a_postgres_check_passes_on_a_real_query_and_follows_a_stop_and_a_restart() {
    let pg = Cluster::new();
    let keys = format!(
        "address = \"{}\"\nuser = \"checker\"\npassword = \"checker-pw\"\ndatabase = \"postgres\"\nquery = \"SELECT count(*) FROM t\"\nconditions = [\"value == 3\", \"rows >= 1\", \"response-time < 5s\"]",
        pg.address()
    );
    let spec = check("postgres", &keys);
    let obs = run(&spec).await;
    assert!(obs.ok, "{obs:?}");

    // The value is what the server computed, not a constant: one more row
    // and the same check fails, saying what it saw.
    pg.psql("INSERT INTO t VALUES (4)");
    let obs = run(&spec).await;
    assert!(!obs.ok);
    assert!(reason(&obs).contains("value == 3 (got `4`)"), "{obs:?}");
    pg.psql("DELETE FROM t WHERE n = 4");

    // Every probe hangs up: no backend of the check's user stays behind.
    assert!(
        poll_async(Duration::from_secs(5), || async {
            pg.backends_of("checker") == 0
        })
        .await,
        "the probe left a backend open"
    );

    pg.stop();
    let obs = run(&spec).await;
    assert!(!obs.ok);
    let want = format!("connect {}: connection refused", pg.address());
    assert!(reason(&obs).contains(&want), "{obs:?}");

    pg.start();
    let obs = run(&spec).await;
    assert!(obs.ok, "after the restart: {obs:?}");
}

#[tokio::test]
async fn a_postgres_check_fails_on_a_wrong_password_and_logs_in_with_md5_or_scram() {
    let pg = Cluster::new();
    let with = |user: &str, password: &str| {
        check(
            "postgres",
            &format!(
                "address = \"{}\"\nuser = \"{user}\"\npassword = \"{password}\"\ndatabase = \"postgres\"\nconditions = [\"value == 1\"]",
                pg.address()
            ),
        )
    };

    let obs = run(&with("checker", "wrong-pw")).await;
    assert!(!obs.ok);
    assert!(
        reason(&obs).contains("authentication failed for user `checker`"),
        "{obs:?}"
    );
    assert!(!reason(&obs).contains("wrong-pw"), "{obs:?}");

    assert!(run(&with("checker", "checker-pw")).await.ok);
    let md5 = run(&with("md5_user", "md5-pw")).await;
    assert!(md5.ok, "{md5:?}");
    let md5_wrong = run(&with("md5_user", "nope")).await;
    assert!(
        reason(&md5_wrong).contains("authentication failed for user `md5_user`"),
        "{md5_wrong:?}"
    );

    // No password configured for a SCRAM login: the reason says so.
    let spec = check(
        "postgres",
        &format!(
            "address = \"{}\"\nuser = \"checker\"\ndatabase = \"postgres\"",
            pg.address()
        ),
    );
    let obs = run(&spec).await;
    assert!(
        reason(&obs).contains("authentication failed for user `checker`"),
        "{obs:?}"
    );
}

#[tokio::test]
async fn a_postgres_query_that_outlives_the_timeout_leaves_no_backend_behind() {
    let pg = Cluster::new();
    let mut spec = check(
        "postgres",
        &format!(
            "address = \"{}\"\nuser = \"checker\"\npassword = \"checker-pw\"\ndatabase = \"postgres\"\nquery = \"SELECT pg_sleep(60)\"",
            pg.address()
        ),
    );
    // Shorter than the helper's 5 s, so the test stays quick.
    spec.timeout = Duration::from_secs(1);
    // The session's statement limit follows the check's timeout.
    let mut limit = check(
        "postgres",
        &format!(
            "address = \"{}\"\nuser = \"checker\"\npassword = \"checker-pw\"\ndatabase = \"postgres\"\nquery = \"SHOW statement_timeout\"\nconditions = ['value == \"1s\"']",
            pg.address()
        ),
    );
    limit.timeout = spec.timeout;
    let obs = run(&limit).await;
    assert!(obs.ok, "{obs:?}");
    let obs = run(&spec).await;
    assert!(!obs.ok);
    assert!(reason(&obs).contains("timed out"), "{obs:?}");
    // The cancelled probe dropped its connection, and statement_timeout stops
    // the sleeping backend; without both it would sleep on for a minute.
    assert!(
        poll_async(Duration::from_secs(10), || async {
            pg.backends_of("checker") == 0
        })
        .await,
        "a backend of the timed-out probe is still there"
    );
}

// ------------------------------------------------------------------- MariaDB

/// A throwaway database and user on the machine's MariaDB, dropped at the end.
struct MariaDb {
    db: String,
    user: String,
}

const MARIADB: &str = "127.0.0.1:3306";

fn mariadb(sql: &str) -> String {
    // root logs in over the unix socket with no password (unix_socket auth).
    sh(Command::new("mariadb").args(["-N", "-B", "-e", sql]))
        .trim()
        .to_string()
}

impl MariaDb {
    fn new() -> MariaDb {
        if let Err(e) =
            std::net::TcpStream::connect_timeout(&MARIADB.parse().unwrap(), Duration::from_secs(5))
        {
            panic!(
                "MariaDB is not reachable at {MARIADB} ({e}); these tests need the machine's MariaDB running (package mariadb-server)"
            );
        }
        let m = MariaDb {
            db: unique("lantern_db"),
            user: unique("lantern_u"),
        };
        let (db, u) = (&m.db, &m.user);
        // Both host spellings: the server may see a loopback client as either.
        mariadb(&format!(
            "CREATE DATABASE {db};
             CREATE TABLE {db}.t (n INT); INSERT INTO {db}.t VALUES (1), (2), (3);
             CREATE USER '{u}'@'localhost' IDENTIFIED BY 'right-pw';
             CREATE USER '{u}'@'127.0.0.1' IDENTIFIED BY 'right-pw';
             GRANT SELECT ON {db}.* TO '{u}'@'localhost';
             GRANT SELECT ON {db}.* TO '{u}'@'127.0.0.1';"
        ));
        m
    }

    fn check(&self, address: &str, password: &str, query: &str, conditions: &str) -> CheckSpec {
        check(
            "mysql",
            &format!(
                "address = \"{address}\"\nuser = \"{}\"\npassword = \"{password}\"\ndatabase = \"{}\"\nquery = \"{query}\"\nconditions = [{conditions}]",
                self.user, self.db
            ),
        )
    }

    fn sessions(&self) -> u32 {
        mariadb(&format!(
            "SELECT count(*) FROM information_schema.processlist WHERE user = '{}'",
            self.user
        ))
        .parse()
        .unwrap()
    }
}

impl Drop for MariaDb {
    fn drop(&mut self) {
        let (db, u) = (&self.db, &self.user);
        let _ = Command::new("mariadb")
            .args([
                "-e",
                &format!(
                    "DROP USER IF EXISTS '{u}'@'localhost'; DROP USER IF EXISTS '{u}'@'127.0.0.1'; DROP DATABASE IF EXISTS {db};"
                ),
            ])
            .output();
    }
}

#[tokio::test]
async fn a_mysql_check_passes_on_a_real_query_with_the_right_password() {
    let m = MariaDb::new();
    let spec = m.check(
        MARIADB,
        "right-pw",
        "SELECT count(*) FROM t",
        "\"value == 3\", \"rows == 1\", \"response-time < 5s\"",
    );
    let obs = run(&spec).await;
    assert!(obs.ok, "{obs:?}");

    mariadb(&format!("INSERT INTO {}.t VALUES (4)", m.db));
    let obs = run(&spec).await;
    assert!(reason(&obs).contains("value == 3 (got `4`)"), "{obs:?}");

    // Text and row counts come through too.
    let spec = m.check(
        MARIADB,
        "right-pw",
        "SELECT CONCAT('n', n) FROM t ORDER BY n",
        "\"value == n1\", \"rows == 4\"",
    );
    let obs = run(&spec).await;
    assert!(obs.ok, "{obs:?}");

    // Each probe sends COM_QUIT: no session of the check's user stays behind.
    assert!(
        poll_async(Duration::from_secs(5), || async { m.sessions() == 0 }).await,
        "the probe left a session open"
    );
}

#[tokio::test]
async fn a_mysql_check_with_a_wrong_password_fails_with_an_authentication_reason() {
    let m = MariaDb::new();
    let obs = run(&m.check(MARIADB, "wrong-pw", "SELECT 1", "\"value == 1\"")).await;
    assert!(!obs.ok);
    let want = format!("authentication failed for user `{}`", m.user);
    assert!(reason(&obs).contains(&want), "{obs:?}");
    assert!(!reason(&obs).contains("wrong-pw"), "{obs:?}");
}

#[tokio::test]
async fn a_mysql_check_against_a_port_where_nothing_listens_fails_with_a_connect_reason() {
    let m = MariaDb::new();
    let address = format!("127.0.0.1:{}", free_port());
    let obs = run(&m.check(&address, "right-pw", "SELECT 1", "\"value == 1\"")).await;
    assert!(!obs.ok);
    let want = format!("connect {address}: connection refused");
    assert!(reason(&obs).contains(&want), "{obs:?}");
}

#[tokio::test]
async fn a_mysql_query_that_outlives_the_timeout_leaves_no_session_behind() {
    let m = MariaDb::new();
    // The session's statement limit follows the check's timeout.
    let mut limit = m.check(
        MARIADB,
        "right-pw",
        "SELECT @@max_statement_time",
        "\"value == 1\"",
    );
    limit.timeout = Duration::from_secs(1);
    let obs = run(&limit).await;
    assert!(obs.ok, "{obs:?}");

    let mut spec = m.check(MARIADB, "right-pw", "SELECT SLEEP(60)", "");
    spec.timeout = Duration::from_secs(1);
    let obs = run(&spec).await;
    assert!(!obs.ok);
    // The check's timeout and the server's statement limit are equal, so
    // either may end the query first; both are a failed observation.
    let why = reason(&obs);
    assert!(
        why.contains("timed out") || why.contains("max_statement_time"),
        "{obs:?}"
    );
    // mysql_async finishes a dropped query on a task of its own; the
    // session's statement limit makes it end now rather than in a minute.
    assert!(
        poll_async(Duration::from_secs(10), || async { m.sessions() == 0 }).await,
        "a session of the timed-out probe is still there"
    );
}
