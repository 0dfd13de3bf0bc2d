//! The public status: one overall mode and message that the web site, the app and the phone line all read.
//!
//! The mode is computed from the checks the status follows, unless someone
//! (the API today; the manual-intake runbook later) has set it explicitly:
//! an explicit mode wins until it is cleared. The explicit mode is kept in
//! the store so a restart does not silently switch a shop back to "normal".

use std::sync::{Arc, RwLock};
use std::time::SystemTime;

use rusqlite::{OptionalExtension, params};
use serde::{Deserialize, Serialize};

use crate::config::Config;
use crate::health::{Health, State};
use crate::store::{Store, StoreError, from_ms, to_ms};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// Taking orders normally.
    Normal,
    /// Taking orders, slower or partly impaired.
    Degraded,
    /// The platform is down; orders go through the fallback form.
    ManualIntake,
    /// Planned maintenance.
    Maintenance,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Normal => "normal",
            Mode::Degraded => "degraded",
            Mode::ManualIntake => "manual-intake",
            Mode::Maintenance => "maintenance",
        }
    }

    pub fn parse(s: &str) -> Option<Mode> {
        Some(match s {
            "normal" => Mode::Normal,
            "degraded" => Mode::Degraded,
            "manual-intake" => Mode::ManualIntake,
            "maintenance" => Mode::Maintenance,
            _ => return None,
        })
    }
}

/// An explicitly set mode, with optional messages replacing the configured ones.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Override {
    pub mode: Mode,
    pub message_en: Option<String>,
    pub message_zh: Option<String>,
    #[serde(with = "crate::store::time_ms")]
    pub set_at: SystemTime,
    pub set_by: String,
}

/// What `/api/v1/status` answers and `/status` shows.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub mode: Mode,
    pub message_en: String,
    pub message_zh: String,
    pub title_en: String,
    pub title_zh: String,
    /// "computed" from the checks, or "set" by someone.
    pub source: &'static str,
    pub set_by: Option<String>,
    pub checks: Vec<CheckLine>,
    #[serde(with = "crate::store::time_ms")]
    pub generated_at: SystemTime,
}

#[derive(Debug, Clone, Serialize)]
pub struct CheckLine {
    pub name: String,
    pub state: State,
}

/// The status source: the explicit mode, cached, with the store behind it.
#[derive(Clone)]
pub struct Status {
    explicit: Arc<RwLock<Option<Override>>>,
    store: Store,
}

impl Status {
    pub async fn load(store: Store) -> Result<Status, StoreError> {
        let explicit = store
            .call(|c| {
                c.query_row(
                    "SELECT mode, message_en, message_zh, set_ms, set_by FROM status_mode WHERE id = 1",
                    [],
                    |r| {
                        Ok((
                            r.get::<_, String>(0)?,
                            r.get(1)?,
                            r.get(2)?,
                            r.get::<_, i64>(3)?,
                            r.get(4)?,
                        ))
                    },
                )
                .optional()
            })
            .await?
            .and_then(|(mode, message_en, message_zh, set_ms, set_by)| {
                Some(Override {
                    mode: Mode::parse(&mode)?,
                    message_en,
                    message_zh,
                    set_at: from_ms(set_ms),
                    set_by,
                })
            });
        Ok(Status {
            explicit: Arc::new(RwLock::new(explicit)),
            store,
        })
    }

