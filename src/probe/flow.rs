//! `flow` checks: a multi-step synthetic HTTP transaction (place → poll → cancel), judged as one check.
//!
//! Steps run in order; each may capture values from its JSON answer into
//! `{{variables}}` for later steps, and may poll until its conditions hold.
//! After the first failure the remaining steps are skipped except those with
//! `always-run = true` (cleanup, such as cancelling the test order), so a
//! failing flow does not leave test data behind. A cleanup that needs a
//! variable that was never captured is skipped, and the reason says so.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json_path::JsonPath;

use super::http::{ClientKey, error_chain, request, response_facts};
use super::{Condition, Facts, ProbeContext, expand_self};
use crate::config::validate::Ctx;
use crate::config::{RawCheck, RawFlowStep, Secret};

mod template;

use template::{is_variable, placeholders, render, run_id};

/// Enough for login → cart → order → pay → verify → cancel with room to spare;
/// a longer transaction is better split into several checks.
pub const MAX_STEPS: usize = 20;

const BUILTINS: &[&str] = &["run_id", "self"];
const STEP_SUBJECTS: &[&str] = &["status", "body", "json", "header", "response-time"];

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct Spec {
    pub steps: Vec<Step>,
    #[serde(skip)]
    client: ClientKey,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct Step {
    pub name: String,
    pub method: String,
    pub url: String,
    pub headers: Vec<(String, Secret)>,
    pub body: Option<String>,
    pub capture: Vec<Capture>,
    pub conditions: Vec<Condition>,
    pub poll: Option<Poll>,
    pub always_run: bool,
    /// Every variable the step's URL, headers and body use.
    #[serde(skip)]
    needs: BTreeSet<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Capture {
    pub variable: String,
    pub path: String,
    #[serde(skip)]
    compiled: JsonPath,
}

#[derive(Debug, Clone, Copy, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct Poll {
    #[serde(serialize_with = "human")]
    pub every: Duration,
    #[serde(serialize_with = "human")]
    pub within: Duration,
}

impl Spec {
    pub(crate) fn from_raw(cx: &mut Ctx, key: &str, raw: &RawCheck) -> Option<Spec> {
        let client = ClientKey::from_raw(cx, key, raw);
        let raw_steps = raw.steps.as_deref().unwrap_or(&[]);
        if raw_steps.is_empty() {
            cx.error(
                &format!("{key}.steps"),
                "a flow needs `steps`: one [[checks.steps]] table per request",
            );
            return None;
        }
        if raw_steps.len() > MAX_STEPS {
            cx.error(
                &format!("{key}.steps"),
                format!(
                    "{} steps; a flow has at most {MAX_STEPS} (split a longer transaction into several checks)",
                    raw_steps.len()
                ),
            );
            return None;
        }
        let timeout = check_timeout(raw);
        let mut known: BTreeSet<String> = BUILTINS.iter().map(|s| s.to_string()).collect();
        let mut later: BTreeSet<String> = raw_steps
            .iter()
            .flat_map(|s| s.capture.iter().flatten().map(|(v, _)| v.clone()))
            .collect();
        let mut names = BTreeSet::new();
        let mut steps = Vec::new();
        let mut ok = true;
        for (j, rs) in raw_steps.iter().enumerate() {
            let skey = format!("{key}.steps[{j}]");
            match step(cx, &skey, rs, &known, &later, timeout, &mut names) {
                Some(s) => steps.push(s),
                None => ok = false,
            }
            // Even from a step with errors, so one mistake is reported once.
            known.extend(rs.capture.iter().flatten().map(|(v, _)| v.clone()));
            // Variables captured only by this or later steps stay "later".
            later = raw_steps[j + 1..]
                .iter()
                .flat_map(|s| s.capture.iter().flatten().map(|(v, _)| v.clone()))
                .collect();
        }
        ok.then_some(Spec { steps, client })
    }

    pub async fn probe(&self, cx: &ProbeContext) -> Result<Facts, String> {
        let client = cx.http.get(&self.client)?;
        let started = Instant::now();
        // The runner drops the whole probe at the check's timeout, which would
        // skip cleanup; so the flow keeps its own clock and leaves a quarter
        // of the time for `always-run` steps.
        let end = started + cx.timeout.saturating_sub(Duration::from_millis(50));
        let main_end = if self.steps.iter().any(|s| s.always_run) {
            started + cx.timeout.mul_f64(0.75)
        } else {
            end
        };
        let mut vars: BTreeMap<String, String> = BTreeMap::new();
        vars.insert("run_id".into(), run_id());
        vars.insert("self".into(), cx.self_addr.to_string());
        let mut first: Option<String> = None;
        let mut later: Vec<String> = Vec::new();
        for step in &self.steps {
            if first.is_some() && !step.always_run {
                continue;
            }
            if let Some(missing) = step.needs.iter().find(|v| !vars.contains_key(*v)) {
                later.push(format!(
                    "cleanup step `{}` skipped: `{{{{{missing}}}}}` was never captured",
                    step.name
                ));
                continue;
            }
            let deadline = if step.always_run { end } else { main_end };
            if let Err(e) = step.run(&client, &mut vars, cx, deadline).await {
                match first {
                    None => first = Some(format!("step `{}`: {e}", step.name)),
                    Some(_) => later.push(format!("cleanup step `{}` also failed: {e}", step.name)),
                }
            }
        }
        match first {
            None => Ok(Facts {
                connected: Some(true),
                ..Facts::default()
            }),
            Some(mut reason) => {
                for l in later {
                    reason.push_str("; ");
                    reason.push_str(&l);
                }
                Err(reason)
            }
        }
    }
}

impl Step {
    /// One step, polled if configured; on success its captures join `vars`.
    async fn run(
        &self,
        client: &reqwest::Client,
        vars: &mut BTreeMap<String, String>,
        cx: &ProbeContext,
        deadline: Instant,
    ) -> Result<(), String> {
        let lookup = |v: &str| vars.get(v).cloned();
        let url = expand_self(&render(&self.url, lookup)?, cx.self_addr);
        let mut headers = Vec::with_capacity(self.headers.len() + 1);
        for (k, v) in &self.headers {
            headers.push((k.clone(), Secret::new(render(v.expose(), lookup)?)));
        }
        let body = self
            .body
            .as_deref()
            .map(|b| render(b, lookup))
            .transpose()?;
        // A JSON body without a Content-Type would be refused by most APIs (415).
        let json_body = body
            .as_deref()
            .is_some_and(|b| serde_json::from_str::<serde_json::Value>(b).is_ok());
        if json_body
            && !headers
                .iter()
                .any(|(k, _)| k.eq_ignore_ascii_case("content-type"))
        {
            headers.push(("content-type".into(), Secret::new("application/json")));
        }
        let started = Instant::now();
        let poll_end = self
            .poll
            .map_or(deadline, |p| (started + p.within).min(deadline));
        let mut tries = 0u32;
        loop {
            tries += 1;
            let sent = Instant::now();
            let req = request(client, &self.method, &url, &headers, None, body.clone());
            let attempt = async {
                let resp = req
                    .send()
                    .await
                    // Without the URL: it is in the config, and may carry credentials.
                    .map_err(|e| error_chain(&e.without_url()))?;
                let facts = response_facts(resp).await?;
                let took = sent.elapsed();
                if let Some(e) = self
                    .conditions
                    .iter()
                    .find_map(|c| c.evaluate(&facts, took).err())
                {
                    return Err(e);
                }
                self.captures(&facts)
            };
            let outcome = match tokio::time::timeout_at(deadline.into(), attempt).await {
                Ok(r) => r,
                Err(_) => {
                    return Err(format!(
                        "no answer within the flow's time budget (after {})",
                        seconds(started.elapsed())
                    ));
                }
            };
            match (outcome, self.poll) {
                (Ok(captured), _) => {
                    vars.extend(captured);
                    return Ok(());
                }
                (Err(e), None) => return Err(e),
                (Err(e), Some(p)) => {
                    let next = Instant::now() + p.every;
                    if next >= poll_end {
                        return Err(format!(
                            "{e}, still after {} ({tries} tries)",
                            seconds(started.elapsed())
                        ));
                    }
                    tokio::time::sleep_until(next.into()).await;
                }
            }
        }
    }

    fn captures(&self, facts: &Facts) -> Result<Vec<(String, String)>, String> {
        if self.capture.is_empty() {
            return Ok(Vec::new());
        }
        let Some(json) = facts.json() else {
            let body = facts.body.as_deref().unwrap_or("");
            let snippet: String = body.chars().take(80).collect();
            return Err(format!(
                "capture `{}` needs a JSON response body, got `{snippet}`",
                self.capture[0].variable
            ));
        };
        let mut out = Vec::with_capacity(self.capture.len());
        for c in &self.capture {
            let value = match c.compiled.query(json).first() {
                None => {
                    return Err(format!(
                        "capture `{}`: `{}` matched nothing in the response body",
                        c.variable, c.path
                    ));
                }
                Some(serde_json::Value::Null) => {
                    return Err(format!(
                        "capture `{}`: `{}` is null in the response body",
                        c.variable, c.path
                    ));
                }
                Some(serde_json::Value::String(s)) => s.clone(),
                Some(other) => other.to_string(),
            };
            out.push((c.variable.clone(), value));
        }
        Ok(out)
    }
}

fn step(
    cx: &mut Ctx,
    skey: &str,
    rs: &RawFlowStep,
    known: &BTreeSet<String>,
    later: &BTreeSet<String>,
    timeout: Option<Duration>,
    names: &mut BTreeSet<String>,
) -> Option<Step> {
    let name = match rs.name.as_deref() {
        None => {
            cx.error(skey, "every step needs a `name`");
            None
        }
        Some(n) if !crate::config::valid_name(n) => {
            cx.error(
                &format!("{skey}.name"),
                format!(
                    "`{n}`: a step name is letters, digits, `-` and `_`, starting with a letter"
                ),
            );
            None
        }
        Some(n) if !names.insert(n.to_string()) => {
            cx.error(
                &format!("{skey}.name"),
                format!("`{n}` is used by an earlier step"),
            );
            None
        }
        Some(n) => Some(n.to_string()),
    };
    let mut needs = BTreeSet::new();
    let mut uses = |cx: &mut Ctx, key: String, text: &str| -> bool {
        match placeholders(text) {
            Err(e) => {
                cx.error(&key, e);
                false
            }
            Ok(vars) => {
                let mut ok = true;
                for v in vars {
                    if !known.contains(&v) {
                        let why = if later.contains(&v) {
                            format!(
                                "`{{{{{v}}}}}` is captured only by this or a later step; a step can use only what an earlier step captured"
                            )
                        } else {
                            format!(
                                "no earlier step captures `{{{{{v}}}}}` (built-ins: {})",
                                BUILTINS.join(", ")
                            )
                        };
                        cx.error(&key, why);
                        ok = false;
                    }
                    needs.insert(v);
                }
                ok
            }
        }
    };
    let url_key = format!("{skey}.url");
    let url = match rs.url.as_deref() {
        None => {
            cx.error(&url_key, "every step needs a `url`");
            None
        }
        Some(u) => {
            let vars_ok = uses(cx, url_key.clone(), u);
            (vars_ok && valid_url(cx, &url_key, u)).then(|| u.to_string())
        }
    };
    let method = super::http::method(cx, &format!("{skey}.method"), rs.method.as_deref());
    let headers = super::http::headers(cx, &format!("{skey}.headers"), rs.headers.as_ref());
    let mut vars_ok = true;
    for (_, v) in &headers {
        vars_ok &= uses(cx, format!("{skey}.headers"), v.expose());
    }
    if let Some(b) = &rs.body {
        vars_ok &= uses(cx, format!("{skey}.body"), b);
    }
    let mut capture = Vec::new();
    for (variable, path) in rs.capture.iter().flatten() {
        let ckey = format!("{skey}.capture.{variable}");
        if !is_variable(variable) || BUILTINS.contains(&variable.as_str()) {
            cx.error(
                &ckey,
                format!("`{variable}`: a variable is letters, digits and `_`, starting with a letter, and not {}", BUILTINS.join(" or ")),
            );
            vars_ok = false;
            continue;
        }
        match JsonPath::parse(path) {
            Ok(compiled) => capture.push(Capture {
                variable: variable.clone(),
                path: path.clone(),
                compiled,
            }),
            Err(e) => {
                cx.error(&ckey, format!("invalid JSONPath `{path}`: {e}"));
                vars_ok = false;
            }
        }
    }
    let mut conditions = Vec::new();
    for (k, text) in rs.conditions.iter().flatten().enumerate() {
        let ckey = format!("{skey}.conditions[{k}]");
        match Condition::parse(text) {
            Ok(c) if !STEP_SUBJECTS.contains(&c.subject.name()) => {
                cx.error(
                    &ckey,
                    format!(
                        "`{}` does not apply to flow steps (they offer: {})",
                        c.subject.name(),
                        STEP_SUBJECTS.join(", ")
                    ),
                );
                vars_ok = false;
            }
            Ok(c) => conditions.push(c),
            Err(e) => {
                cx.error(&ckey, format!("`{text}`: {e}"));
                vars_ok = false;
            }
        }
    }
    if conditions.is_empty() {
        conditions.push(Condition::parse("status < 400").expect("built-in condition parses"));
    }
    let poll = poll(cx, skey, rs, timeout);
    Some(Step {
        name: name?,
        method,
        url: url?,
        headers,
        body: rs.body.clone(),
        capture,
        conditions,
        poll: poll.ok()?,
        always_run: rs.always_run.unwrap_or(false),
        needs,
    })
    .filter(|_| vars_ok)
}

/// `poll-every` and `poll-within`; `Err` when either is wrong (already reported).
fn poll(
    cx: &mut Ctx,
    skey: &str,
    rs: &RawFlowStep,
    timeout: Option<Duration>,
) -> Result<Option<Poll>, ()> {
    let every_key = format!("{skey}.poll-every");
    let within_key = format!("{skey}.poll-within");
    let every = rs.poll_every.as_deref().map(|r| {
        cx.duration(
            &every_key,
            Some(r),
            Duration::from_secs(1),
            Duration::from_millis(10),
            Duration::from_secs(600),
        )
    });
    let Some(raw_within) = rs.poll_within.as_deref() else {
        if every.is_some() {
            cx.error(
                &within_key,
                "`poll-every` needs `poll-within`: how long to keep trying",
            );
            return Err(());
        }
        return Ok(None);
    };
    let within = cx.duration(
        &within_key,
        Some(raw_within),
        Duration::ZERO,
        Duration::from_millis(10),
        Duration::from_secs(3600),
    );
    let every = every.unwrap_or(Duration::from_secs(1));
    if within < every {
        cx.error(
            &within_key,
            format!(
                "{raw_within} is shorter than poll-every ({}), so the step would be tried only once",
                humantime::format_duration(every)
            ),
        );
        return Err(());
    }
    if let Some(t) = timeout
        && within >= t
    {
        cx.error(
                &within_key,
                format!(
                    "{raw_within} is not shorter than the check's timeout ({}), which bounds the whole flow",
                    humantime::format_duration(t)
                ),
            );
        return Err(());
    }
    Ok(Some(Poll { every, within }))
}

/// The check's timeout as `checks.rs` will compute it, when the text parses
/// (a bad value is reported there).
fn check_timeout(raw: &RawCheck) -> Option<Duration> {
    let parse = |t: &Option<String>| t.as_deref().map(humantime::parse_duration);
    match (parse(&raw.timeout), parse(&raw.interval)) {
        (Some(Ok(t)), _) => Some(t),
        (None, None) => Some(Duration::from_secs(10)),
        (None, Some(Ok(i))) => Some(i.min(Duration::from_secs(10))),
        _ => None,
    }
}

fn valid_url(cx: &mut Ctx, key: &str, template: &str) -> bool {
    // Any value stands in for a placeholder; "1" keeps hosts and ports valid.
    let Ok(sample) = render(template, |_| Some("1".to_string())) else {
        return false;
    };
    match reqwest::Url::parse(&sample.replace("{self}", "127.0.0.1:1")) {
        Ok(u) if matches!(u.scheme(), "http" | "https") => true,
        Ok(u) => {
            cx.error(
                key,
                format!(
                    "`{}` URLs are not HTTP; use http:// or https://",
                    u.scheme()
                ),
            );
            false
        }
        Err(e) => {
            cx.error(key, format!("`{template}` is not a URL: {e}"));
            false
        }
    }
}

fn human<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&humantime::format_duration(*d).to_string())
}

