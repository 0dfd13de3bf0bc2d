//! `http`, `tcp` and `command` checks against real servers and processes on loopback: axum (plain, TLS, mTLS), a line server, /bin/sh.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, UNIX_EPOCH};

use axum::Router;
use axum::http::{HeaderMap, StatusCode, header};
use axum::routing::{get, post};
use lantern::config::CheckSpec;
use lantern::probe::facts::MAX_TEXT;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use crate::probe_support::{check, check_named, facts, reason, run};
use crate::support::{Process, TestConfig, poll_async};
use crate::tls_support::Pki;

fn http_check(url: &str, extra: &str) -> CheckSpec {
    check(&format!("kind = \"http\"\nurl = \"{url}\"\n{extra}"))
}

// ---------------------------------------------------------------- servers

/// A server task aborted on drop, so a failing test leaves nothing listening.
struct Server {
    addr: SocketAddr,
    tasks: Vec<JoinHandle<()>>,
}

impl Server {
    /// Aborts the tasks and waits until they are gone, so the port is closed.
    async fn stop(&mut self) {
        for t in self.tasks.drain(..) {
            t.abort();
            let _ = t.await;
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// The routes every HTTP test talks to.
fn app() -> Router {
    Router::new()
        .route(
            "/json",
            get(|| async {
                (
                    [(header::CONTENT_TYPE, "application/json")],
                    r#"{"data":{"status":"ok","count":3}}"#,
                )
            }),
        )
        .route("/text", get(|| async { "ok: all good" }))
        .route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_millis(50)).await;
                "ok, slowly"
            }),
        )
        .route("/echo", post(echo))
        .route("/auth", get(auth))
        .route(
            "/redirect",
            get(|| async { (StatusCode::FOUND, [(header::LOCATION, "/text")]) }),
        )
}

/// Accepts only the exact request the POST test configures, and echoes its body.
async fn echo(headers: HeaderMap, body: String) -> (StatusCode, String) {
    let h = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string()
    };
    if h("x-order-id") != "A-17" || h("content-type") != "application/json" {
        return (
            StatusCode::BAD_REQUEST,
            format!(
                "wrong headers: x-order-id={:?} content-type={:?}",
                h("x-order-id"),
                h("content-type")
            ),
        );
    }
    if body != r#"{"item":"lamp"}"# {
        return (StatusCode::BAD_REQUEST, format!("wrong body: {body}"));
    }
    (StatusCode::CREATED, format!("created {body}"))
}

async fn auth(headers: HeaderMap) -> StatusCode {
    match headers.get(header::AUTHORIZATION).map(|v| v.as_bytes()) {
        Some(b"Bearer s3cret-token") => StatusCode::OK,
        _ => StatusCode::UNAUTHORIZED,
    }
}

async fn http_server_on(addr: &str) -> Server {
    let listener = TcpListener::bind(addr).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app()).await;
    });
    Server {
        addr,
        tasks: vec![task],
    }
}

async fn http_server() -> Server {
    http_server_on("127.0.0.1:0").await
}

/// A raw HTTP server whose body never ends: a client that reads it whole never finishes.
/// Counts the bytes it managed to write and notes when the client hung up.
async fn endless_server() -> (Server, Arc<AtomicU64>, Arc<AtomicBool>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let sent = Arc::new(AtomicU64::new(0));
    let hung_up = Arc::new(AtomicBool::new(false));
    let (s, h) = (sent.clone(), hung_up.clone());
    let task = tokio::spawn(async move {
        let Ok((mut stream, _)) = listener.accept().await else {
            return;
        };
        let mut head = Vec::new();
        let mut buf = [0u8; 1024];
        while !head.windows(4).any(|w| w == b"\r\n\r\n") {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => head.extend_from_slice(&buf[..n]),
            }
        }
        let _ = stream
            .write_all(
                b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\nok",
            )
            .await;
        let chunk = vec![b'a'; 64 * 1024];
        while stream.write_all(&chunk).await.is_ok() {
            s.fetch_add(chunk.len() as u64, Ordering::SeqCst);
        }
        h.store(true, Ordering::SeqCst);
    });
    (
        Server {
            addr,
            tasks: vec![task],
        },
        sent,
        hung_up,
    )
}

