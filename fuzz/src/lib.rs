//! The fuzz targets of flux, as plain functions over bytes.
//!
//! Each target in `fuzz_targets/` is one line calling a function of this crate, so that the
//! harnesses can be read (and reused) apart from libFuzzer:
//!
//! - [`stored_events::run`]: arbitrary columns of one execution row and its event rows,
//!   written straight into a SQLite database the engine created, then loaded, decoded, shown over
//!   HTTP and replayed through the public API.
//! - [`http_bodies::run`]: one HTTP request (method, path with query, credentials, body) sent in
//!   process to a server's routes; the answer must never be a 500.
//! - [`parse::run`]: configuration text and environment variables, and every `FromStr` of the
//!   public API.
//!
//! Each function panics only when it finds a bug: a panic inside flux, a 500 answer, an error
//! without a message, or a broken round trip.

pub mod http_bodies;
pub mod parse;
pub mod stored_events;
pub mod workflows;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// Limits what one input may cost, so that a run reaches many inputs: the harnesses truncate
/// longer inputs (libFuzzer's `-max_len` says the same).
pub const MAX_INPUT: usize = 64 * 1024;

/// Whether `FLUX_FUZZ_TRACE` is set: the harnesses then print what each input did (to check
/// that seeds reach what they are meant to).
pub fn tracing() -> bool {
    static TRACE: OnceLock<bool> = OnceLock::new();
    *TRACE.get_or_init(|| std::env::var_os("FLUX_FUZZ_TRACE").is_some())
}

/// A Tokio runtime for a harness: current-thread, so that an input runs to its end before the
/// next one starts, with the blocking pool flux uses for storage.
pub fn runtime() -> tokio::runtime::Runtime {
    match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => panic!("the fuzz harness cannot start a Tokio runtime: {e}"),
    }
}

/// This process's scratch directory, where the harnesses keep their databases:
/// `flux-fuzz-<pid>` in `/dev/shm` when there is one (no disk traffic), else in the temporary
/// directory. libFuzzer ends the process without running destructors, so instead each process
/// first removes the directories of earlier processes that are gone.
pub fn scratch() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let shm = Path::new("/dev/shm");
        let base = if shm.is_dir() { shm.to_path_buf() } else { std::env::temp_dir() };
        let procfs = Path::new("/proc/self").exists();
        if let Ok(entries) = std::fs::read_dir(&base).map(|e| e.filter(|_| procfs)) {
            for entry in entries.flatten() {
                let name = entry.file_name();
                let Some(pid) = name.to_str().and_then(|n| n.strip_prefix("flux-fuzz-")) else { continue };
                if pid.parse::<u32>().is_ok() && !Path::new("/proc").join(pid).exists() {
                    let _ = std::fs::remove_dir_all(entry.path());
                }
            }
        }
        let dir = base.join(format!("flux-fuzz-{}", std::process::id()));
        if let Err(e) = std::fs::create_dir_all(&dir) {
            panic!("the fuzz harness cannot create `{}`: {e}", dir.display());
        }
        dir
    })
}
