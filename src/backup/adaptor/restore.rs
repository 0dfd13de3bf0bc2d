//! Restore with bounded memory: file contents blob by blob on a few threads, metadata by rustic's own restore, then every file checked against the snapshot.
//!
//! rustic's `restore` reads and decrypts whole pack ranges ahead of its
//! writers on 20 threads, so its memory grows with the data restored (881 MB
//! for an 800 MB set; rustic #1067). Here each worker holds one blob (a chunk
//! of at most 8 MiB) at a time. Each written file gets the snapshot's size and
//! mtime, which is exactly what rustic's `prepare_restore` accepts as already
//! restored; its `restore` then only creates what is not a regular file
//! (symlinks, devices) and sets ownership, modes and times, directories last.

use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::SystemTime;

use rustic_core::repofile::{BlobType, Node, SnapshotFile};
use rustic_core::{DataId, IndexedFull, LocalDestination, LsOptions, Repository};
use rustic_core::{Progress, RestoreOptions, RusticResult};
use sha2::{Digest, Sha256};

/// What one snapshot's restore did.
#[derive(Debug, Default)]
pub struct Restored {
    pub files: u64,
    pub bytes: u64,
    /// Files whose content on disk does not hash to the snapshot's blobs.
    pub mismatches: Vec<String>,
}

/// Content writers at once: enough to overlap reads, decryption and writes.
fn workers() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get().clamp(2, 8))
}

/// Restores `snap` into `target` and verifies what landed there.
pub fn snapshot<S>(
    r: &Repository<S>,
    snap: &SnapshotFile,
    target: &Path,
    bars: super::Bars,
) -> Result<Restored, String>
where
    S: IndexedFull,
    Repository<S>: Sync,
{
    let e = |what: &str| {
        let what = what.to_string();
        move |err: Box<rustic_core::RusticError>| format!("{what}: {}", super::first_line(&err))
    };
    let node = r
        .node_from_snapshot_and_path(snap, "")
        .map_err(e("read snapshot"))?;
    let ls: Vec<(PathBuf, Node)> = r
        .ls(&node, &LsOptions::default())
        .map_err(e("list snapshot"))?
        .collect::<RusticResult<_>>()
        .map_err(e("list snapshot"))?;

    for (path, n) in &ls {
        if n.is_dir() {
            let dir = target.join(path);
            std::fs::create_dir_all(&dir)
                .map_err(|err| format!("cannot create {}: {err}", dir.display()))?;
        }
    }
    let files: Vec<&(PathBuf, Node)> = ls.iter().filter(|(_, n)| n.is_file()).collect();
    // A hard link's later names are linked by rustic to the first; they must
    // not exist as files of their own when it does.
    let mut seen_inodes = std::collections::HashSet::new();
    let mut first_names = Vec::with_capacity(files.len());
    for item in &files {
        let m = &item.1.meta;
        if m.links > 1
            && m.device_id != 0
            && m.inode != 0
            && !seen_inodes.insert((m.device_id, m.inode))
        {
            let _ = std::fs::remove_file(target.join(&item.0));
        } else {
            first_names.push(*item);
        }
    }
    let p = bars.bytes("restoring file contents");
    p.set_length(first_names.iter().map(|(_, n)| n.meta.size).sum());
    write_contents(r, &first_names, target, &p)?;
    p.finish();

    // Metadata, and whatever is not a regular file, by rustic itself.
    let target_str = format!("{}/", target.display());
    let dest = LocalDestination::new(&target_str, true, false).map_err(e("restore"))?;
    let ropts = RestoreOptions::default();
    let items = || ls.iter().map(|item| Ok(item.clone()));
    let plan = r
        .prepare_restore(&ropts, items(), &dest, false)
        .map_err(e("restore"))?;
    if plan.restore_size > 0 {
        // Only files whose mtime the file system could not hold exactly.
        tracing::debug!(
            bytes = plan.restore_size,
            "rustic restores some contents itself"
        );
    }
    r.restore(plan, &ropts, items(), &dest)
        .map_err(e("restore"))?;

    let mut out = Restored::default();
    for (path, node) in &files {
        let Some(content) = &node.content else {
            continue;
        };
        out.files += 1;
        match verify_file(r, &target.join(path), content) {
            Ok(n) => out.bytes += n,
            Err(why) => out.mismatches.push(format!("{}: {why}", path.display())),
        }
    }
    Ok(out)
}

/// Writes every file's content, `workers()` files at a time, each blob read,
/// decrypted and written before the next is read. The first error stops all.
fn write_contents<S>(
    r: &Repository<S>,
    files: &[&(PathBuf, Node)],
    target: &Path,
    progress: &Progress,
) -> Result<(), String>
where
    S: IndexedFull,
    Repository<S>: Sync,
{
    let next = AtomicUsize::new(0);
    let failed: Mutex<Option<String>> = Mutex::new(None);
    let stop = || failed.lock().map_or(true, |f| f.is_some());
    std::thread::scope(|scope| {
        for _ in 0..workers().min(files.len().max(1)) {
            scope.spawn(|| {
                while !stop() {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some((path, node)) = files.get(i) else {
                        return;
                    };
                    if let Err(why) = write_file(r, &target.join(path), node, progress) {
                        if let Ok(mut f) = failed.lock() {
                            f.get_or_insert(format!("{}: {why}", path.display()));
                        }
                        return;
                    }
                }
            });
        }
    });
    match failed.into_inner() {
        Ok(Some(why)) => Err(why),
        Ok(None) => Ok(()),
        Err(_) => Err("a restore worker panicked".into()),
    }
}

