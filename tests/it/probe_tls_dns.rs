//! `tls`, `dns` and `redis` checks against real servers on loopback: a rustls server, dnsmasq and redis-server.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, UNIX_EPOCH};

use lantern::config::CheckSpec;
use tokio::net::TcpListener;

use crate::probe_support::{check, facts, reason, run};
use crate::support::{KillOnDrop, free_port, poll_async};
use crate::tls_support::Pki;

/// Polls the check until it passes, so tests wait for a server's readiness, not a sleep.
async fn wait_ok(spec: &CheckSpec, what: &str) {
    let ok = poll_async(Duration::from_secs(10), || async { run(spec).await.ok }).await;
    assert!(
        ok,
        "{what} never became ready: {:?}",
        run(spec).await.reason
    );
}

// ---------------------------------------------------------------- tls

/// A TLS server on 127.0.0.1 presenting leaf + CA; each connection completes
/// the handshake and is dropped.
async fn tls_server(pki: &Pki) -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let acceptor = tokio_rustls::TlsAcceptor::from(pki.server_config(false));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                // A client that refuses our certificate aborts the handshake: expected.
                let _ = acceptor.accept(stream).await;
            });
        }
    });
    (addr, task)
}

#[tokio::test]
async fn a_tls_check_reports_leaf_and_chain_expiry_separately_and_fails_when_the_server_stops() {
    // The CA expires first, so the chain's earliest expiry differs from the leaf's.
    let pki = Pki::new(90);
    let ca_file = pki.path("ca.pem");
    let (addr, server) = tls_server(&pki).await;

    let with_ca = check(&format!(
        "kind = \"tls\"\naddress = \"{addr}\"\nca-file = \"{}\"",
        ca_file.display()
    ));
    let obs = run(&with_ca).await;
    assert!(obs.ok, "{:?}", obs.reason);
    assert_eq!(
        obs.cert_expiry,
        Some(UNIX_EPOCH + Duration::from_secs(pki.leaf_not_after)),
        "cert-expiry is the leaf's notAfter"
    );
    assert_eq!(
        obs.chain_expiry,
        Some(UNIX_EPOCH + Duration::from_secs(pki.ca_not_after)),
        "chain-expiry is the earliest notAfter in the chain (the CA's)"
    );

    let without_ca = check(&format!("kind = \"tls\"\naddress = \"{addr}\""));
    let obs = run(&without_ca).await;
    assert!(!obs.ok);
    assert!(
        reason(&obs).contains("certificate verify failed: UnknownIssuer"),
        "{obs:?}"
    );

    let skip = check(&format!(
        "kind = \"tls\"\naddress = \"{addr}\"\nskip-verify = true"
    ));
    let obs = run(&skip).await;
    assert!(obs.ok, "{:?}", obs.reason);
    assert_eq!(
        obs.cert_expiry,
        Some(UNIX_EPOCH + Duration::from_secs(pki.leaf_not_after)),
        "skip-verify still reads the certificate"
    );

    let wrong_name = check(&format!(
        "kind = \"tls\"\naddress = \"{addr}\"\nca-file = \"{}\"\nserver-name = \"shop.example\"",
        ca_file.display()
    ));
    let obs = run(&wrong_name).await;
    assert!(!obs.ok);
    assert!(
        reason(&obs).contains("certificate verify failed: NotValidForName"),
        "{obs:?}"
    );

    let expiry = |conditions: &str| {
        check(&format!(
            "kind = \"tls\"\naddress = \"{addr}\"\nca-file = \"{}\"\nconditions = [{conditions}]",
            ca_file.display()
        ))
    };
    let obs = run(&expiry("\"cert-expiry > 400d\"")).await;
    assert!(!obs.ok, "the leaf expires in 200 days");
    assert!(
        reason(&obs).starts_with("cert-expiry > 400d (got "),
        "{obs:?}"
    );
    let obs = run(&expiry("\"cert-expiry > 150d\"")).await;
    assert!(obs.ok, "{:?}", obs.reason);
    let obs = run(&expiry("\"chain-expiry > 150d\"")).await;
    assert!(!obs.ok, "the CA in the chain expires in 90 days");

    server.abort();
    let _ = server.await;
    let obs = run(&with_ca).await;
    assert!(!obs.ok);
    assert!(
        reason(&obs).starts_with(&format!("connect {addr}:")),
        "{obs:?}"
    );
}

