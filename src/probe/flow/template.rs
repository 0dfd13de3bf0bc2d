//! Flow placeholders: `{{name}}` found at load, filled at run time, and the per-run `{{run_id}}`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

pub(super) fn is_variable(s: &str) -> bool {
    s.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
        && s.len() <= 64
        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// The variables `{{name}}` in `text`, in order; an unclosed or malformed placeholder is an error.
pub(crate) fn placeholders(text: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(open) = rest.find("{{") {
        let after = &rest[open + 2..];
        let close = after
            .find("}}")
            .ok_or_else(|| format!("`{{{{` without a closing `}}}}` in `{text}`"))?;
        let name = after[..close].trim();
        if !is_variable(name) {
            return Err(format!(
                "`{{{{{name}}}}}` is not a variable name (letters, digits and `_`)"
            ));
        }
        out.push(name.to_string());
        rest = &after[close + 2..];
    }
    Ok(out)
}

/// Fills `{{name}}` placeholders; values go in as they are.
pub(super) fn render(
    text: &str,
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(open) = rest.find("{{") {
        out.push_str(&rest[..open]);
        let after = &rest[open + 2..];
        let close = after
            .find("}}")
            .ok_or_else(|| format!("`{{{{` without a closing `}}}}` in `{text}`"))?;
        let name = after[..close].trim();
        let value = lookup(name).ok_or_else(|| format!("`{{{{{name}}}}}` has no value"))?;
        out.push_str(&value);
        rest = &after[close + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Unique per run and per process, so test orders can be made idempotent.
pub(super) fn run_id() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let millis = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("lantern-{millis:x}-{:x}-{n}", std::process::id())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_found_and_malformed_ones_refused() {
        assert_eq!(
            placeholders("/o/{{id}}/{{ run_id }}").unwrap(),
            ["id", "run_id"]
        );
        assert!(placeholders("/o/{{id").is_err());
        assert!(placeholders("/o/{{a b}}").is_err());
        assert!(placeholders("{self}/x").unwrap().is_empty());
    }

    #[test]
    fn rendering_fills_every_placeholder() {
        let got = render("/o/{{id}}?r={{ run_id }}", |v| Some(format!("<{v}>"))).unwrap();
        assert_eq!(got, "/o/<id>?r=<run_id>");
        assert!(render("/o/{{id}}", |_| None).is_err());
    }

    #[test]
    fn run_ids_differ_between_runs() {
        assert_ne!(run_id(), run_id());
    }
}
