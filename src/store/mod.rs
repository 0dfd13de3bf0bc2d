//! The state store: one SQLite file in the state directory, WAL, migrated at open, one writer.
//!
//! Everything that must survive a restart (incidents, escalation timers, the
//! page outbox, backup runs) lives here. Writes go through the one connection
//! behind a mutex, each on a blocking thread so the runtime never waits on
//! disk. A second lantern on the same state directory is refused by an
//! advisory lock, because two daemons would page twice and race on timers.

mod migrations;

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rusqlite::{Connection, OpenFlags};

pub use migrations::SCHEMA_VERSION;

/// Why the store could not be opened. Each names the path, because the fix is
/// always on the file system.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("state directory {path}: {source}")]
    Directory {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("state directory {path} is in use by another lantern (lock file {lock})")]
    Locked { path: PathBuf, lock: PathBuf },
    #[error(
        "state store {path} is corrupt or not a SQLite database ({detail}); move it aside to start afresh"
    )]
    Corrupt { path: PathBuf, detail: String },
    #[error(
        "state store {path} was written by a newer lantern (schema {found}, this build knows {known})"
    )]
    TooNew {
        path: PathBuf,
        found: i64,
        known: i64,
    },
    #[error("state store {path}: {source}")]
    Sqlite {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error(
        "state store {path} has schema {found} and this build knows {known}: run the same lantern as the daemon"
    )]
    OtherVersion {
        path: PathBuf,
        found: i64,
        known: i64,
    },
    #[error("state store task failed: {0}")]
    Join(String),
}

/// A handle to the store; clones share the one connection.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    // std's Mutex, not tokio's: the lock is only ever taken on a blocking
    // thread, for the span of one short transaction.
    conn: Mutex<Connection>,
    path: PathBuf,
    // Held for the life of the store; dropping it releases the flock.
    // `None` for a store opened beside the daemon that holds it.
    _lock: Option<File>,
}

pub const FILE_NAME: &str = "lantern.db";

impl Store {
    /// Opens (creating if needed) `dir/lantern.db`, checks it, and applies migrations.
    pub fn open(dir: &Path) -> Result<Store, StoreError> {
        std::fs::create_dir_all(dir).map_err(|source| StoreError::Directory {
            path: dir.into(),
            source,
        })?;
        let lock = lock_dir(dir)?;
        let path = dir.join(FILE_NAME);
        let sqlite = |source| StoreError::Sqlite {
            path: path.clone(),
            source,
        };
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let mut conn = Connection::open_with_flags(&path, flags).map_err(|e| classify(&path, e))?;
        // WAL lets readers run beside the writer; FULL makes a committed
        // incident or outbox row survive power loss, at a cost our write rate
        // (a few rows a second at most) never notices.
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(|e| classify(&path, e))?;
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(sqlite)?;
        conn.pragma_update(None, "foreign_keys", true)
            .map_err(sqlite)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(sqlite)?;
        let check: String = conn
            .query_row("PRAGMA quick_check", [], |r| r.get(0))
            .map_err(|e| classify(&path, e))?;
        if check != "ok" {
            return Err(StoreError::Corrupt {
                path,
                detail: check,
            });
        }
        migrations::apply(&mut conn, &path)?;
        Ok(Store {
            inner: Arc::new(Inner {
                conn: Mutex::new(conn),
                path,
                _lock: Some(lock),
            }),
        })
    }