fn write_file<S: IndexedFull>(
    r: &Repository<S>,
    file: &Path,
    node: &Node,
    progress: &Progress,
) -> Result<(), String> {
    if let Some(parent) = file.parent() {
        std::fs::create_dir_all(parent).map_err(|e| format!("cannot create directory: {e}"))?;
    }
    // A read-only file left by an earlier restore would refuse the truncate.
    if let Ok(meta) = std::fs::symlink_metadata(file)
        && (meta.permissions().readonly() || !meta.is_file())
    {
        let _ = std::fs::remove_file(file);
    }
    let mut f = File::create(file).map_err(|e| format!("cannot create: {e}"))?;
    for id in node.content.iter().flatten() {
        let blob = r
            .cat_blob(BlobType::Data, id.to_hex().as_str())
            .map_err(|e| {
                format!(
                    "cannot read blob {}: {}",
                    id.to_hex().as_str(),
                    super::first_line(&e)
                )
            })?;
        f.write_all(&blob)
            .map_err(|e| format!("cannot write: {e}"))?;
        progress.inc(blob.len() as u64);
    }
    if let Some(mtime) = node.meta.mtime {
        f.set_modified(SystemTime::from(mtime))
            .map_err(|e| format!("cannot set mtime: {e}"))?;
    }
    Ok(())
}

/// Reads `file` back chunk by chunk and hashes each against the blob id the
/// snapshot records: a drill proves the bytes on disk, not just that restore ran.
fn verify_file<S: IndexedFull>(
    r: &Repository<S>,
    file: &Path,
    content: &[DataId],
) -> Result<u64, String> {
    let mut f = File::open(file).map_err(|e| format!("cannot open: {e}"))?;
    let mut total = 0u64;
    let mut buf = Vec::new();
    for id in content {
        let len = r
            .get_index_entry(id)
            .map_err(|e| format!("blob not in index: {}", super::first_line(&e)))?
            .data_length() as usize;
        buf.resize(len, 0);
        f.read_exact(&mut buf)
            .map_err(|e| format!("short file: {e}"))?;
        let digest: [u8; 32] = Sha256::digest(&buf).into();
        if rustic_core::Id::new(digest) != **id {
            return Err(format!("content differs at byte {total}"));
        }
        total += len as u64;
    }
    let mut rest = [0u8; 1];
    if f.read(&mut rest).map_err(|e| e.to_string())? != 0 {
        return Err("longer than in the snapshot".into());
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backup::adaptor::{self, Bars, KeyCache, Workspace};

    /// A real repository in a temp dir holding one snapshot of `data/`.
    async fn repository() -> (tempfile::TempDir, Workspace, crate::backup::RepoSpec) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("data")).unwrap();
        let body: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
        std::fs::write(dir.path().join("data/f.bin"), &body).unwrap();
        let file = dir.path().join("lantern.toml");
        let text = "[backup]\n[[backup.repositories]]\nname = \"main\"\nrepository = \"repo\"\npassword = \"unit-test-password\"\n[[backup.sets]]\nname = \"s\"\npaths = [\"data\"]\n";
        let cfg = crate::config::Config::parse(&file, text)
            .unwrap()
            .backup
            .unwrap();
        let ws = Workspace {
            dir: dir.path().join("work"),
            lock_wait: std::time::Duration::from_secs(5),
            bars: Bars { draw: false },
            keys: KeyCache::default(),
        };
        let repo = cfg.repositories[0].clone();
        adaptor::backup(
            ws.clone(),
            repo.clone(),
            cfg.sets[0].clone(),
            "run-unit".into(),
        )
        .await
        .unwrap();
        (dir, ws, repo)
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn verification_names_a_file_whose_bytes_differ_from_the_snapshot() {
        let (dir, ws, repo) = repository().await;
        let target = dir.path().join("restore");
        let root = target.clone();
        tokio::task::spawn_blocking(move || {
            let r = adaptor::open(&ws, &repo, false, None)
                .unwrap()
                .to_indexed()
                .unwrap();
            let snap = r.get_all_snapshots().unwrap().remove(0);
            let done = snapshot(&r, &snap, &root, Bars { draw: false }).unwrap();
            assert_eq!((done.files, done.mismatches.len()), (1, 0), "{done:?}");
            let node = r.node_from_snapshot_and_path(&snap, "").unwrap();
            let ls: Vec<(PathBuf, Node)> = r
                .ls(&node, &LsOptions::default())
                .unwrap()
                .collect::<RusticResult<_>>()
                .unwrap();
            let (path, node) = ls.iter().find(|(_, n)| n.is_file()).unwrap();
            let restored = root.join(path);
            let content = node.content.as_ref().unwrap();
            assert_eq!(verify_file(&r, &restored, content), Ok(300_000));
            // One byte changed in the middle, then one byte too many.
            let mut bytes = std::fs::read(&restored).unwrap();
            bytes[150_000] ^= 1;
            std::fs::write(&restored, &bytes).unwrap();
            let why = verify_file(&r, &restored, content).unwrap_err();
            assert!(why.starts_with("content differs at byte"), "{why}");
            bytes[150_000] ^= 1;
            bytes.push(0);
            std::fs::write(&restored, &bytes).unwrap();
            assert_eq!(
                verify_file(&r, &restored, content),
                Err("longer than in the snapshot".into())
            );
        })
        .await
        .unwrap();
    }
}
