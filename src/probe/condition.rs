//! Conditions: `"<subject> <op> <value>"` strings, parsed once at config load into a typed form.
//!
//! Readable like Gatus's (`status == 200`, `response-time < 2s`), but with a
//! real JSONPath (RFC 9535, `json($.data.status) == "ok"`), regexes
//! (`body matches "^ok"`), durations, and errors at load that say what is
//! wrong. Subjects: `status`, `body`, `json(PATH)`, `header(NAME)`,
//! `response-time`, `cert-expiry`, `chain-expiry`, `exit-code`, `output`,
//! `value`, `rows`, `info(FIELD)`, `rcode`, `answers`, `connected`, `age`.
//! Operators: `==`, `!=`, `<`, `<=`, `>`, `>=`, `contains`, `!contains`,
//! `matches`, `!matches`.

use std::fmt;
use std::time::{Duration, SystemTime};

use regex::Regex;
use serde_json_path::JsonPath;

use super::facts::{Facts, Scalar, format_number};

/// A parsed condition; `text` is what the user wrote, for messages.
#[derive(Debug, Clone)]
pub struct Condition {
    pub text: String,
    pub subject: Subject,
    op: Op,
    value: Literal,
}

impl serde::Serialize for Condition {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.text)
    }
}

#[derive(Debug, Clone)]
pub enum Subject {
    Status,
    Body,
    Json(Box<JsonPath>),
    Header(String),
    ResponseTime,
    CertExpiry,
    ChainExpiry,
    ExitCode,
    Output,
    Value,
    Rows,
    Info(String),
    Rcode,
    Answers,
    Connected,
    Age,
}

impl Subject {
    /// The subject's name without its argument, as check kinds list them.
    pub fn name(&self) -> &'static str {
        match self {
            Subject::Status => "status",
            Subject::Body => "body",
            Subject::Json(_) => "json",
            Subject::Header(_) => "header",
            Subject::ResponseTime => "response-time",
            Subject::CertExpiry => "cert-expiry",
            Subject::ChainExpiry => "chain-expiry",
            Subject::ExitCode => "exit-code",
            Subject::Output => "output",
            Subject::Value => "value",
            Subject::Rows => "rows",
            Subject::Info(_) => "info",
            Subject::Rcode => "rcode",
            Subject::Answers => "answers",
            Subject::Connected => "connected",
            Subject::Age => "age",
        }
    }

    fn is_duration(&self) -> bool {
        matches!(
            self,
            Subject::ResponseTime | Subject::CertExpiry | Subject::ChainExpiry | Subject::Age
        )
    }

    fn is_number(&self) -> bool {
        matches!(self, Subject::Status | Subject::ExitCode | Subject::Rows)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    Contains,
    NotContains,
    Matches,
    NotMatches,
}

impl Op {
    fn is_ordering(self) -> bool {
        matches!(self, Op::Lt | Op::Le | Op::Gt | Op::Ge)
    }
}

#[derive(Debug, Clone)]
enum Literal {
    Number(f64),
    Duration(Duration),
    Text(String),
    Regex(Regex),
    Bool(bool),
}

// Longest first, so `<=` is not read as `<`.
const OPS: &[(&str, Op)] = &[
    ("!contains", Op::NotContains),
    ("contains", Op::Contains),
    ("!matches", Op::NotMatches),
    ("matches", Op::Matches),
    ("==", Op::Eq),
    ("!=", Op::Ne),
    ("<=", Op::Le),
    (">=", Op::Ge),
    ("<", Op::Lt),
    (">", Op::Gt),
];