    /// Opens the store a running daemon holds, for a CLI to record its own
    /// rows (backup runs) beside it. SQLite in WAL mode takes a second
    /// writer: each waits out the other's short transactions (busy timeout).
    /// Nothing is created or migrated; the schema must be this build's.
    pub fn open_beside(dir: &Path) -> Result<Store, StoreError> {
        let path = dir.join(FILE_NAME);
        let sqlite = |source| StoreError::Sqlite {
            path: path.clone(),
            source,
        };
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(&path, flags).map_err(|e| classify(&path, e))?;
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(sqlite)?;
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(sqlite)?;
        conn.pragma_update(None, "foreign_keys", true)
            .map_err(sqlite)?;
        let found: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(sqlite)?;
        if found != migrations::SCHEMA_VERSION {
            return Err(StoreError::OtherVersion {
                path,
                found,
                known: migrations::SCHEMA_VERSION,
            });
        }
        Ok(Store {
            inner: Arc::new(Inner {
                conn: Mutex::new(conn),
                path,
                _lock: None,
            }),
        })
    }

    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Runs `f` with the connection on a blocking thread.
    pub async fn call<F, R>(&self, f: F) -> Result<R, StoreError>
    where
        F: FnOnce(&mut Connection) -> rusqlite::Result<R> + Send + 'static,
        R: Send + 'static,
    {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || {
            // A panic while holding the lock poisons it; the connection itself
            // is still consistent (SQLite rolled back), so carry on with it.
            let mut conn = inner.conn.lock().unwrap_or_else(|p| p.into_inner());
            f(&mut conn).map_err(|source| StoreError::Sqlite {
                path: inner.path.clone(),
                source,
            })
        })
        .await
        .map_err(|e| StoreError::Join(e.to_string()))?
    }

    /// Records this daemon's start and returns the run id, and whether the
    /// previous run ended without a clean stop (a crash, a kill -9, a power cut).
    pub async fn record_start(&self, version: &str) -> Result<(i64, bool), StoreError> {
        let version = version.to_string();
        let pid = std::process::id();
        self.call(move |c| {
            let tx = c.transaction()?;
            let previous_unclean: bool = tx
                .query_row(
                    "SELECT stopped_at IS NULL FROM daemon_runs ORDER BY id DESC LIMIT 1",
                    [],
                    |r| r.get(0),
                )
                .or_else(|e| {
                    if e == rusqlite::Error::QueryReturnedNoRows {
                        Ok(false)
                    } else {
                        Err(e)
                    }
                })?;
            tx.execute(
                "INSERT INTO daemon_runs (started_at, version, pid) VALUES (?1, ?2, ?3)",
                rusqlite::params![unix_now(), version, pid],
            )?;
            let id = tx.last_insert_rowid();
            tx.commit()?;
            Ok((id, previous_unclean))
        })
        .await
    }

    /// Marks run `id` as stopped cleanly.
    pub async fn record_stop(&self, id: i64) -> Result<(), StoreError> {
        self.call(move |c| {
            c.execute(
                "UPDATE daemon_runs SET stopped_at = ?1 WHERE id = ?2",
                rusqlite::params![unix_now(), id],
            )?;
            Ok(())
        })
        .await
    }

    /// Records the outcome of a config reload, so `lantern status` and the
    /// timeline can show when the running config last changed.
    pub async fn record_reload(&self, ok: bool, error: Option<String>) -> Result<(), StoreError> {
        self.call(move |c| {
            c.execute(
                "INSERT INTO config_reloads (at, ok, error) VALUES (?1, ?2, ?3)",
                rusqlite::params![unix_now(), ok, error],
            )?;
            Ok(())
        })
        .await
    }
}

/// Seconds since the Unix epoch, the one timestamp format of the store.
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn lock_dir(dir: &Path) -> Result<File, StoreError> {
    let lock_path = dir.join("lantern.lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(|source| StoreError::Directory {
            path: dir.into(),
            source,
        })?;
    match rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => Ok(file),
        Err(rustix::io::Errno::WOULDBLOCK) => Err(StoreError::Locked {
            path: dir.into(),
            lock: lock_path,
        }),
        Err(e) => Err(StoreError::Directory {
            path: dir.into(),
            source: e.into(),
        }),
    }
}

