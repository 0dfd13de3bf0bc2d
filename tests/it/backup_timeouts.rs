//! Backup commands that hang: hooks, the dump command and the drill's verify command stop at their timeouts, with their children.

use std::path::Path;
use std::time::{Duration, Instant};

use lantern::backup::adaptor;
use lantern::backup::jobs::{self, Env};

use crate::backup_setup::{Setup, repo};
use crate::support::poll_async;

/// Each hanging command sleeps this long; a test passing well inside it shows the timeout acted.
const HANG: &str = "30";
const FAST: Duration = Duration::from_secs(15);

/// An `Env` over one local repository `main` and the `[[backup.sets]]` in `sets`.
fn env_on_main(s: &Setup, sets: &str) -> Env {
    s.env(&format!(
        "[backup]\n{}\n{sets}",
        repo("main", "repos/main", "")
    ))
}

/// A shell line that starts `sleep` in the background, writes its pid to
/// `name` in the temp dir and waits: killing only the shell would leave it.
fn sleeper(s: &Setup, name: &str) -> String {
    format!("sleep {HANG} & echo $! > {}; wait", s.path(name).display())
}

/// How many snapshots the repository `main` holds.
async fn snapshots(env: &Env) -> usize {
    adaptor::snapshots(env.ws.clone(), env.repo("main").unwrap().clone(), None)
        .await
        .unwrap()
        .len()
}

/// Whether the process whose pid is in `file` has ended (gone, or a zombie awaiting its reaper).
fn ended(file: &Path) -> bool {
    let Ok(pid) = std::fs::read_to_string(file) else {
        return false;
    };
    match std::fs::read_to_string(format!("/proc/{}/stat", pid.trim())) {
        Err(_) => true,
        // The state follows the parenthesised command name.
        Ok(stat) => stat
            .rsplit_once(") ")
            .is_some_and(|(_, s)| s.starts_with('Z')),
    }
}

async fn ends_soon(file: &Path) -> bool {
    poll_async(Duration::from_secs(10), || {
        let done = ended(file);
        async move { done }
    })
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_hook_past_its_timeout_fails_the_run_fast_naming_the_hook_and_its_children_die() {
    let s = Setup::new();
    std::fs::write(s.path("data/a.txt"), "alpha\n").unwrap();
    let env = env_on_main(
        &s,
        &format!(
            "[[backup.sets]]\nname = \"stuck\"\npaths = [\"data\"]\nbefore = [\"sh\", \"-c\", \"{}\"]\nhook-timeout = \"1s\"\n\n[[backup.sets]]\nname = \"quick\"\npaths = [\"data\"]\nbefore = [\"true\"]\nafter = [\"true\"]\nhook-timeout = \"1s\"\n",
            sleeper(&s, "hook.pid")
        ),
    );
    // Hooks that finish in time run under the same timeout (and the repository is made).
    jobs::snapshot(&env, "quick").await.unwrap();
    assert_eq!(snapshots(&env).await, 1);
    let clock = Instant::now();
    let err = jobs::snapshot(&env, "stuck").await.unwrap_err().to_string();
    assert!(clock.elapsed() < FAST, "took {:?}", clock.elapsed());
    assert!(
        err.contains("before hook `sh` timed out after 1s (hook-timeout)"),
        "{err}"
    );
    assert!(
        ends_soon(&s.path("hook.pid")).await,
        "the hook's background child outlived the timeout"
    );
    assert_eq!(
        snapshots(&env).await,
        1,
        "a failed before hook takes no snapshot"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dump_command_past_its_timeout_is_stopped_and_leaves_no_snapshot() {
    let s = Setup::new();
    std::fs::write(s.path("data/a.txt"), "alpha\n").unwrap();
    let env = env_on_main(
        &s,
        &format!(
            "[[backup.sets]]\nname = \"db\"\ncommand = [\"sh\", \"-c\", \"echo partial dump; {}\"]\ncommand-file = \"db.sql\"\ncommand-timeout = \"1s\"\n\n[[backup.sets]]\nname = \"ok\"\ncommand = [\"echo\", \"a good dump\"]\ncommand-file = \"ok.sql\"\ncommand-timeout = \"1s\"\n",
            sleeper(&s, "dump.pid")
        ),
    );
    let clock = Instant::now();
    let err = jobs::snapshot(&env, "db").await.unwrap_err().to_string();
    assert!(clock.elapsed() < FAST, "took {:?}", clock.elapsed());
    assert!(
        err.contains("the command `sh` timed out after 1s (command-timeout)"),
        "{err}"
    );
    assert!(
        ends_soon(&s.path("dump.pid")).await,
        "the dump's background child outlived the timeout"
    );
    assert_eq!(snapshots(&env).await, 0, "the partial dump was kept");

    // A dump that ends in time goes through the same wrapper, byte for byte.
    jobs::snapshot(&env, "ok").await.unwrap();
    let target = s.path("restore");
    jobs::restore(&env, "ok", None, "latest", target.clone())
        .await
        .unwrap();
    assert_eq!(
        std::fs::read_to_string(target.join("ok.sql")).unwrap(),
        "a good dump\n"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_drill_verify_past_its_timeout_fails_the_drill_and_cleans_up() {
    let s = Setup::new();
    std::fs::write(s.path("data/a.txt"), "alpha\n").unwrap();
    let env = env_on_main(
        &s,
        &format!(
            "[[backup.sets]]\nname = \"files\"\npaths = [\"data\"]\ndrill-verify = [\"sh\", \"-c\", \"{}\"]\ndrill-verify-timeout = \"1s\"\n",
            sleeper(&s, "verify.pid")
        ),
    );
    jobs::snapshot(&env, "files").await.unwrap();
    let clock = Instant::now();
    let err = jobs::drill(&env, "files").await.unwrap_err().to_string();
    assert!(clock.elapsed() < FAST, "took {:?}", clock.elapsed());
    assert!(
        err.contains("drill-verify `sh` timed out after 1s (drill-verify-timeout)"),
        "{err}"
    );
    assert!(
        ends_soon(&s.path("verify.pid")).await,
        "the verify command's background child outlived the timeout"
    );
    let left: Vec<_> = std::fs::read_dir(env.ws.dir.join("drill"))
        .map(|d| d.collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "scratch left behind: {left:?}");
}
