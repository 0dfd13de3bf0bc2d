//! `[[backup.repositories]]`: where a repository lives (backend), its password source and its medium.

use std::path::PathBuf;

use super::RepoSpec;
use super::raw::RawRepository;
use super::validate::name;
use crate::config::Secret;
use crate::config::validate::Ctx;

pub(super) fn repository(cx: &mut Ctx, key: &str, r: RawRepository) -> Option<RepoSpec> {
    let name = name(cx, &format!("{key}.name"), r.name);
    let repository = location(cx, &format!("{key}.repository"), r.repository.as_deref());
    let hkey = format!("{key}.repository-hot");
    let repository_hot = match r.repository_hot.as_deref() {
        None => Some(None),
        Some(h) => location(cx, &hkey, Some(h)).map(Some),
    };
    if let (Some(Some(hot)), Some(cold)) = (&repository_hot, &repository)
        && hot == cold
    {
        cx.error(
            &hkey,
            "the hot part must live somewhere else than the repository itself",
        );
    }
    let pkey = format!("{key}.password");
    let password = match (&r.password_credential, &r.password, &r.password_file) {
        (Some(_), Some(_), _) | (Some(_), _, Some(_)) => {
            cx.error(
                &format!("{key}.password-credential"),
                "set one of password, password-file and password-credential",
            );
            None
        }
        (Some(cred), None, None) => match credential(cred) {
            Ok(s) => Some(s),
            Err(msg) => {
                cx.error(&format!("{key}.password-credential"), msg);
                None
            }
        },
        _ => match cx.secret(&pkey, r.password.as_deref(), r.password_file.as_deref()) {
            Some(s) => Some(s),
            None => {
                if r.password.is_none() && r.password_file.is_none() {
                    cx.error(
                        &pkey,
                        "a repository password is required (password, password-file or password-credential)",
                    );
                }
                None
            }
        },
    };
    let medium = r.medium.unwrap_or_else(|| "local-disk".to_string());
    if medium.is_empty()
        || !medium
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        cx.error(
            &format!("{key}.medium"),
            "a medium is a short label such as local-disk, usb-disk or object-store",
        );
    }
    Some(RepoSpec {
        name: name?,
        repository: repository?,
        repository_hot: repository_hot?,
        password: password?,
        medium,
        offsite: r.offsite.unwrap_or(false),
        offline: r.offline.unwrap_or(false),
        options: r.options,
    })
}

/// rustic's repository string for the backends this build has: a local path
/// (resolved against the config's directory), `rest:URL` or `rclone:REMOTE:PATH`.
fn location(cx: &mut Ctx, rkey: &str, raw: Option<&str>) -> Option<String> {
    match raw {
        None => {
            cx.error(
                rkey,
                "where the repository lives is required: a path, `rest:URL` or `rclone:REMOTE:PATH`",
            );
            None
        }
        Some(s) if s.starts_with("rest:http://") || s.starts_with("rest:https://") => {
            Some(s.to_string())
        }
        Some(s) if s.starts_with("rclone:") && s.len() > "rclone:".len() => Some(s.to_string()),
        Some(s) if s.starts_with("opendal:") || s.starts_with("s3:") || s.starts_with("sftp:") => {
            cx.error(
                rkey,
                format!("`{s}`: this build has no opendal backends; reach S3 or SFTP through `rclone:REMOTE:PATH`"),
            );
            None
        }
        Some(s) if s.starts_with("rest:") => {
            cx.error(
                rkey,
                format!("`{s}`: a REST repository is `rest:http://HOST:PORT/PATH`"),
            );
            None
        }
        Some(s) if s.is_empty() || s.contains(':') && !s.starts_with("local:") => {
            cx.error(
                rkey,
                format!("`{s}` is not a repository: a path, `rest:URL` or `rclone:REMOTE:PATH`"),
            );
            None
        }
        Some(s) => {
            let path = s.strip_prefix("local:").unwrap_or(s);
            Some(cx.path(path).display().to_string())
        }
    }
}

/// Reads a systemd credential: `LoadCredential=` puts it in `$CREDENTIALS_DIRECTORY`.
fn credential(name: &str) -> Result<Secret, String> {
    if name.is_empty() || name.contains('/') {
        return Err(format!("`{name}` is not a credential name"));
    }
    let dir = std::env::var_os("CREDENTIALS_DIRECTORY").ok_or_else(|| {
        "CREDENTIALS_DIRECTORY is not set: load the credential with LoadCredential= in the unit"
            .to_string()
    })?;
    let path = PathBuf::from(dir).join(name);
    let raw = std::fs::read_to_string(&path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let value = raw.trim_end_matches(['\n', '\r']);
    if value.is_empty() {
        return Err(format!("{} is empty", path.display()));
    }
    Ok(Secret::new(value))
}