impl Condition {
    /// Parses `text`; the error says what is wrong in words a user can act on.
    pub fn parse(text: &str) -> Result<Condition, String> {
        let t = text.trim();
        let (subject, rest) = parse_subject(t)?;
        let rest = rest.trim_start();
        let (op, rest) = OPS
            .iter()
            .find_map(|(tok, op)| rest.strip_prefix(tok).map(|r| (*op, r)))
            .ok_or_else(|| {
                format!("expected an operator (==, !=, <, <=, >, >=, contains, !contains, matches, !matches) after `{}`", subject.name())
            })?;
        let raw = rest.trim();
        if raw.is_empty() {
            return Err("a value is missing after the operator".into());
        }
        let text_value = unquote(raw)?;
        let value = match op {
            Op::Matches | Op::NotMatches => {
                Literal::Regex(Regex::new(&text_value).map_err(|e| format!("invalid regex: {e}"))?)
            }
            _ if subject.is_duration() => {
                Literal::Duration(humantime::parse_duration(&text_value).map_err(|_| {
                    format!(
                        "`{}` compares durations: write e.g. 500ms, 2s, 14d",
                        subject.name()
                    )
                })?)
            }
            _ if matches!(subject, Subject::Connected) => match text_value.as_str() {
                "true" => Literal::Bool(true),
                "false" => Literal::Bool(false),
                _ => return Err("`connected` is true or false".into()),
            },
            _ if subject.is_number() || op.is_ordering() => {
                Literal::Number(text_value.parse().map_err(|_| {
                    format!(
                        "`{text_value}` is not a number, which `{}` needs here",
                        subject.name()
                    )
                })?)
            }
            _ => Literal::Text(text_value),
        };
        if matches!(subject, Subject::Connected) && !matches!(op, Op::Eq | Op::Ne) {
            return Err("`connected` takes == or !=".into());
        }
        if (subject.is_duration() || subject.is_number() || matches!(subject, Subject::Connected))
            && matches!(
                op,
                Op::Contains | Op::NotContains | Op::Matches | Op::NotMatches
            )
        {
            return Err(format!(
                "`{}` is compared with ==, !=, <, <=, > or >=",
                subject.name()
            ));
        }
        Ok(Condition {
            text: t.to_string(),
            subject,
            op,
            value,
        })
    }

    /// Holds, or the reason it does not (what was expected and what was seen).
    pub fn evaluate(&self, facts: &Facts, response_time: Duration) -> Result<(), String> {
        let fail = |seen: String| Err(format!("{} (got {seen})", self.text));
        match (&self.subject, &self.value) {
            (s, Literal::Duration(want)) => {
                let seen = match s {
                    Subject::ResponseTime => Some(response_time),
                    Subject::CertExpiry => facts.cert_expiry.map(remaining),
                    Subject::ChainExpiry => facts.chain_expiry.map(remaining),
                    Subject::Age => facts
                        .age_seconds
                        .map(|a| Duration::from_secs_f64(a.max(0.0))),
                    _ => None,
                };
                let Some(seen) = seen else {
                    return fail(format!("no {}", s.name()));
                };
                if compare(self.op, seen.as_secs_f64(), want.as_secs_f64()) {
                    Ok(())
                } else {
                    fail(humantime::format_duration(round(seen)).to_string())
                }
            }
            (Subject::Connected, Literal::Bool(want)) => {
                let seen = facts.connected.unwrap_or(false);
                if (seen == *want) == (self.op == Op::Eq) {
                    Ok(())
                } else {
                    fail(seen.to_string())
                }
            }
            (Subject::Answers, lit) => {
                let joined = facts.answers.join(",");
                let ok = match (self.op, lit) {
                    (Op::Contains, Literal::Text(t)) => facts.answers.iter().any(|a| a == t),
                    (Op::NotContains, Literal::Text(t)) => !facts.answers.iter().any(|a| a == t),
                    (Op::Eq | Op::Ne, Literal::Text(t)) => {
                        let mut want: Vec<&str> = t.split(',').map(str::trim).collect();
                        let mut seen: Vec<&str> =
                            facts.answers.iter().map(String::as_str).collect();
                        want.sort_unstable();
                        seen.sort_unstable();
                        (want == seen) == (self.op == Op::Eq)
                    }
                    _ => return self.compare_scalar(Some(Scalar::Text(joined)), "answers"),
                };
                if ok {
                    Ok(())
                } else {
                    fail(format!("[{joined}]"))
                }
            }
            (s, _) => {
                let seen = match s {
                    Subject::Status => facts.status.map(|v| Scalar::Number(v.into())),
                    Subject::ExitCode => facts.exit_code.map(|v| Scalar::Number(v.into())),
                    Subject::Rows => facts.rows.map(|v| Scalar::Number(v as f64)),
                    Subject::Body => facts.body.clone().map(Scalar::Text),
                    Subject::Output => facts.output.clone().map(Scalar::Text),
                    Subject::Header(name) => facts.headers.get(name).cloned().map(Scalar::Text),
                    Subject::Info(field) => facts.info.get(field).cloned().map(Scalar::Text),
                    Subject::Rcode => facts.rcode.clone().map(Scalar::Text),
                    Subject::Value => facts.value.clone(),
                    Subject::Json(path) => facts
                        .json()
                        .and_then(|j| path.query(j).first().map(json_scalar)),
                    _ => None,
                };
                self.compare_scalar(seen, s.name())
            }
        }
    }

