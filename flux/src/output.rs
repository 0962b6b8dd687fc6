//! Output storage: where large outputs live instead of the event log.
//!
//! A task or workflow with `output_storage = "file"` stores its output through the engine's
//! [`OutputStorage`] of that name and records only a reference in its events (and, for a
//! workflow, in the execution row). Replay and [`crate::Execution::output`] read the value back
//! transparently. Engines with a home directory (every SQLite engine) have `"file"`: a
//! content-addressed directory `outputs/` next to the database. Register others with
//! [`crate::Engine::register_output_storage`].
//!
//! In the log, a stored output is a MessagePack extension value (type 70) whose data is the
//! array `[storage name, reference]`.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use crate::error::{Error, ErrorKind, Result};
use crate::value;

/// The MessagePack extension type of an output reference.
pub const REFERENCE_EXT: i8 = 70;

/// A place to keep outputs out of the event log.
pub trait OutputStorage: Send + Sync + 'static {
    /// Stores `value` (MessagePack) and returns the reference to record instead. It must be
    /// durable when this returns.
    fn put(&self, value: &[u8]) -> Result<String>;

    /// The value stored under `reference`.
    fn get(&self, reference: &str) -> Result<Vec<u8>>;
}

/// Content-addressed files in one directory: a value is stored in the file named by the
/// blake3 hash of its bytes, which is also its reference.
#[derive(Debug, Clone)]
pub struct FileOutputStorage {
    dir: PathBuf,
}

impl FileOutputStorage {
    /// Storage in `dir` (created on first write).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        FileOutputStorage { dir: dir.into() }
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn path_of(&self, reference: &str) -> Result<PathBuf> {
        // Only a hash is a reference: nothing else can name a file, let alone one elsewhere.
        if reference.len() != 64 || !reference.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
            return Err(Error::new(ErrorKind::Corrupt, format!("invalid output reference {reference:?}")));
        }
        Ok(self.dir.join(reference))
    }
}

impl OutputStorage for FileOutputStorage {
    fn put(&self, value: &[u8]) -> Result<String> {
        let reference = blake3::hash(value).to_hex().to_string();
        let path = self.path_of(&reference)?;
        if path.exists() {
            return Ok(reference);
        }
        let io = |e: std::io::Error| {
            Error::new(ErrorKind::Storage, format!("cannot store an output in `{}`: {e}", self.dir.display()))
        };
        std::fs::create_dir_all(&self.dir).map_err(io)?;
        let tmp = self.dir.join(format!(".{reference}.{}", uuid::Uuid::new_v4().simple()));
        let written = (|| {
            let mut file = std::fs::File::create(&tmp)?;
            file.write_all(value)?;
            file.sync_all()?;
            std::fs::rename(&tmp, &path)?;
            // The new name (and a new directory's entry in its parent) must reach the disk before
            // the reference to it is recorded.
            sync_dir(&self.dir)?;
            match self.dir.parent() {
                Some(parent) if !parent.as_os_str().is_empty() => sync_dir(parent),
                _ => Ok(()),
            }
        })();
        if written.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        written.map_err(io)?;
        Ok(reference)
    }

    fn get(&self, reference: &str) -> Result<Vec<u8>> {
        let path = self.path_of(reference)?;
        let bytes = std::fs::read(&path).map_err(|e| {
            Error::new(ErrorKind::Storage, format!("cannot read stored output `{}`: {e}", path.display()))
        })?;
        if blake3::hash(&bytes).to_hex().as_str() != reference {
            return Err(Error::new(ErrorKind::Corrupt, format!("stored output `{}` is damaged", path.display())));
        }
        Ok(bytes)
    }
}

/// Flushes a directory's entries to disk (a no-op where directories cannot be opened).
fn sync_dir(dir: &Path) -> std::io::Result<()> {
    match std::fs::File::open(dir) {
        Ok(d) => d.sync_all(),
        Err(_) if cfg!(not(unix)) => Ok(()),
        Err(e) => Err(e),
    }
}

/// The recorded form of an output kept in `storage` under `reference`.
pub(crate) fn encode_reference(storage: &str, reference: &str) -> Result<Vec<u8>> {
    let data = value::to_msgpack(&(storage, reference))?;
    let mut out = Vec::with_capacity(data.len() + 6);
    let len = u32::try_from(data.len()).map_err(|_| Error::new(ErrorKind::Encode, "output reference too long"))?;
    rmp::encode::write_ext_meta(&mut out, len, REFERENCE_EXT)
        .map_err(|e| Error::new(ErrorKind::Encode, format!("cannot encode an output reference: {e}")))?;
    out.extend_from_slice(&data);
    Ok(out)
}

/// The `(storage, reference)` a recorded value points to, if it is a reference.
pub fn reference_of(recorded: &[u8]) -> Option<(String, String)> {
    let mut rest = recorded;
    let meta = rmp::decode::read_ext_meta(&mut rest).ok()?;
    if meta.typeid != REFERENCE_EXT || rest.len() != meta.size as usize {
        return None;
    }
    value::from_msgpack(rest).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_are_content_addressed_and_checked() {
        let dir = tempfile::tempdir().unwrap();
        let storage = FileOutputStorage::new(dir.path().join("outputs"));
        let a = storage.put(b"\xa5hello").unwrap();
        assert_eq!(storage.put(b"\xa5hello").unwrap(), a, "the same value is stored once");
        assert_eq!(storage.get(&a).unwrap(), b"\xa5hello");
        std::fs::write(storage.dir().join(&a), b"tampered").unwrap();
        assert_eq!(storage.get(&a).unwrap_err().kind(), ErrorKind::Corrupt);
    }

    #[test]
    fn references_cannot_name_other_files() {
        let storage = FileOutputStorage::new("/tmp/outputs");
        for bad in ["../../etc/passwd", "/etc/passwd", "", &"A".repeat(64), &format!("{}/..", "a".repeat(61))] {
            let err = storage.get(bad).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Corrupt, "{bad}");
        }
    }

    #[test]
    fn references_round_trip_and_plain_values_are_not_references() {
        let recorded = encode_reference("file", "abc").unwrap();
        assert_eq!(reference_of(&recorded), Some(("file".to_string(), "abc".to_string())));
        assert_eq!(reference_of(&value::to_msgpack("file").unwrap()), None);
        assert_eq!(reference_of(&[]), None);
    }
}