// ---------------------------------------------------------------- TLS

/// Hands axum connections whose TLS handshake already succeeded; handshakes
/// run on their own tasks so one stalled client cannot block the others.
struct TlsListener {
    addr: SocketAddr,
    rx: tokio::sync::mpsc::Receiver<(tokio_rustls::server::TlsStream<TcpStream>, SocketAddr)>,
}

impl axum::serve::Listener for TlsListener {
    type Io = tokio_rustls::server::TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, SocketAddr) {
        match self.rx.recv().await {
            Some(conn) => conn,
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<SocketAddr> {
        Ok(self.addr)
    }
}

/// The same routes over TLS with the PKI's leaf; see [`Pki::server_config`].
async fn https_server(pki: &Pki, require_client_cert: bool) -> Server {
    let acceptor = tokio_rustls::TlsAcceptor::from(pki.server_config(require_client_cert));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    let accept = tokio::spawn(async move {
        loop {
            let Ok((stream, peer)) = listener.accept().await else {
                return;
            };
            let (acceptor, tx) = (acceptor.clone(), tx.clone());
            tokio::spawn(async move {
                // A client that refuses our certificate, or has none, fails here: expected.
                if let Ok(tls) = acceptor.accept(stream).await {
                    let _ = tx.send((tls, peer)).await;
                }
            });
        }
    });
    let serve = tokio::spawn(async move {
        let _ = axum::serve(TlsListener { addr, rx }, app()).await;
    });
    Server {
        addr,
        tasks: vec![accept, serve],
    }
}

// ---------------------------------------------------------------- http

#[tokio::test(flavor = "multi_thread")]
async fn an_http_check_judges_status_headers_body_regex_and_json_path() {
    let server = http_server().await;
    let json = format!("http://{}/json", server.addr);
    let conditions = |c: &str| http_check(&json, &format!("conditions = [{c}]"));

    let obs = run(&http_check(&json, "")).await;
    assert!(obs.ok, "default condition status < 400: {:?}", obs.reason);

    let all = conditions(
        r#"'status == 200', 'header(content-type) contains json', 'body contains "count"', 'json($.data.status) == "ok"', 'json($.data.count) >= 3'"#,
    );
    let obs = run(&all).await;
    assert!(obs.ok, "{:?}", obs.reason);

    let obs = run(&conditions("'status == 201'")).await;
    assert!(!obs.ok);
    assert_eq!(reason(&obs), "status == 201 (got `200`)");

    let obs = run(&conditions(r#"'json($.data.status) == "degraded"'"#)).await;
    assert!(!obs.ok);
    assert_eq!(
        reason(&obs),
        r#"json($.data.status) == "degraded" (got `ok`)"#
    );

    let obs = run(&conditions("'header(content-type) contains html'")).await;
    assert!(!obs.ok);
    assert!(
        reason(&obs).starts_with("header(content-type) contains html (got `application/json"),
        "{obs:?}"
    );

    let text = format!("http://{}/text", server.addr);
    let obs = run(&http_check(&text, r#"conditions = ['body matches "^ok"']"#)).await;
    assert!(obs.ok, "{:?}", obs.reason);
    let obs = run(&http_check(
        &text,
        r#"conditions = ['body matches "^all"']"#,
    ))
    .await;
    assert!(!obs.ok, "the regex is anchored at the start of the body");
    assert_eq!(reason(&obs), r#"body matches "^all" (got `ok: all good`)"#);
    let obs = run(&http_check(
        &text,
        "conditions = ['json($.data.status) == \"ok\"']",
    ))
    .await;
    assert!(!obs.ok, "a text body has no JSON to query");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_http_check_measures_response_time_against_a_slow_handler() {
    let server = http_server().await;
    let slow = format!("http://{}/slow", server.addr);

    let obs = run(&http_check(&slow, "conditions = ['response-time < 2s']")).await;
    assert!(obs.ok, "{:?}", obs.reason);
    assert!(obs.duration >= Duration::from_millis(50), "{obs:?}");

    let obs = run(&http_check(&slow, "conditions = ['response-time < 1ms']")).await;
    assert!(!obs.ok, "the handler sleeps 50 ms");
    assert!(
        reason(&obs).starts_with("response-time < 1ms (got "),
        "{obs:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_http_post_sends_its_headers_and_body_and_a_bearer_token_reaches_the_server() {
    let server = http_server().await;
    let echo = format!("http://{}/echo", server.addr);
    let post = http_check(
        &echo,
        r#"method = "post"
body = '{"item":"lamp"}'
headers = { "X-Order-Id" = "A-17", "Content-Type" = "application/json" }
conditions = ['status == 201', 'body == "created {\"item\":\"lamp\"}"']"#,
    );
    let obs = run(&post).await;
    assert!(obs.ok, "{:?}", obs.reason);

    let wrong = http_check(
        &echo,
        r#"method = "POST"
body = 'lamp'
headers = { "X-Order-Id" = "A-17", "Content-Type" = "application/json" }"#,
    );
    let obs = run(&wrong).await;
    assert!(!obs.ok, "the server refuses a body it did not expect");
    assert_eq!(reason(&obs), "status < 400 (got `400`)");

    let auth = format!("http://{}/auth", server.addr);
    let obs = run(&http_check(&auth, "bearer-token = \"s3cret-token\"")).await;
    assert!(obs.ok, "{:?}", obs.reason);
    let obs = run(&http_check(&auth, "bearer-token = \"wrong\"")).await;
    assert_eq!(reason(&obs), "status < 400 (got `401`)");
    let obs = run(&http_check(&auth, "")).await;
    assert_eq!(reason(&obs), "status < 400 (got `401`)");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_http_check_follows_redirects_only_when_told_to() {
    let server = http_server().await;
    let url = format!("http://{}/redirect", server.addr);

    let spec = http_check(
        &url,
        "conditions = ['status == 302', 'header(location) == \"/text\"']",
    );
    let obs = run(&spec).await;
    assert!(
        obs.ok,
        "redirects are not followed by default: {:?}",
        obs.reason
    );

    let spec = http_check(
        &url,
        "follow-redirects = false\nconditions = ['status == 200']",
    );
    assert_eq!(reason(&run(&spec).await), "status == 200 (got `302`)");

    let spec = http_check(
        &url,
        "follow-redirects = true\nconditions = ['status == 200', 'body == \"ok: all good\"']",
    );
    let obs = run(&spec).await;
    assert!(obs.ok, "{:?}", obs.reason);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_endless_body_is_capped_at_one_mebibyte_instead_of_read_whole() {
    let (server, sent, hung_up) = endless_server().await;
    let spec = http_check(
        &format!("http://{}/", server.addr),
        "conditions = ['body matches \"^okaaa\"']",
    );
    let f = facts(&spec).await;
    let body = f.body.expect("a body");
    assert_eq!(body.len(), MAX_TEXT, "the body is cut at MAX_TEXT");
    assert!(body.starts_with("okaaa"));

    let hung = poll_async(Duration::from_secs(5), || async {
        hung_up.load(Ordering::SeqCst)
    })
    .await;
    assert!(hung, "the probe hangs up once it has enough");
    let written = sent.load(Ordering::SeqCst);
    assert!(
        written < 64 << 20,
        "the server could write only what fits in buffers, not {written} bytes"
    );
    drop(server);

    // The same through the runner: the conditions see the capped body in time.
    let (server, _, _) = endless_server().await;
    let spec = http_check(
        &format!("http://{}/", server.addr),
        "conditions = ['body matches \"^okaaa\"']",
    );
    let obs = run(&spec).await;
    assert!(obs.ok, "{:?}", obs.reason);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_http_check_fails_with_a_connect_reason_while_the_server_is_down_and_recovers() {
    let mut server = http_server().await;
    let addr = server.addr;
    let spec = http_check(&format!("http://{addr}/json"), "");
    let obs = run(&spec).await;
    assert!(obs.ok, "{:?}", obs.reason);

    server.stop().await;
    let obs = run(&spec).await;
    assert!(!obs.ok);
    let r = reason(&obs).to_ascii_lowercase();
    assert!(r.contains("connect") && r.contains("refused"), "{obs:?}");
    // The URL stays out of the reason: it is in the config and may carry credentials.
    assert!(!r.contains("/json"), "{obs:?}");

    let _again = http_server_on(&addr.to_string()).await;
    let obs = run(&spec).await;
    assert!(obs.ok, "{:?}", obs.reason);
}

// ---------------------------------------------------------------- https

#[tokio::test(flavor = "multi_thread")]
async fn an_https_check_trusts_its_ca_file_refuses_an_unknown_issuer_and_can_skip_verify() {
    let pki = Pki::new(365);
    let server = https_server(&pki, false).await;
    let url = format!("https://{}/json", server.addr);

    let with_ca = http_check(
        &url,
        &format!("ca-file = \"{}\"", pki.path("ca.pem").display()),
    );
    let obs = run(&with_ca).await;
    assert!(obs.ok, "{:?}", obs.reason);
    assert_eq!(
        obs.cert_expiry,
        Some(UNIX_EPOCH + Duration::from_secs(pki.leaf_not_after)),
        "cert_expiry is the leaf's notAfter to the second"
    );

    let obs = run(&http_check(&url, "")).await;
    assert!(!obs.ok, "the test CA is not in the system roots");
    assert!(
        reason(&obs).contains("invalid peer certificate: UnknownIssuer"),
        "{obs:?}"
    );

    let obs = run(&http_check(&url, "skip-verify = true")).await;
    assert!(obs.ok, "{:?}", obs.reason);

    let expiry = |c: &str| {
        http_check(
            &url,
            &format!(
                "ca-file = \"{}\"\nconditions = ['{c}']",
                pki.path("ca.pem").display()
            ),
        )
    };
    let obs = run(&expiry("cert-expiry > 30d")).await;
    assert!(obs.ok, "{:?}", obs.reason);
    let obs = run(&expiry("cert-expiry > 400d")).await;
    assert!(!obs.ok, "the leaf expires in about 200 days");
    assert!(
        reason(&obs).starts_with("cert-expiry > 400d (got 6months"),
        "{obs:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_https_check_presents_its_client_certificate_to_a_server_that_requires_one() {
    let pki = Pki::new(365);
    let server = https_server(&pki, true).await;
    let url = format!("https://{}/text", server.addr);

    let with_cert = http_check(
        &url,
        &format!(
            "ca-file = \"{}\"\nclient-cert = \"{}\"\nclient-key = \"{}\"\nconditions = ['body == \"ok: all good\"']",
            pki.path("ca.pem").display(),
            pki.path("client.pem").display(),
            pki.path("client-key.pem").display()
        ),
    );
    let obs = run(&with_cert).await;
    assert!(obs.ok, "{:?}", obs.reason);

    let without = http_check(
        &url,
        &format!("ca-file = \"{}\"", pki.path("ca.pem").display()),
    );
    let obs = run(&without).await;
    assert!(!obs.ok, "the server requires a client certificate");
    assert!(
        reason(&obs).contains("CertificateRequired"),
        "the handshake is refused, no response is seen: {obs:?}"
    );
}

// ---------------------------------------------------------------- tcp

/// A line protocol like Redis's inline commands: PING gets PONG, anything
/// else an error; the connection stays open either way.
async fn line_server() -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let (read, mut write) = stream.into_split();
                let mut lines = BufReader::new(read).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    let reply = match line.trim() {
                        "PING" => "PONG\r\n".to_string(),
                        other => format!("ERR unknown command '{other}'\r\n"),
                    };
                    if write.write_all(reply.as_bytes()).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    Server {
        addr,
        tasks: vec![task],
    }
}

fn tcp_check(timeout: &str, body: &str) -> CheckSpec {
    check_named("t", timeout, &format!("kind = \"tcp\"\n{body}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tcp_check_connects_sends_and_expects_and_names_an_unexpected_reply() {
    let server = line_server().await;
    let addr = server.addr;

    let obs = run(&tcp_check("2s", &format!("address = \"{addr}\""))).await;
    assert!(obs.ok, "{:?}", obs.reason);

    let ping = tcp_check(
        "2s",
        &format!("address = \"{addr}\"\nsend = \"PING\\r\\n\"\nexpect = \"PONG\""),
    );
    let obs = run(&ping).await;
    assert!(obs.ok, "{:?}", obs.reason);
    assert_eq!(facts(&ping).await.body.as_deref(), Some("PONG\r\n"));

    let hello = tcp_check(
        "1s",
        &format!("address = \"{addr}\"\nsend = \"HELLO\\r\\n\"\nexpect = \"PONG\""),
    );
    let obs = run(&hello).await;
    assert!(!obs.ok);
    assert!(
        reason(&obs).starts_with("expected `PONG`, got `ERR unknown command 'HELLO'`"),
        "the reason shows what the server said: {obs:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tcp_check_on_a_closed_port_fails_with_a_connect_reason() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let obs = run(&tcp_check("2s", &format!("address = \"{addr}\""))).await;
    assert!(!obs.ok);
    assert!(
        reason(&obs).starts_with(&format!("connect {addr}: ")),
        "{obs:?}"
    );
    assert!(reason(&obs).contains("refused"), "{obs:?}");
}

// ---------------------------------------------------------------- command

fn command_check(name: &str, timeout: &str, body: &str) -> CheckSpec {
    check_named(name, timeout, &format!("kind = \"command\"\n{body}"))
}

/// TOML for an argv list: each argument as a literal string, nothing interpreted.
fn argv(args: &[&str]) -> String {
    let quoted: Vec<String> = args.iter().map(|a| format!("'{a}'")).collect();
    format!("argv = [{}]", quoted.join(", "))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_command_check_judges_exit_code_and_combined_output() {
    let args = argv(&["/bin/sh", "-c", "echo disk ok; echo warning >&2; exit 3"]);
    let obs = run(&command_check("t", "2s", &args)).await;
    assert!(!obs.ok);
    assert_eq!(reason(&obs), "exit-code == 0 (got `3`)");

    let spec = command_check(
        "t",
        "2s",
        &format!(
            "{args}\nconditions = ['exit-code == 3', 'output contains \"disk ok\"', 'output contains warning']"
        ),
    );
    let obs = run(&spec).await;
    assert!(obs.ok, "{:?}", obs.reason);

    let spec = command_check(
        "t",
        "2s",
        &format!("{args}\nconditions = ['output !contains warning']"),
    );
    assert!(!run(&spec).await.ok, "stderr is part of the output");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_command_argv_is_passed_literally_never_through_a_shell() {
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("pwned");
    let m = marker.display().to_string();
    let sub = format!("$(touch {m})");
    let semi = format!("; touch {m}");
    let tick = format!("`touch {m}`");
    let spec = command_check(
        "t",
        "2s",
        &format!(
            "{}\nconditions = ['exit-code == 0', 'output contains \"$(touch\"', 'output contains \"; touch\"']",
            argv(&["/bin/echo", &sub, &semi, &tick])
        ),
    );
    let obs = run(&spec).await;
    assert!(obs.ok, "{:?}", obs.reason);
    let out = facts(&spec).await.output.unwrap_or_default();
    assert_eq!(out, format!("{sub} {semi} {tick}\n"));
    assert!(!marker.exists(), "no shell ran the arguments");
}

/// True once `pid` is gone or a zombie (its parent died; whoever reaps orphans may be slow).
fn process_gone(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit_once(") ")
            .is_some_and(|(_, rest)| rest.starts_with('Z') || rest.starts_with('X')),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_command_timeout_kills_the_whole_process_group() {
    let dir = tempfile::tempdir().unwrap();
    let pidfile = dir.path().join("sleep.pid");
    let script = format!("sleep 60 & echo $! > {}; wait", pidfile.display());
    let spec = command_check("t", "500ms", &argv(&["/bin/sh", "-c", &script]));
    let started = Instant::now();
    let obs = run(&spec).await;
    assert!(!obs.ok);
    assert_eq!(reason(&obs), "timed out after 500ms");
    assert!(started.elapsed() < Duration::from_secs(5), "{obs:?}");

    let pid: u32 = std::fs::read_to_string(&pidfile)
        .expect("the shell wrote the grandchild's pid")
        .trim()
        .parse()
        .unwrap();
    let gone = poll_async(Duration::from_secs(5), || async move { process_gone(pid) }).await;
    if !gone && let Some(p) = rustix::process::Pid::from_raw(pid as i32) {
        let _ = rustix::process::kill_process(p, rustix::process::Signal::KILL);
    }
    assert!(gone, "the grandchild sleep {pid} outlived the timeout");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_command_gets_its_env_and_the_check_name() {
    let spec = command_check(
        "disk-space",
        "2s",
        &format!(
            "{}\nenv = {{ GREETING = \"hello there\" }}\nconditions = ['output == \"greeting=hello there check=disk-space\"']",
            argv(&[
                "/bin/sh",
                "-c",
                "printf \"greeting=%s check=%s\" \"$GREETING\" \"$LANTERN_CHECK\""
            ])
        ),
    );
    let obs = run(&spec).await;
    assert!(obs.ok, "{:?}", obs.reason);
}

#[test]
fn a_command_run_by_the_daemon_does_not_inherit_its_notify_socket() {
    let cfg_dir = tempfile::tempdir().unwrap();
    let socket_path = cfg_dir.path().join("notify.sock");
    let socket = std::os::unix::net::UnixDatagram::bind(&socket_path).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(15)))
        .unwrap();
    let out = cfg_dir.path().join("env.txt");
    let script = format!(
        "echo notify=${{NOTIFY_SOCKET:-unset}} check=$LANTERN_CHECK > {o}.tmp && mv {o}.tmp {o}",
        o = out.display()
    );
    let config = TestConfig::new(&format!(
        "[[checks]]\nname = \"env-dump\"\nkind = \"command\"\ninterval = \"1s\"\ntimeout = \"1s\"\n{}\n",
        argv(&["/bin/sh", "-c", &script])
    ));
    let sock = socket_path.display().to_string();
    let mut lantern = Process::start(&config.path, &[("NOTIFY_SOCKET", &sock)], &[]);

    // lantern itself had the socket: it says READY=1 on it.
    let mut buf = [0u8; 512];
    let n = socket.recv(&mut buf).expect("lantern notified the socket");
    assert!(
        String::from_utf8_lossy(&buf[..n]).contains("READY=1"),
        "{}",
        String::from_utf8_lossy(&buf[..n])
    );

    let deadline = Instant::now() + Duration::from_secs(15);
    let text = loop {
        if let Ok(t) = std::fs::read_to_string(&out) {
            break t;
        }
        assert!(
            Instant::now() < deadline,
            "the command never ran; log:\n{}",
            lantern.log.join("\n")
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(text.trim(), "notify=unset check=env-dump");

    lantern.signal(rustix::process::Signal::TERM);
    assert!(lantern.wait_exit(Duration::from_secs(15)).success());
}