    fn compare_scalar(&self, seen: Option<Scalar>, name: &str) -> Result<(), String> {
        let Some(seen) = seen else {
            return Err(format!("{} (no {name} to compare)", self.text));
        };
        let ok = match &self.value {
            Literal::Number(want) => match seen.as_f64() {
                Some(n) => compare(self.op, n, *want),
                None => false,
            },
            Literal::Text(want) => {
                let s = seen.as_text();
                match self.op {
                    Op::Eq => equal(&seen, &s, want),
                    Op::Ne => !equal(&seen, &s, want),
                    Op::Contains => s.contains(want.as_str()),
                    Op::NotContains => !s.contains(want.as_str()),
                    _ => false,
                }
            }
            Literal::Regex(re) => re.is_match(&seen.as_text()) == (self.op == Op::Matches),
            Literal::Duration(_) | Literal::Bool(_) => false,
        };
        if ok {
            Ok(())
        } else {
            Err(format!(
                "{} (got {})",
                self.text,
                abbreviate(&seen.as_text())
            ))
        }
    }
}

impl fmt::Display for Condition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// Equality that treats "200" and 200.0 alike.
fn equal(seen: &Scalar, text: &str, want: &str) -> bool {
    if text == want {
        return true;
    }
    matches!((seen.as_f64(), want.trim().parse::<f64>()), (Some(a), Ok(b)) if a == b)
}

fn compare(op: Op, seen: f64, want: f64) -> bool {
    match op {
        Op::Eq => seen == want,
        Op::Ne => seen != want,
        Op::Lt => seen < want,
        Op::Le => seen <= want,
        Op::Gt => seen > want,
        Op::Ge => seen >= want,
        _ => false,
    }
}

fn remaining(expiry: SystemTime) -> Duration {
    expiry
        .duration_since(SystemTime::now())
        .unwrap_or(Duration::ZERO)
}

fn round(d: Duration) -> Duration {
    if d > Duration::from_secs(60) {
        Duration::from_secs(d.as_secs())
    } else {
        Duration::from_millis(d.as_millis() as u64)
    }
}

fn abbreviate(s: &str) -> String {
    const MAX: usize = 80;
    if s.chars().count() <= MAX {
        return format!("`{s}`");
    }
    let cut: String = s.chars().take(MAX).collect();
    format!("`{cut}…`")
}

fn json_scalar(v: &serde_json::Value) -> Scalar {
    match v {
        serde_json::Value::Number(n) => n.as_f64().map(Scalar::Number).unwrap_or(Scalar::Null),
        serde_json::Value::String(s) => Scalar::Text(s.clone()),
        serde_json::Value::Null => Scalar::Null,
        serde_json::Value::Bool(b) => Scalar::Text(b.to_string()),
        other => Scalar::Text(other.to_string()),
    }
}

fn parse_subject(t: &str) -> Result<(Subject, &str), String> {
    let name_end = t
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
        .unwrap_or(t.len());
    let name = &t[..name_end];
    let rest = &t[name_end..];
    let (arg, rest) = if let Some(inner) = rest.strip_prefix('(') {
        let close = matching_paren(inner).ok_or_else(|| format!("`{name}(` is not closed"))?;
        (Some(inner[..close].trim()), &inner[close + 1..])
    } else {
        (None, rest)
    };
    let needs_arg = matches!(name, "json" | "header" | "info");
    match (needs_arg, arg) {
        (true, None) => return Err(format!("`{name}` takes an argument, e.g. {name}(…)")),
        (false, Some(_)) => return Err(format!("`{name}` takes no argument")),
        _ => {}
    }
    let subject = match name {
        "status" => Subject::Status,
        "body" => Subject::Body,
        "json" => {
            let path = arg.unwrap_or_default();
            let parsed =
                JsonPath::parse(path).map_err(|e| format!("invalid JSONPath `{path}`: {e}"))?;
            Subject::Json(Box::new(parsed))
        }
        "header" => Subject::Header(arg.unwrap_or_default().to_ascii_lowercase()),
        "response-time" => Subject::ResponseTime,
        "cert-expiry" => Subject::CertExpiry,
        "chain-expiry" => Subject::ChainExpiry,
        "exit-code" => Subject::ExitCode,
        "output" => Subject::Output,
        "value" => Subject::Value,
        "rows" => Subject::Rows,
        "info" => Subject::Info(arg.unwrap_or_default().to_string()),
        "rcode" => Subject::Rcode,
        "answers" => Subject::Answers,
        "connected" => Subject::Connected,
        "age" => Subject::Age,
        "" => {
            return Err(
                "a condition starts with a subject such as status, body or json($.path)".into(),
            );
        }
        other => return Err(format!("unknown subject `{other}`")),
    };
    Ok((subject, rest))
}