    pub fn explicit(&self) -> Option<Override> {
        self.explicit
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Sets (or with `None` clears) the explicit mode; stored before it shows.
    pub async fn set(&self, value: Option<Override>) -> Result<(), StoreError> {
        let row = value.clone();
        self.store
            .call(move |c| {
                match row {
                    Some(o) => c.execute(
                        "INSERT INTO status_mode (id, mode, message_en, message_zh, set_ms, set_by)
                         VALUES (1, ?1, ?2, ?3, ?4, ?5)
                         ON CONFLICT (id) DO UPDATE SET mode = ?1, message_en = ?2, message_zh = ?3, set_ms = ?4, set_by = ?5",
                        params![o.mode.as_str(), o.message_en, o.message_zh, to_ms(o.set_at), o.set_by],
                    )?,
                    None => c.execute("DELETE FROM status_mode", [])?,
                };
                Ok(())
            })
            .await?;
        *self.explicit.write().unwrap_or_else(|p| p.into_inner()) = value;
        Ok(())
    }

    /// The status now: the explicit mode if set, else computed from the checks.
    pub fn report(&self, config: &Config, health: &Health) -> Report {
        let views = health.views(config);
        let followed: Vec<CheckLine> = views
            .iter()
            .filter(|v| {
                if config.status.checks.is_empty() {
                    config.checks.iter().any(|c| c.name == v.name && c.page)
                } else {
                    config.status.checks.contains(&v.name)
                }
            })
            .map(|v| CheckLine {
                name: v.name.clone(),
                state: v.state,
            })
            .collect();
        let explicit = self.explicit();
        let computed = if health.global_maintenance(config).is_some() {
            Mode::Maintenance
        } else if followed
            .iter()
            .any(|c| matches!(c.state, State::Down | State::Degraded))
        {
            Mode::Degraded
        } else {
            Mode::Normal
        };
        let mode = explicit.as_ref().map_or(computed, |o| o.mode);
        let m = &config.status.messages;
        let (en, zh) = match mode {
            Mode::Normal => (&m.normal_en, &m.normal_zh),
            Mode::Degraded => (&m.degraded_en, &m.degraded_zh),
            Mode::ManualIntake => (&m.manual_intake_en, &m.manual_intake_zh),
            Mode::Maintenance => (&m.maintenance_en, &m.maintenance_zh),
        };
        Report {
            mode,
            message_en: explicit
                .as_ref()
                .and_then(|o| o.message_en.clone())
                .unwrap_or_else(|| en.clone()),
            message_zh: explicit
                .as_ref()
                .and_then(|o| o.message_zh.clone())
                .unwrap_or_else(|| zh.clone()),
            title_en: config.status.title_en.clone(),
            title_zh: config.status.title_zh.clone(),
            source: if explicit.is_some() {
                "set"
            } else {
                "computed"
            },
            set_by: explicit.map(|o| o.set_by),
            checks: followed,
            generated_at: SystemTime::now(),
        }
    }
}

/// Renders the report as a small HTML page, Chinese first, no JavaScript.
pub fn html(r: &Report) -> String {
    let (badge_en, badge_zh, colour) = match r.mode {
        Mode::Normal => ("Taking orders normally", "正常接单", "#1a7f37"),
        Mode::Degraded => ("Degraded", "服务降级", "#9a6700"),
        Mode::ManualIntake => ("Manual order intake", "人工接单", "#bc4c00"),
        Mode::Maintenance => ("Maintenance", "维护中", "#0969da"),
    };
    let generated: chrono::DateTime<chrono::Utc> = r.generated_at.into();
    let mut rows = String::new();
    for c in &r.checks {
        let (en, zh) = match c.state {
            State::Up => ("Operational", "正常"),
            State::Degraded => ("Slow", "缓慢"),
            State::Down => ("Unavailable", "不可用"),
            State::Pending => ("Checking", "检测中"),
            State::Maintenance => ("Maintenance", "维护中"),
        };
        rows.push_str(&format!(
            "<tr><td>{}</td><td>{zh} / {en}</td></tr>\n",
            escape(&c.name)
        ));
    }
    format!(
        r#"<!doctype html>
<html lang="zh-CN">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="refresh" content="60">
<title>{title_zh} / {title_en}</title>
<style>
body {{ font-family: system-ui, "PingFang SC", "Microsoft YaHei", sans-serif; max-width: 40rem; margin: 2rem auto; padding: 0 1rem; color: #1f2328; }}
.mode {{ border-left: .5rem solid {colour}; padding: .5rem 1rem; background: #f6f8fa; }}
.mode strong {{ color: {colour}; }}
table {{ border-collapse: collapse; width: 100%; margin-top: 1.5rem; }}
td {{ border-bottom: 1px solid #d0d7de; padding: .4rem; }}
footer {{ margin-top: 2rem; font-size: .85rem; color: #656d76; }}
</style>
</head>
<body>
<h1>{title_zh}<br><small lang="en">{title_en}</small></h1>
<div class="mode" data-mode="{mode}">
<p><strong>{badge_zh}</strong> · <strong lang="en">{badge_en}</strong></p>
<p>{msg_zh}</p>
<p lang="en">{msg_en}</p>
</div>
<table>
{rows}</table>
<footer>更新于 / Updated {generated} UTC</footer>
</body>
</html>
"#,
        title_zh = escape(&r.title_zh),
        title_en = escape(&r.title_en),
        mode = r.mode.as_str(),
        msg_zh = escape(&r.message_zh),
        msg_en = escape(&r.message_en),
        generated = generated.format("%Y-%m-%d %H:%M:%S"),
    )
}

fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_escapes_messages_and_shows_both_languages() {
        let r = Report {
            mode: Mode::ManualIntake,
            message_en: "<script>alert(1)</script>".into(),
            message_zh: "请使用订单表格".into(),
            title_en: "Shop".into(),
            title_zh: "商店".into(),
            source: "set",
            set_by: Some("runbook".into()),
            checks: vec![],
            generated_at: SystemTime::now(),
        };
        let page = html(&r);
        assert!(!page.contains("<script>"));
        assert!(page.contains("&lt;script&gt;"));
        assert!(page.contains("人工接单") && page.contains("Manual order intake"));
        assert!(page.contains("请使用订单表格"));
    }
}