// ---------------------------------------------------------------- dns

fn dnsmasq_path() -> PathBuf {
    let sbin = PathBuf::from("/usr/sbin/dnsmasq");
    if std::env::var_os("DNSMASQ").is_none() && sbin.is_file() {
        return sbin;
    }
    crate::support::tool("DNSMASQ", "dnsmasq")
}

/// dnsmasq in the foreground on 127.0.0.1:`port`, authoritative for `.test`
/// (unknown names are NXDOMAIN, nothing is forwarded); killed on drop.
fn start_dnsmasq(port: u16, dir: &Path) -> KillOnDrop {
    let child = Command::new(dnsmasq_path())
        .args([
            "--keep-in-foreground",
            "--no-resolv",
            "--no-hosts",
            "--conf-file=/dev/null",
            "--listen-address=127.0.0.1",
            "--bind-interfaces",
            "--user=root",
            "--local=/test/",
            "--address=/shop.test/127.0.0.5",
            "--mx-host=mail.test,mx1.mail.test,10",
            "--txt-record=txt.test,v=spf1 -all",
            "--host-record=db.test,127.0.0.9",
            "--cname=www.test,db.test",
        ])
        .arg(format!("--port={port}"))
        .arg(format!("--pid-file={}", dir.join("dnsmasq.pid").display()))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .expect("start dnsmasq");
    KillOnDrop(child)
}

fn dns_check(port: u16, name: &str, record_type: &str, conditions: &str) -> CheckSpec {
    check(&format!(
        "kind = \"dns\"\nserver = \"127.0.0.1:{port}\"\nquery-name = \"{name}\"\nrecord-type = \"{record_type}\"\n{conditions}"
    ))
}

#[tokio::test]
async fn a_dns_check_sees_answers_and_rcodes_from_dnsmasq_and_fails_when_it_stops() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut dnsmasq = start_dnsmasq(port, dir.path());
    let a = dns_check(
        port,
        "shop.test",
        "A",
        "conditions = [\"rcode == NOERROR\", \"answers contains 127.0.0.5\"]",
    );
    wait_ok(&a, "dnsmasq").await;
    assert_eq!(facts(&a).await.answers, vec!["127.0.0.5".to_string()]);

    let wrong = dns_check(
        port,
        "shop.test",
        "A",
        "conditions = [\"answers contains 127.0.0.6\"]",
    );
    let obs = run(&wrong).await;
    assert!(!obs.ok);
    assert_eq!(
        reason(&obs),
        "answers contains 127.0.0.6 (got [127.0.0.5])",
        "{obs:?}"
    );

    let missing = dns_check(port, "nothing-here.test", "A", "");
    let seen = facts(&missing).await;
    assert_eq!(seen.rcode.as_deref(), Some("NXDOMAIN"));
    assert!(seen.answers.is_empty());
    let obs = run(&missing).await;
    assert!(!obs.ok, "the default condition is rcode == NOERROR");
    assert!(reason(&obs).contains("NXDOMAIN"), "{obs:?}");

    let mx = facts(&dns_check(port, "mail.test", "MX", "")).await;
    assert_eq!(mx.answers, vec!["10 mx1.mail.test.".to_string()]);
    let txt = facts(&dns_check(port, "txt.test", "TXT", "")).await;
    assert_eq!(txt.answers, vec!["v=spf1 -all".to_string()]);
    let cname = facts(&dns_check(port, "www.test", "CNAME", "")).await;
    assert_eq!(cname.answers, vec!["db.test.".to_string()]);
    // Asking for A through a CNAME reports only the A records.
    let through = facts(&dns_check(port, "www.test", "A", "")).await;
    assert_eq!(through.answers, vec!["127.0.0.9".to_string()]);

    dnsmasq.stop();
    let obs = run(&a).await;
    assert!(!obs.ok, "a stopped server cannot answer");
    assert!(
        reason(&obs).contains("no reply from") || reason(&obs).contains("timed out"),
        "{obs:?}"
    );

    let _dnsmasq = start_dnsmasq(port, dir.path());
    wait_ok(&a, "restarted dnsmasq").await;
}