/// Index of the `)` closing an already-opened `(`, skipping quoted text.
fn matching_paren(s: &str) -> Option<usize> {
    let mut depth = 0usize;
    let mut quote: Option<char> = None;
    for (i, c) in s.char_indices() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '"' | '\'') => quote = Some(c),
            (None, '(') => depth += 1,
            (None, ')') if depth == 0 => return Some(i),
            (None, ')') => depth -= 1,
            _ => {}
        }
    }
    None
}

fn unquote(raw: &str) -> Result<String, String> {
    if raw.starts_with('"') {
        serde_json::from_str::<String>(raw)
            .map_err(|_| format!("unterminated or invalid quoted value {raw}"))
    } else {
        Ok(raw.to_string())
    }
}

/// Renders a number the way a user would write it.
pub fn number(n: f64) -> String {
    format_number(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts() -> Facts {
        Facts {
            status: Some(200),
            body: Some(r#"{"status":"ok","items":[{"id":7}],"rate":0.97}"#.into()),
            headers: [("content-type".to_string(), "application/json".to_string())].into(),
            ..Facts::default()
        }
    }

    fn holds(c: &str) -> bool {
        Condition::parse(c)
            .unwrap()
            .evaluate(&facts(), Duration::from_millis(120))
            .is_ok()
    }

    #[test]
    fn http_conditions_hold_or_fail_as_written() {
        assert!(holds("status == 200"));
        assert!(!holds("status != 200"));
        assert!(holds("status < 400"));
        assert!(holds("body contains \"ok\""));
        assert!(holds("body !contains error"));
        assert!(holds("json($.status) == ok"));
        assert!(holds("json($.status) == \"ok\""));
        assert!(holds("json($.items[0].id) == 7"));
        assert!(holds("json($.rate) >= 0.95"));
        assert!(!holds("json($.rate) > 0.99"));
        assert!(holds("header(Content-Type) contains json"));
        assert!(holds("response-time < 500ms"));
        assert!(!holds("response-time < 100ms"));
        assert!(holds("body matches \"^\\\\{\""));
    }

    #[test]
    fn a_failure_says_what_was_seen() {
        let c = Condition::parse("status == 201").unwrap();
        let why = c.evaluate(&facts(), Duration::ZERO).unwrap_err();
        assert_eq!(why, "status == 201 (got `200`)");
        let c = Condition::parse("cert-expiry > 14d").unwrap();
        assert!(
            c.evaluate(&facts(), Duration::ZERO)
                .unwrap_err()
                .contains("no cert-expiry")
        );
    }

    #[test]
    fn certificate_expiry_compares_remaining_time() {
        let f = Facts {
            cert_expiry: Some(SystemTime::now() + Duration::from_secs(10 * 86400)),
            ..Facts::default()
        };
        let c = Condition::parse("cert-expiry > 14d").unwrap();
        assert!(c.evaluate(&f, Duration::ZERO).is_err());
        let c = Condition::parse("cert-expiry > 7d").unwrap();
        assert!(c.evaluate(&f, Duration::ZERO).is_ok());
    }

    #[test]
    fn answers_compare_as_sets() {
        let f = Facts {
            answers: vec!["10.0.0.2".into(), "10.0.0.1".into()],
            ..Facts::default()
        };
        for (c, want) in [
            ("answers contains 10.0.0.1", true),
            ("answers == \"10.0.0.1, 10.0.0.2\"", true),
            ("answers == 10.0.0.1", false),
            ("answers !contains 10.0.0.9", true),
        ] {
            assert_eq!(
                Condition::parse(c)
                    .unwrap()
                    .evaluate(&f, Duration::ZERO)
                    .is_ok(),
                want,
                "{c}"
            );
        }
    }

    #[test]
    fn bad_conditions_are_rejected_with_a_reason() {
        for (c, why) in [
            ("stauts == 200", "unknown subject"),
            ("status = 200", "expected an operator"),
            ("status ==", "value is missing"),
            ("status == ok", "not a number"),
            ("response-time < fast", "durations"),
            ("json($.a == 1", "not closed"),
            ("json($$bad) == 1", "invalid JSONPath"),
            ("body matches \"(\"", "invalid regex"),
            ("header == x", "takes an argument"),
            ("status contains 2", "compared with"),
            ("connected == maybe", "true or false"),
        ] {
            let err = Condition::parse(c).unwrap_err();
            assert!(err.contains(why), "{c}: {err}");
        }
    }
}
