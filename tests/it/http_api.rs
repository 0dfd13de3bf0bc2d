//! The HTTP surface of an in-process daemon: metrics, health, readiness, auth, limits, reload.

use reqwest::StatusCode;

use crate::support::{InProcess, TOKEN, get_json, get_text, metric_value};

async fn post_reload(d: &InProcess, token: Option<&str>) -> reqwest::Response {
    let mut req = reqwest::Client::new().post(d.url("/api/v1/reload"));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    req.send().await.unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_are_served_with_the_exposition_content_type_and_every_family() {
    let d = InProcess::start("").await;
    let r = reqwest::get(d.url("/metrics")).await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        r.headers()["content-type"],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    let body = r.text().await.unwrap();
    for family in [
        "lantern_build_info",
        "process_resident_memory_bytes",
        "process_cpu_seconds_total",
        "lantern_host_memory_total_bytes",
        "lantern_host_memory_available_bytes",
        "lantern_host_swap_total_bytes",
        "lantern_host_load1",
        "lantern_host_cpu_usage_ratio",
        "lantern_host_boot_time_seconds",
        "lantern_host_filesystem_size_bytes",
        "lantern_host_filesystem_files_free",
        "lantern_config_last_reload_successful",
        "lantern_config_last_reload_success_timestamp_seconds",
        "lantern_engine_last_tick_timestamp_seconds",
    ] {
        assert!(
            body.contains(&format!("# TYPE {family} ")),
            "{family} missing"
        );
    }
    assert_eq!(
        metric_value(&body, "lantern_config_last_reload_successful"),
        Some(1.0)
    );
    assert!(metric_value(&body, "lantern_engine_last_tick_timestamp_seconds").unwrap() > 1.7e9);
    d.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn health_readiness_and_landing_answer() {
    let d = InProcess::start("").await;
    for (path, want) in [
        ("/-/healthy", "Healthy"),
        ("/-/ready", "Ready"),
        ("/", "lantern"),
    ] {
        let r = reqwest::get(d.url(path)).await.unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{path}");
        assert!(r.text().await.unwrap().contains(want), "{path}");
    }
    let r = reqwest::get(d.url("/api/v1/nope")).await.unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let info: serde_json::Value = get_json(&d.url("/api/v1/info")).await;
    assert_eq!(info["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(info["ready"], true);
    d.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn state_changing_calls_need_the_bearer_token() {
    let d = InProcess::start("").await;
    let r = post_reload(&d, None).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(r.headers()["www-authenticate"], "Bearer");
    assert_eq!(
        post_reload(&d, Some("wrong-token-0123456789"))
            .await
            .status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(post_reload(&d, Some(TOKEN)).await.status(), StatusCode::OK);
    // Reads stay open.
    assert_eq!(
        reqwest::get(d.url("/api/v1/info")).await.unwrap().status(),
        StatusCode::OK
    );
    d.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn without_a_configured_token_state_changing_calls_are_refused() {
    let d = InProcess::start("").await;
    // Reload into a config with no token at all: from then on, nothing may change state.
    let text = std::fs::read_to_string(&d.config.path).unwrap();
    std::fs::write(
        &d.config.path,
        text.replace(&format!("api-token = \"{TOKEN}\"\n"), ""),
    )
    .unwrap();
    assert_eq!(post_reload(&d, Some(TOKEN)).await.status(), StatusCode::OK);
    assert_eq!(
        post_reload(&d, Some(TOKEN)).await.status(),
        StatusCode::FORBIDDEN
    );
    d.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn an_oversized_body_is_refused_with_413() {
    let d = InProcess::start("").await;
    let r = reqwest::Client::new()
        .post(d.url("/api/v1/reload"))
        .bearer_auth(TOKEN)
        .body(vec![b'x'; 4096])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);
    d.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bad_reload_keeps_the_running_config_and_a_good_one_swaps_it() {
    let d = InProcess::start("").await;
    let good = std::fs::read_to_string(&d.config.path).unwrap();

    std::fs::write(&d.config.path, format!("{good}\n[log]\nformat = \"xml\"\n")).unwrap();
    let r = post_reload(&d, Some(TOKEN)).await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let body: serde_json::Value = r.json().await.unwrap();
    assert!(
        body["error"].as_str().unwrap().contains("log.format"),
        "{body}"
    );
    assert_eq!(
        metric_value(
            &get_text(&d.url("/metrics")).await,
            "lantern_config_last_reload_successful"
        ),
        Some(0.0)
    );
    // Still running on the old config: the old token still works.
    assert_eq!(
        reqwest::get(d.url("/-/ready")).await.unwrap().status(),
        StatusCode::OK
    );

    let new_token = "rotated-token-0123456789abcdef";
    std::fs::write(&d.config.path, good.replace(TOKEN, new_token)).unwrap();
    assert_eq!(post_reload(&d, Some(TOKEN)).await.status(), StatusCode::OK);
    assert_eq!(
        metric_value(
            &get_text(&d.url("/metrics")).await,
            "lantern_config_last_reload_successful"
        ),
        Some(1.0)
    );
    assert_eq!(
        post_reload(&d, Some(TOKEN)).await.status(),
        StatusCode::UNAUTHORIZED,
        "old token must be gone"
    );
    assert_eq!(
        post_reload(&d, Some(new_token)).await.status(),
        StatusCode::OK
    );
    d.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn the_store_records_runs_and_reloads_and_a_clean_stop() {
    let d = InProcess::start("").await;
    assert_eq!(post_reload(&d, Some(TOKEN)).await.status(), StatusCode::OK);
    let config = d.stop().await.unwrap();
    let db = config.state_dir().join("lantern.db");
    let conn = rusqlite::Connection::open(db).unwrap();
    let (runs, clean): (i64, i64) = conn
        .query_row(
            "SELECT count(*), count(stopped_at) FROM daemon_runs",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!((runs, clean), (1, 1));
    let reloads: i64 = conn
        .query_row(
            "SELECT count(*) FROM config_reloads WHERE ok = 1",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(reloads, 1);
}
