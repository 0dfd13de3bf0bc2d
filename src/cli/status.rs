//! `lantern status`: the running daemon's checks, open incidents and public mode, read from its API.

use std::process::ExitCode;

use serde_json::Value;

use super::DaemonArgs;

pub fn status(args: DaemonArgs, json: bool) -> ExitCode {
    let base = match args.base_url() {
        Ok(b) => b,
        Err(e) => {
            eprintln!("lantern status: {e}");
            return ExitCode::from(crate::config::EXIT_CONFIG);
        }
    };
    let fetched = super::block_on(async {
        let client = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(10))
            .build()?;
        let get = |path: &'static str| {
            let client = client.clone();
            let url = format!("{base}{path}");
            async move {
                let resp = client.get(&url).send().await?.error_for_status()?;
                anyhow::Ok(resp.json::<Value>().await?)
            }
        };
        let (checks, incidents, status) = tokio::try_join!(
            get("/api/v1/checks"),
            get("/api/v1/incidents?status=open"),
            get("/api/v1/status"),
        )?;
        anyhow::Ok((checks, incidents, status))
    });
    let (checks, incidents, status) = match fetched {
        Ok(v) => v,
        Err(e) => {
            eprintln!("lantern status: cannot reach lantern at {base}: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    if json {
        let all = serde_json::json!({ "status": status, "checks": checks["checks"], "incidents": incidents["incidents"] });
        println!("{}", serde_json::to_string_pretty(&all).unwrap_or_default());
        return ExitCode::SUCCESS;
    }
    print!("{}", render(&checks, &incidents, &status));
    ExitCode::SUCCESS
}

fn text<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or("")
}

/// The human table: mode, then one line per check, then open incidents.
fn render(checks: &Value, incidents: &Value, status: &Value) -> String {
    let mut out = format!(
        "mode: {} ({})\n  {}\n\n",
        text(status, "mode"),
        text(status, "source"),
        text(status, "message_en")
    );
    let empty = Vec::new();
    let list = checks["checks"].as_array().unwrap_or(&empty);
    let width = list
        .iter()
        .map(|c| text(c, "name").len())
        .max()
        .unwrap_or(5)
        .max(5);
    out.push_str(&format!(
        "{:<width$}  {:<9}  {:<11}  {:>9}  {}\n",
        "CHECK", "KIND", "STATE", "LATENCY", "REASON"
    ));
    for c in list {
        let last = &c["last"];
        let latency = last
            .get("duration")
            .and_then(Value::as_f64)
            .map(|d| format!("{:.0}ms", d * 1000.0))
            .unwrap_or_else(|| "-".into());
        let reason = match c.get("maintenance").and_then(Value::as_str) {
            Some(m) => format!("maintenance: {m}"),
            None => text(last, "reason").to_string(),
        };
        out.push_str(&format!(
            "{:<width$}  {:<9}  {:<11}  {:>9}  {}\n",
            text(c, "name"),
            text(c, "kind"),
            text(c, "state"),
            latency,
            reason
        ));
    }
    let open = incidents["incidents"].as_array().unwrap_or(&empty);
    if open.is_empty() {
        out.push_str("\nno open incidents\n");
    } else {
        out.push_str(&format!("\n{} open incident(s)\n", open.len()));
        for i in open {
            out.push_str(&format!(
                "  #{}  {}  since {}  {}{}\n",
                i["id"],
                text(i, "title"),
                text(i, "opened_at"),
                text(i, "last_reason"),
                i.get("suppressed")
                    .and_then(Value::as_str)
                    .map(|s| format!(" (not paged: {s})"))
                    .unwrap_or_default()
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_shows_states_reasons_and_open_incidents() {
        let checks = serde_json::json!({"checks": [
            {"name": "storefront", "kind": "http", "state": "DOWN", "last": {"duration": 0.012, "reason": "HTTP 502"}},
            {"name": "db", "kind": "postgres", "state": "MAINTENANCE", "maintenance": "upgrade", "last": null}
        ]});
        let incidents = serde_json::json!({"incidents": [
            {"id": 7, "title": "storefront is down", "opened_at": "2027-02-10T02:00:00.000Z", "last_reason": "HTTP 502"}
        ]});
        let status =
            serde_json::json!({"mode": "degraded", "source": "computed", "message_en": "slow"});
        let out = render(&checks, &incidents, &status);
        assert!(out.contains("mode: degraded (computed)"));
        assert!(
            out.contains("storefront  http       DOWN              12ms  HTTP 502"),
            "{out}"
        );
        assert!(out.contains("maintenance: upgrade"));
        assert!(out.contains("#7  storefront is down"));
    }
}
