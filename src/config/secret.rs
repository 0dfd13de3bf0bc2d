//! The secret type and the `${ENV}` / `*-file` references that fill it.

use std::fmt;
use std::path::Path;

use serde::{Serialize, Serializer};

/// What every rendering of a secret shows instead of its value.
pub const MASK: &str = "********";

/// A credential. `Debug`, `Display` and `Serialize` print only [`MASK`], so a
/// secret cannot leak through logs, `check-config` or an API response; the value
/// is reachable only through [`Secret::expose`], which is easy to grep for.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret({MASK})")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(MASK)
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(MASK)
    }
}

/// Expands every `${NAME}` in `text` from `lookup`. `$$` is a literal `$`; a
/// `$` not followed by `{` or `$` is kept as it is, so passwords with a lone
/// dollar sign still work.
pub fn expand_env(text: &str, lookup: impl Fn(&str) -> Option<String>) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos + 1..];
        if let Some(stripped) = after.strip_prefix('$') {
            out.push('$');
            rest = stripped;
        } else if let Some(body) = after.strip_prefix('{') {
            let end = body
                .find('}')
                .ok_or_else(|| "unterminated `${` reference".to_string())?;
            let name = &body[..end];
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err(format!(
                    "`${{{name}}}` is not a valid environment variable name"
                ));
            }
            let value =
                lookup(name).ok_or_else(|| format!("environment variable `{name}` is not set"))?;
            out.push_str(&value);
            rest = &body[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// Reads the process environment; the one lookup used outside tests.
pub fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

/// Resolves a secret given inline (with `${ENV}` references) or by a file path
/// (which may itself use `${CREDENTIALS_DIRECTORY}` and friends). Exactly one
/// of the two may be set. Returns `Ok(None)` when neither is.
pub fn resolve(
    inline: Option<&str>,
    file: Option<&str>,
    base: &Path,
) -> Result<Option<Secret>, (Which, String)> {
    match (inline, file) {
        (Some(_), Some(_)) => Err((
            Which::File,
            "set either the value or the `-file` key, not both".into(),
        )),
        (Some(v), None) => {
            let value = expand_env(v, process_env).map_err(|e| (Which::Inline, e))?;
            if value.is_empty() {
                return Err((Which::Inline, "the secret is empty".into()));
            }
            Ok(Some(Secret(value)))
        }
        (None, Some(f)) => {
            let path = expand_env(f, process_env).map_err(|e| (Which::File, e))?;
            let path = base.join(path);
            let raw = std::fs::read_to_string(&path)
                .map_err(|e| (Which::File, format!("cannot read {}: {e}", path.display())))?;
            // Files written by `echo` end in a newline that is not part of the secret.
            let value = raw.trim_end_matches(['\n', '\r']).to_string();
            if value.is_empty() {
                return Err((Which::File, format!("{} is empty", path.display())));
            }
            Ok(Some(Secret(value)))
        }
        (None, None) => Ok(None),
    }
}

/// Which of the two keys of a secret an error is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Which {
    Inline,
    File,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "TOKEN" => Some("s3cret".into()),
            "DIR" => Some("/run/creds".into()),
            _ => None,
        }
    }

    #[test]
    fn debug_display_and_serialize_never_show_the_value() {
        let s = Secret::new("hunter2");
        assert!(!format!("{s:?}").contains("hunter2"));
        assert!(!format!("{s}").contains("hunter2"));
        assert_eq!(serde_json::to_string(&s).unwrap(), format!("\"{MASK}\""));
        assert_eq!(s.expose(), "hunter2");
    }

    #[test]
    fn env_references_are_expanded_and_missing_ones_are_errors() {
        assert_eq!(expand_env("${TOKEN}", env).unwrap(), "s3cret");
        assert_eq!(expand_env("${DIR}/api", env).unwrap(), "/run/creds/api");
        assert_eq!(expand_env("a$b$$c", env).unwrap(), "a$b$c");
        assert!(expand_env("${NOPE}", env).unwrap_err().contains("NOPE"));
        assert!(expand_env("${TOKEN", env).is_err());
        assert!(expand_env("${A-B}", env).is_err());
    }

    #[test]
    fn a_secret_file_loses_its_trailing_newline() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("t"), "abc\n").unwrap();
        let s = resolve(None, Some("t"), dir.path()).unwrap().unwrap();
        assert_eq!(s.expose(), "abc");
        assert_eq!(
            resolve(Some("x"), Some("t"), dir.path()).unwrap_err().0,
            Which::File
        );
        assert!(resolve(None, Some("missing"), dir.path()).is_err());
        assert!(resolve(None, None, dir.path()).unwrap().is_none());
    }
}
