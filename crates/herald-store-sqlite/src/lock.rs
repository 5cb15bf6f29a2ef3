//! One Herald process per SQLite file. The node's hub, relay wake-ups and disconnect signals
//! live in the process that serves the file, and the hub trusts that no one else writes the
//! directory; a second `herald serve` (or `herald migrate`) on the same file would break all of
//! that without a word. So the store holds an exclusive advisory lock on `<file>.lock` while it is
//! open: a second opener gets a clear error instead. The lock is given back at close, and by the
//! operating system when the process ends, however it ends.
//!
//! A file of its own, not the database: SQLite takes POSIX record locks on the database, and on
//! some network file systems `flock` is emulated with those.

use std::fs::{File, OpenOptions, TryLockError};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// The lock on a database file, held from open to close.
pub(crate) struct FileLock(Mutex<Option<File>>);

/// Why the lock could not be taken.
#[derive(Debug, thiserror::Error)]
pub(crate) enum LockError {
    #[error(
        "the database {db} is in use by another Herald process (it holds {lock}); a SQLite file \
         is served by one process at a time: stop the other one first"
    )]
    Held { db: String, lock: String },
    #[error("cannot lock {lock}: {source}")]
    Io { lock: String, source: std::io::Error },
}

impl FileLock {
    /// Takes the lock of the database that `url` names and sqlx opens as `db`, without waiting.
    /// An in-memory or temporary database (`sqlite::memory:`, `mode=memory`, no file name) is
    /// private to this process and needs none.
    pub(crate) fn take(url: &str, db: &Path) -> Result<Self, LockError> {
        let name = db.to_string_lossy();
        // A URI file name (`sqlite:file:/path/h.db?…`) names the file after `file:`.
        let file = name.strip_prefix("file:").map_or(&*name, |rest| rest.split('?').next().unwrap_or(rest));
        if url.contains(":memory:") || url.contains("mode=memory") || file.is_empty() {
            return Ok(Self(Mutex::new(None)));
        }
        let db = Path::new(file);
        let path = lock_path(db);
        let lock = path.display().to_string();
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|source| LockError::Io { lock: lock.clone(), source })?;
        match file.try_lock() {
            Ok(()) => Ok(Self(Mutex::new(Some(file)))),
            Err(TryLockError::WouldBlock) => Err(LockError::Held { db: db.display().to_string(), lock }),
            Err(TryLockError::Error(source)) => Err(LockError::Io { lock, source }),
        }
    }

    /// Gives the lock back (closing the file releases it).
    pub(crate) fn release(&self) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).take();
    }
}

fn lock_path(db: &Path) -> PathBuf {
    let mut name = db.as_os_str().to_owned();
    name.push(".lock");
    PathBuf::from(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the URL says matters only for in-memory databases.
    const URL: &str = "sqlite://herald.db";

    #[test]
    fn private_databases_take_no_lock_and_uri_names_lock_their_file() {
        let dir = tempfile::tempdir().unwrap();
        for url in ["sqlite::memory:", "sqlite://?mode=memory", "sqlite://x.db?mode=memory"] {
            let lock = FileLock::take(url, Path::new("file:sqlx-in-memory-1")).unwrap();
            assert!(lock.0.lock().unwrap().is_none(), "{url}");
        }
        assert!(FileLock::take("sqlite://", Path::new("")).unwrap().0.lock().unwrap().is_none());
        let db = dir.path().join("h.db");
        let uri = format!("file:{}?cache=shared", db.display());
        let _held = FileLock::take("sqlite:file:h.db", Path::new(&uri)).unwrap();
        assert!(dir.path().join("h.db.lock").exists(), "the lock sits beside the file");
        assert!(FileLock::take(URL, &db).is_err(), "the same file by its plain name");
    }

    #[test]
    fn a_second_holder_is_refused_until_the_first_lets_go() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("herald.db");
        let first = FileLock::take(URL, &db).expect("the first takes it");
        let refused = FileLock::take(URL, &db).err().expect("the second is refused");
        assert!(matches!(refused, LockError::Held { .. }), "{refused}");
        assert!(refused.to_string().contains("in use by another Herald process"), "{refused}");
        first.release();
        FileLock::take(URL, &db).expect("free again once released");
    }

    #[test]
    fn dropping_the_lock_lets_go_too() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("herald.db");
        drop(FileLock::take(URL, &db).unwrap());
        FileLock::take(URL, &db).expect("free again once dropped");
    }
}
