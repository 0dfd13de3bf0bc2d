//! Signed, expiring acknowledgement links: `/ack/{token}` where the token says what is acknowledged, by whom, until when.
//!
//! A token is `base64url(claims) "." base64url(HMAC-SHA256(key, claims))`,
//! claims being `kind:id:person:expires:nonce`. The nonce makes every link
//! single-use: the store records it with the acknowledgement, so a replayed
//! link is refused. The key comes from `paging.ack-secret` or is generated
//! once into the state directory (mode 0600), so links survive restarts.

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::hmac;

/// What a link acknowledges.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subject {
    Incident(i64),
    /// A shift handover the incoming primary signs.
    Handover(i64),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claims {
    pub subject: Subject,
    /// The person the link was sent to, if it was sent to one.
    pub person: Option<String>,
    pub expires: SystemTime,
    pub nonce: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("this link is not a valid acknowledgement link")]
    Forged,
    #[error("this link has expired")]
    Expired,
}

/// Signs and checks links with one key.
#[derive(Clone)]
pub struct Signer {
    key: hmac::Key,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Signer(********)")
    }
}

impl Signer {
    pub fn new(secret: &[u8]) -> Signer {
        Signer {
            key: hmac::Key::new(hmac::HMAC_SHA256, secret),
        }
    }

    /// The configured secret, or the state directory's generated key (made on first use).
    pub fn load(
        configured: Option<&crate::config::Secret>,
        state_dir: &Path,
    ) -> std::io::Result<Signer> {
        if let Some(s) = configured {
            return Ok(Signer::new(s.expose().as_bytes()));
        }
        let path = state_dir.join("ack.key");
        match std::fs::read(&path) {
            Ok(k) if k.len() >= 32 => return Ok(Signer::new(&k)),
            Ok(_) | Err(_) => {}
        }
        let mut key = [0u8; 32];
        use std::io::Read;
        std::fs::File::open("/dev/urandom")?.read_exact(&mut key)?;
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&path)?;
        use std::io::Write;
        f.write_all(&key)?;
        f.sync_all()?;
        Ok(Signer::new(&key))
    }

    pub fn sign(
        &self,
        subject: Subject,
        person: Option<&str>,
        ttl: Duration,
        now: SystemTime,
    ) -> String {
        let mut nonce = [0u8; 12];
        // A nonce only has to be unique; time and a counter would do, but the
        // OS generator is at hand and cannot repeat across restarts.
        if let Ok(mut f) = std::fs::File::open("/dev/urandom") {
            use std::io::Read;
            let _ = f.read_exact(&mut nonce);
        }
        let expires = (now + ttl)
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let (kind, id) = match subject {
            Subject::Incident(id) => ('i', id),
            Subject::Handover(id) => ('h', id),
        };
        let claims = format!(
            "{kind}:{id}:{}:{expires}:{}",
            person.unwrap_or("-"),
            super::channel::hex(&nonce)
        );
        let tag = hmac::sign(&self.key, claims.as_bytes());
        format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(claims.as_bytes()),
            URL_SAFE_NO_PAD.encode(tag.as_ref())
        )
    }

    /// Checks signature first (so a forged token learns nothing), then expiry.
    pub fn verify(&self, token: &str, now: SystemTime) -> Result<Claims, Refusal> {
        let (claims_b64, tag_b64) = token.split_once('.').ok_or(Refusal::Forged)?;
        let claims = URL_SAFE_NO_PAD
            .decode(claims_b64)
            .map_err(|_| Refusal::Forged)?;
        let tag = URL_SAFE_NO_PAD
            .decode(tag_b64)
            .map_err(|_| Refusal::Forged)?;
        hmac::verify(&self.key, &claims, &tag).map_err(|_| Refusal::Forged)?;
        let text = String::from_utf8(claims).map_err(|_| Refusal::Forged)?;
        let parts: Vec<&str> = text.split(':').collect();
        let [kind, id, person, expires, nonce] = parts.as_slice() else {
            return Err(Refusal::Forged);
        };
        let id: i64 = id.parse().map_err(|_| Refusal::Forged)?;
        let subject = match *kind {
            "i" => Subject::Incident(id),
            "h" => Subject::Handover(id),
            _ => return Err(Refusal::Forged),
        };
        let expires =
            UNIX_EPOCH + Duration::from_secs(expires.parse().map_err(|_| Refusal::Forged)?);
        if now >= expires {
            return Err(Refusal::Expired);
        }
        Ok(Claims {
            subject,
            person: (*person != "-").then(|| person.to_string()),
            expires,
            nonce: nonce.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signed_link_verifies_until_it_expires_and_a_tampered_one_never() {
        let s = Signer::new(b"0123456789abcdef0123456789abcdef");
        let now = SystemTime::now();
        let t = s.sign(
            Subject::Incident(42),
            Some("zhang-wei"),
            Duration::from_secs(60),
            now,
        );
        let c = s.verify(&t, now).unwrap();
        assert_eq!(c.subject, Subject::Incident(42));
        assert_eq!(c.person.as_deref(), Some("zhang-wei"));
        assert_eq!(
            s.verify(&t, now + Duration::from_secs(61)),
            Err(Refusal::Expired)
        );
        // Another incident id with the same tag: forged.
        let (claims, tag) = t.split_once('.').unwrap();
        let text = String::from_utf8(URL_SAFE_NO_PAD.decode(claims).unwrap()).unwrap();
        let other = URL_SAFE_NO_PAD.encode(text.replacen(":42:", ":43:", 1));
        assert_eq!(
            s.verify(&format!("{other}.{tag}"), now),
            Err(Refusal::Forged)
        );
        // Another key: forged.
        let k2 = Signer::new(b"another key, just as long as it");
        assert_eq!(k2.verify(&t, now), Err(Refusal::Forged));
        assert_eq!(s.verify("garbage", now), Err(Refusal::Forged));
        // Every link is unique, even for the same incident and person.
        let t2 = s.sign(
            Subject::Incident(42),
            Some("zhang-wei"),
            Duration::from_secs(60),
            now,
        );
        assert_ne!(s.verify(&t2, now).unwrap().nonce, c.nonce);
    }

    #[test]
    fn the_generated_key_is_kept_and_private() {
        let dir = tempfile::tempdir().unwrap();
        let a = Signer::load(None, dir.path()).unwrap();
        let b = Signer::load(None, dir.path()).unwrap();
        let now = SystemTime::now();
        let t = a.sign(Subject::Handover(1), None, Duration::from_secs(60), now);
        assert!(b.verify(&t, now).is_ok(), "the key survives a restart");
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join("ack.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}
