//! `lantern ack ID` and `lantern handover note "…"`: state changes sent to the running daemon's API with the bearer token.

use std::process::ExitCode;

use serde_json::{Value, json};

use super::DaemonArgs;

/// The API token: `LANTERN_API_TOKEN`, else the config's `server.api-token`.
fn token(args: &DaemonArgs) -> Result<String, String> {
    if let Ok(t) = std::env::var("LANTERN_API_TOKEN")
        && !t.trim().is_empty()
    {
        return Ok(t.trim().to_string());
    }
    if args.config.exists() {
        let cfg = crate::config::Config::load(&args.config).map_err(|e| e.to_string())?;
        if let Some(t) = cfg.server.api_token {
            return Ok(t.expose().to_string());
        }
    }
    Err("no API token: set LANTERN_API_TOKEN or server.api-token in the config".into())
}

fn post(args: &DaemonArgs, path: String, body: Value) -> ExitCode {
    let (base, token) = match (args.base_url(), token(args)) {
        (Ok(b), Ok(t)) => (b, t),
        (Err(e), _) | (_, Err(e)) => {
            eprintln!("lantern: {e}");
            return ExitCode::from(crate::config::EXIT_CONFIG);
        }
    };
    let result = super::block_on(async {
        let resp = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(10))
            .build()?
            .post(format!("{base}{path}"))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await?;
        let status = resp.status();
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        anyhow::Ok((status, body))
    });
    match result {
        Ok((status, body)) if status.is_success() => {
            println!("{}", serde_json::to_string(&body).unwrap_or_default());
            ExitCode::SUCCESS
        }
        Ok((status, body)) => {
            eprintln!(
                "lantern: {status}: {}",
                body["error"].as_str().unwrap_or("refused")
            );
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("lantern: cannot reach lantern at {base}: {e:#}");
            ExitCode::FAILURE
        }
    }
}

pub fn ack(args: DaemonArgs, id: i64, by: Option<String>) -> ExitCode {
    let by = by
        .or_else(|| std::env::var("USER").ok())
        .unwrap_or_else(|| "cli".into());
    post(
        &args,
        format!("/api/v1/incidents/{id}/ack"),
        json!({ "by": by }),
    )
}

pub fn handover_note(args: DaemonArgs, text: String, author: Option<String>) -> ExitCode {
    let author = author
        .or_else(|| std::env::var("USER").ok())
        .unwrap_or_else(|| "cli".into());
    post(
        &args,
        "/api/v1/handovers/notes".into(),
        json!({ "text": text, "author": author }),
    )
}