// ---------------------------------------------------------------- redis

const REDIS_PASSWORD: &str = "s3cret-redis-pw";

/// A throwaway redis-server on 127.0.0.1:`port` with a password and no
/// persistence, its files in `dir`; killed on drop.
fn start_redis(port: u16, dir: &Path) -> KillOnDrop {
    let child = Command::new(crate::support::tool("REDIS_SERVER", "redis-server"))
        .args(["--bind", "127.0.0.1", "--port"])
        .arg(port.to_string())
        .args(["--requirepass", REDIS_PASSWORD])
        .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
        .arg("--dir")
        .arg(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .expect("start redis-server");
    KillOnDrop(child)
}

#[tokio::test]
async fn a_redis_check_authenticates_reads_info_and_follows_the_server_down_and_up() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut redis = start_redis(port, dir.path());
    let good = check(&format!(
        "kind = \"redis\"\naddress = \"127.0.0.1:{port}\"\npassword = \"{REDIS_PASSWORD}\"\ninfo-section = \"replication\"\nconditions = [\"info(role) == master\", \"info(connected_slaves) == 0\", \"body == PONG\"]"
    ));
    wait_ok(&good, "redis-server").await;

    let password_file = dir.path().join("redis.pw");
    std::fs::write(&password_file, format!("{REDIS_PASSWORD}\n")).unwrap();
    let with_user = check(&format!(
        "kind = \"redis\"\naddress = \"127.0.0.1:{port}\"\nusername = \"default\"\npassword-file = \"{}\"\ninfo-section = \"memory\"\nconditions = [\"info(used_memory) < 1000000000\"]",
        password_file.display()
    ));
    let obs = run(&with_user).await;
    assert!(obs.ok, "{:?}", obs.reason);
    assert!(facts(&with_user).await.info.contains_key("used_memory"));

    let replicas = check(&format!(
        "kind = \"redis\"\naddress = \"127.0.0.1:{port}\"\npassword = \"{REDIS_PASSWORD}\"\ninfo-section = \"replication\"\nconditions = [\"info(connected_slaves) >= 1\"]"
    ));
    let obs = run(&replicas).await;
    assert!(!obs.ok, "a lone master has no replicas");
    assert_eq!(reason(&obs), "info(connected_slaves) >= 1 (got `0`)");

    let wrong = check(&format!(
        "kind = \"redis\"\naddress = \"127.0.0.1:{port}\"\npassword = \"not-it\""
    ));
    let obs = run(&wrong).await;
    assert!(!obs.ok);
    assert!(
        reason(&obs).starts_with("authentication failed: WRONGPASS"),
        "{obs:?}"
    );
    assert!(
        !reason(&obs).contains("not-it"),
        "the password is not echoed"
    );

    let none = check(&format!("kind = \"redis\"\naddress = \"127.0.0.1:{port}\""));
    let obs = run(&none).await;
    assert!(!obs.ok);
    assert!(
        reason(&obs).starts_with("authentication failed: NOAUTH"),
        "{obs:?}"
    );

    redis.stop();
    let obs = run(&good).await;
    assert!(!obs.ok);
    assert!(
        reason(&obs).starts_with(&format!("connect 127.0.0.1:{port}:")),
        "{obs:?}"
    );

    let _redis = start_redis(port, dir.path());
    wait_ok(&good, "restarted redis-server").await;
}