fn classify(path: &Path, e: rusqlite::Error) -> StoreError {
    use rusqlite::ErrorCode;
    match e.sqlite_error_code() {
        Some(ErrorCode::NotADatabase | ErrorCode::DatabaseCorrupt) => StoreError::Corrupt {
            path: path.into(),
            detail: e.to_string(),
        },
        _ => StoreError::Sqlite {
            path: path.into(),
            source: e,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_fresh_store_is_migrated_and_notices_an_unclean_stop() {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = Store::open(dir.path()).unwrap();
            let (id, unclean) = s.record_start("t").await.unwrap();
            assert!(!unclean);
            assert_eq!(id, 1);
            // no record_stop: as if killed
        }
        let s = Store::open(dir.path()).unwrap();
        let (id, unclean) = s.record_start("t").await.unwrap();
        assert!(unclean, "the previous run never recorded a stop");
        s.record_stop(id).await.unwrap();
        drop(s);
        let s = Store::open(dir.path()).unwrap();
        assert!(!s.record_start("t").await.unwrap().1);
        let v: i64 = s
            .call(|c| c.query_row("PRAGMA user_version", [], |r| r.get(0)))
            .await
            .unwrap();
        assert_eq!(v, SCHEMA_VERSION);
        let mode: String = s
            .call(|c| c.query_row("PRAGMA journal_mode", [], |r| r.get(0)))
            .await
            .unwrap();
        assert_eq!(mode, "wal");
    }

    #[tokio::test]
    async fn a_store_opened_beside_the_holder_writes_with_it_and_refuses_another_schema() {
        let dir = tempfile::tempdir().unwrap();
        let holder = Store::open(dir.path()).unwrap();
        let beside = Store::open_beside(dir.path()).unwrap();
        beside.record_start("cli").await.unwrap();
        let starts: i64 = holder
            .call(|c| c.query_row("SELECT count(*) FROM daemon_runs", [], |r| r.get(0)))
            .await
            .unwrap();
        assert_eq!(starts, 1, "the holder sees the row written beside it");
        holder
            .call(|c| c.pragma_update(None, "user_version", SCHEMA_VERSION + 1))
            .await
            .unwrap();
        let err = Store::open_beside(dir.path()).err().expect("other schema");
        assert!(matches!(err, StoreError::OtherVersion { .. }), "{err}");
        let none = tempfile::tempdir().unwrap();
        assert!(
            Store::open_beside(none.path()).is_err(),
            "nothing is created"
        );
        assert!(!none.path().join(FILE_NAME).exists());
    }

    #[test]
    fn a_second_store_on_the_same_directory_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let _first = Store::open(dir.path()).unwrap();
        let err = Store::open(dir.path())
            .err()
            .expect("second open must fail");
        assert!(matches!(err, StoreError::Locked { .. }), "{err}");
    }

    #[test]
    fn a_file_that_is_not_a_database_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(FILE_NAME), vec![0x42u8; 8192]).unwrap();
        let err = Store::open(dir.path())
            .err()
            .expect("garbage must not open");
        assert!(matches!(err, StoreError::Corrupt { .. }), "{err}");
        assert!(err.to_string().contains(FILE_NAME), "{err}");
    }

    #[test]
    fn a_newer_schema_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        drop(Store::open(dir.path()).unwrap());
        let c = Connection::open(dir.path().join(FILE_NAME)).unwrap();
        c.pragma_update(None, "user_version", SCHEMA_VERSION + 1)
            .unwrap();
        drop(c);
        let err = Store::open(dir.path())
            .err()
            .expect("newer schema must not open");
        assert!(matches!(err, StoreError::TooNew { .. }), "{err}");
    }
}

/// Milliseconds since the Unix epoch, the store's format for event times.
pub fn to_ms(t: std::time::SystemTime) -> i64 {
    t.duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

pub fn from_ms(ms: i64) -> std::time::SystemTime {
    std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms.max(0) as u64)
}

/// Serializes a `SystemTime` as RFC 3339 with milliseconds, as the API shows times.
pub mod time_ms {
    use std::time::SystemTime;

    use chrono::{DateTime, SecondsFormat, Utc};
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(t: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
        let t: DateTime<Utc> = (*t).into();
        s.serialize_str(&t.to_rfc3339_opts(SecondsFormat::Millis, true))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<SystemTime, D::Error> {
        let text = String::deserialize(d)?;
        DateTime::parse_from_rfc3339(&text)
            .map(|t| t.with_timezone(&Utc).into())
            .map_err(serde::de::Error::custom)
    }
}
