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
    /// Takes the lock of the database at `db` without waiting. An in-memory database (its
    /// file name starts with `file:`) is private to this process and needs none.
    pub(crate) fn take(db: &Path) -> Result<Self, LockError> {
        if db.to_str().is_some_and(|name| name.starts_with("file:") || name == ":memory:") {
            return Ok(Self(Mutex::new(None)));
        }
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

    #[test]
    fn a_second_holder_is_refused_until_the_first_lets_go() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("herald.db");
        let first = FileLock::take(&db).expect("the first takes it");
        let refused = FileLock::take(&db).err().expect("the second is refused");
        assert!(matches!(refused, LockError::Held { .. }), "{refused}");
        assert!(refused.to_string().contains("in use by another Herald process"), "{refused}");
        first.release();
        FileLock::take(&db).expect("free again once released");
    }

    #[test]
    fn dropping_the_lock_lets_go_too() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("herald.db");
        drop(FileLock::take(&db).unwrap());
        FileLock::take(&db).expect("free again once dropped");
    }
}