fn seconds(d: Duration) -> String {
    humantime::format_duration(Duration::from_millis(d.as_millis() as u64)).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use std::path::Path;

    fn errors(steps: &str) -> Vec<(String, String)> {
        let text = format!("[[checks]]\nname = \"shop\"\nkind = \"flow\"\n{steps}");
        match Config::parse(Path::new("/etc/lantern/t.toml"), &text) {
            Ok(_) => Vec::new(),
            Err(e) => {
                e.0.into_iter()
                    .map(|e| (e.key.unwrap_or_default(), e.message))
                    .collect()
            }
        }
    }

    const PLACE: &str = "[[checks.steps]]\nname = \"place\"\nmethod = \"POST\"\nurl = \"http://127.0.0.1:8080/orders\"\ncapture = { order_id = \"$.id\" }\n";

    #[test]
    fn a_valid_flow_loads() {
        let e = errors(&format!(
            "{PLACE}[[checks.steps]]\nname = \"cancel\"\nmethod = \"POST\"\nurl = \"http://127.0.0.1:8080/orders/{{{{order_id}}}}/cancel?run={{{{ run_id }}}}\"\nalways-run = true\n"
        ));
        assert!(e.is_empty(), "{e:?}");
    }

    #[test]
    fn an_unknown_variable_is_an_error_naming_the_key() {
        let e = errors(&format!(
            "{PLACE}[[checks.steps]]\nname = \"get\"\nurl = \"http://127.0.0.1:8080/orders/{{{{order}}}}\"\n"
        ));
        assert_eq!(e.len(), 1, "{e:?}");
        assert_eq!(e[0].0, "checks[0].steps[1].url");
        assert!(
            e[0].1.contains("no earlier step captures `{{order}}`"),
            "{e:?}"
        );
    }

    #[test]
    fn a_variable_captured_only_later_is_an_error() {
        let e = errors(&format!(
            "[[checks.steps]]\nname = \"get\"\nurl = \"http://127.0.0.1:8080/orders/{{{{order_id}}}}\"\n{PLACE}"
        ));
        assert_eq!(e[0].0, "checks[0].steps[0].url", "{e:?}");
        assert!(e[0].1.contains("this or a later step"), "{e:?}");
    }

    #[test]
    fn placeholders_in_body_and_headers_are_checked_too() {
        let e = errors(&format!(
            "{PLACE}[[checks.steps]]\nname = \"pay\"\nurl = \"http://127.0.0.1:8080/pay\"\nbody = '{{\"order\": \"{{{{order_id}}}}\", \"card\": \"{{{{card}}}}\"}}'\nheaders = {{ X-Run = \"{{{{nope}}}}\" }}\n"
        ));
        let keys: Vec<&str> = e.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            keys,
            ["checks[0].steps[1].headers", "checks[0].steps[1].body"],
            "{e:?}"
        );
    }

    #[test]
    fn steps_need_unique_names_and_urls_and_parsing_conditions() {
        let e = errors(
            "[[checks.steps]]\nname = \"a\"\nurl = \"http://127.0.0.1/\"\nconditions = [\"status = 200\", \"rows == 1\"]\n[[checks.steps]]\nname = \"a\"\n",
        );
        let keys: Vec<&str> = e.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            keys,
            [
                "checks[0].steps[0].conditions[0]",
                "checks[0].steps[0].conditions[1]",
                "checks[0].steps[1].name",
                "checks[0].steps[1].url"
            ],
            "{e:?}"
        );
    }

    #[test]
    fn poll_within_must_cover_poll_every_and_fit_the_timeout() {
        let e = errors(
            "[[checks.steps]]\nname = \"a\"\nurl = \"http://127.0.0.1/\"\npoll-every = \"2s\"\npoll-within = \"1s\"\n",
        );
        assert_eq!(e[0].0, "checks[0].steps[0].poll-within", "{e:?}");
        let e = errors(
            "timeout = \"5s\"\n[[checks.steps]]\nname = \"a\"\nurl = \"http://127.0.0.1/\"\npoll-within = \"30s\"\n",
        );
        assert_eq!(e[0].0, "checks[0].steps[0].poll-within", "{e:?}");
        assert!(e[0].1.contains("timeout"), "{e:?}");
    }

    #[test]
    fn too_many_steps_are_refused() {
        let one = "[[checks.steps]]\nname = \"s\"\nurl = \"http://127.0.0.1/\"\n";
        let e = errors(&one.repeat(MAX_STEPS + 1));
        assert_eq!(e[0].0, "checks[0].steps", "{e:?}");
    }
}
