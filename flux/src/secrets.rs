//! Secrets: named values kept encrypted in the engine's database.
//!
//! Values are encrypted with XChaCha20-Poly1305 under a 256-bit key, with a random nonce per
//! value and the secret's name as associated data (a ciphertext cannot be moved to another
//! name). The key comes from configuration (`[flux.security] encryption_key` in `flux.toml`, or
//! `FLUX_SECURITY__ENCRYPTION_KEY`: 32 random bytes as 64 hexadecimal digits, such as the output
//! of `openssl rand -hex 32`; a password is refused, since a guessable key would let anyone with
//! a copy of the database test guesses offline), or else from a key file `encryption.key` in the
//! flux home (for [`Engine::open`](crate::Engine::open), the database's directory), created on
//! first use with mode 0600 and refused if other users can read it. Values never appear in
//! events, logs or `Debug` output.
//!
//! Tasks receive secrets through `secret_requests = ["API_KEY"]` and a [`Secrets`] parameter:
//!
//! ```
//! use flux::secrets::Secrets;
//!
//! #[flux::task(secret_requests = ["API_KEY"])]
//! async fn call_api(path: String, secrets: Secrets) -> Result<usize, String> {
//!     let key = secrets.get("API_KEY").ok_or("no key")?;
//!     Ok(path.len() + key.len())
//! }
//!
//! # async fn demo() -> flux::Result<()> {
//! let engine = flux::Engine::in_memory();
//! flux::secrets::set(&engine, "API_KEY", "s3cr3t")?;
//! assert_eq!(flux::secrets::list(&engine)?, ["API_KEY"]);
//! # Ok(()) }
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};

use crate::error::{Error, ErrorKind, Result};
use crate::store::Store;

/// The name of the key file in the flux home.
pub const KEY_FILE: &str = "encryption.key";

/// Where an engine's secret key comes from.
#[derive(Clone)]
pub(crate) enum KeySource {
    /// A configured key.
    Configured([u8; 32]),
    /// A key file, created when missing.
    File(PathBuf),
    /// A random key that lives as long as the engine (in-memory engines).
    Ephemeral,
}

impl fmt::Debug for KeySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeySource::Configured(_) => f.write_str("Configured(<redacted>)"),
            KeySource::File(p) => f.debug_tuple("File").field(p).finish(),
            KeySource::Ephemeral => f.write_str("Ephemeral"),
        }
    }
}

/// Where an engine's secrets are kept: its store, and the key they are encrypted under (read, or
/// created, on first use). Every [`Engine`](crate::Engine) has one ([`Engine::vault`]); the
/// functions of this module take either.
///
/// [`Engine::vault`]: crate::Engine::vault
#[derive(Clone)]
pub struct Vault {
    store: Arc<dyn Store>,
    keys: Arc<Keys>,
}

impl Vault {
    /// Secrets kept in `store`, encrypted under the key `source` gives.
    pub(crate) fn new(store: Arc<dyn Store>, source: KeySource) -> Vault {
        Vault { store, keys: Arc::new(Keys { source, ring: OnceLock::new() }) }
    }

    /// Secrets kept in `store`, under this vault's key (the very same key, even an in-memory one).
    #[cfg(feature = "worker")]
    pub(crate) fn sharing_key(&self, store: Arc<dyn Store>) -> Vault {
        Vault { store, keys: self.keys.clone() }
    }

    /// The cipher, loading (or creating) its key on first use.
    fn keyring(&self) -> Result<&Keyring> {
        if let Some(ring) = self.keys.ring.get() {
            return Ok(ring);
        }
        let loaded = Keyring::load(&self.keys.source)?;
        Ok(self.keys.ring.get_or_init(|| loaded))
    }
}

impl AsRef<Vault> for Vault {
    fn as_ref(&self) -> &Vault {
        self
    }
}

impl fmt::Debug for Vault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Vault").field("store", &self.store.describe()).field("key", &self.keys.source).finish()
    }
}

/// A key's source and, once read, its cipher.
struct Keys {
    source: KeySource,
    ring: OnceLock<Keyring>,
}

/// The cipher of an engine's secrets.
#[derive(Clone)]
struct Keyring {
    cipher: XChaCha20Poly1305,
}

impl fmt::Debug for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Keyring(<redacted>)")
    }
}

impl Keyring {
    fn load(source: &KeySource) -> Result<Keyring> {
        let key: [u8; 32] = match source {
            KeySource::Configured(key) => *key,
            KeySource::File(path) => key_file(path)?,
            KeySource::Ephemeral => random()?,
        };
        Ok(Keyring { cipher: XChaCha20Poly1305::new(&key.into()) })
    }

    fn encrypt(&self, name: &str, value: &str) -> Result<(Vec<u8>, Vec<u8>)> {
        let nonce: [u8; 24] = random()?;
        let sealed = self
            .cipher
            .encrypt(XNonce::from_slice(&nonce), Payload { msg: value.as_bytes(), aad: name.as_bytes() })
            .map_err(|_| Error::new(ErrorKind::Storage, format!("secret `{name}` could not be encrypted")))?;
        Ok((nonce.to_vec(), sealed))
    }

    fn decrypt(&self, name: &str, nonce: &[u8], sealed: &[u8]) -> Result<String> {
        let refused = || {
            Error::new(
                ErrorKind::Corrupt,
                format!("secret `{name}` cannot be decrypted: it was stored under another key, or it is damaged"),
            )
        };
        if nonce.len() != 24 {
            return Err(refused());
        }
        let plain = self
            .cipher
            .decrypt(XNonce::from_slice(nonce), Payload { msg: sealed, aad: name.as_bytes() })
            .map_err(|_| refused())?;
        String::from_utf8(plain).map_err(|_| refused())
    }
}

/// `N` bytes from the operating system's random source, for a key or a nonce.
fn random<const N: usize>() -> Result<[u8; N]> {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes)
        .map_err(|e| Error::new(ErrorKind::Storage, format!("no random bytes for a secret's key or nonce: {e}")))?;
    Ok(bytes)
}

/// Reads the key file at `path`, creating it (mode 0600) with a random key if it is missing.
///
/// A new file is written under a temporary name and published with a hard link, which fails if
/// another process published first; then that process's key is used, so all processes agree.
fn key_file(path: &Path) -> Result<[u8; 32]> {
    match std::fs::read_to_string(path) {
        Ok(text) => return parse_key(path, &text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => {
            return Err(Error::new(ErrorKind::Config, format!("cannot read key file `{}`: {e}", path.display())));
        }
    }
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let io = |what: &str, e: std::io::Error| {
        Error::new(ErrorKind::Config, format!("cannot {what} key file `{}`: {e}", path.display()))
    };
    std::fs::create_dir_all(dir).map_err(|e| io("create the directory of the", e))?;
    let key: [u8; 32] = random()?;
    let tmp = dir.join(format!(".{KEY_FILE}.{}.{}", std::process::id(), uuid::Uuid::new_v4().simple()));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let written = (|| {
        let mut file = options.open(&tmp)?;
        writeln!(file, "{}", hex(&key))?;
        file.sync_all()
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(io("write the", e));
    }
    let published = std::fs::hard_link(&tmp, path);
    let _ = std::fs::remove_file(&tmp);
    match published {
        Ok(()) => Ok(key),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            let text = std::fs::read_to_string(path).map_err(|e| io("read the", e))?;
            parse_key(path, &text)
        }
        Err(e) => Err(io("create the", e)),
    }
}

fn parse_key(path: &Path, text: &str) -> Result<[u8; 32]> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path).map(|m| m.permissions().mode()).unwrap_or(0o600);
        if mode & 0o077 != 0 {
            return Err(Error::new(
                ErrorKind::Config,
                format!(
                    "key file `{}` can be read by other users (mode {:o}); make it private with `chmod 600`",
                    path.display(),
                    mode & 0o777
                ),
            ));
        }
    }
    decode_hex_key(text).ok_or_else(|| {
        Error::new(
            ErrorKind::Config,
            format!("key file `{}` does not hold a key (64 hexadecimal digits)", path.display()),
        )
    })
}

fn decode_hex_key(text: &str) -> Option<[u8; 32]> {
    let text = text.trim();
    if text.len() != 64 || !text.is_ascii() {
        return None;
    }
    let mut key = [0u8; 32];
    for (i, byte) in key.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(key)
}

/// Reads a configured key: 32 bytes as 64 hexadecimal digits.
pub(crate) fn parse_configured_key(text: &str) -> Result<[u8; 32]> {
    decode_hex_key(text).ok_or_else(|| {
        Error::new(
            ErrorKind::Config,
            "the encryption key (`[flux.security] encryption_key`, `FLUX_SECURITY__ENCRYPTION_KEY`) must be 32 \
             random bytes written as 64 hexadecimal digits, for example the output of `openssl rand -hex 32`",
        )
    })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn check_name(name: &str) -> Result<()> {
    if name.is_empty() || name.len() > 256 || name.chars().any(char::is_control) {
        return Err(Error::new(
            ErrorKind::InvalidState,
            format!("invalid secret name {name:?}: use 1 to 256 printable characters"),
        ));
    }
    Ok(())
}

/// Stores (or replaces) the secret `name` in an engine (or a [`Vault`]).
pub fn set(vault: &(impl AsRef<Vault> + ?Sized), name: &str, value: &str) -> Result<()> {
    let vault = vault.as_ref();
    check_name(name)?;
    let (nonce, sealed) = vault.keyring()?.encrypt(name, value)?;
    vault.store.secret_put(name, &nonce, &sealed)
}

/// The value of the secret `name`, if it is set.
pub fn get(vault: &(impl AsRef<Vault> + ?Sized), name: &str) -> Result<Option<String>> {
    let vault = vault.as_ref();
    match vault.store.secret_get(name)? {
        Some((nonce, sealed)) => Ok(Some(vault.keyring()?.decrypt(name, &nonce, &sealed)?)),
        None => Ok(None),
    }
}

/// The names of all secrets, sorted.
pub fn list(vault: &(impl AsRef<Vault> + ?Sized)) -> Result<Vec<String>> {
    let mut names = vault.as_ref().store.secret_list()?;
    names.retain(|name| name != KEY_CHECK);
    Ok(names)
}

/// What a store shared by several servers keeps to check that they encrypt its secrets under one
/// key (see `check_shared_key`). No secret can be named so: the name holds a control character.
const KEY_CHECK: &str = "\u{1}flux key check";

/// Checks that `vault`'s key is the one the other engines on its store use: the first to check
/// stores a value encrypted under its key, the others must be able to decrypt it. Fails with
/// [`ErrorKind::Config`] otherwise (an engine with another key could not read the secrets the
/// others stored, nor they its).
///
/// A vault whose key lives only in this process (an engine with no key and no home) is not
/// checked: nothing it encrypts outlives it anyway.
#[cfg(feature = "server")]
pub(crate) fn check_shared_key(vault: &Vault) -> Result<()> {
    if matches!(vault.keys.source, KeySource::Ephemeral) {
        return Ok(());
    }
    let ring = vault.keyring()?;
    if vault.store.secret_get(KEY_CHECK)?.is_none() {
        let (nonce, sealed) = ring.encrypt(KEY_CHECK, "flux")?;
        vault.store.secret_put(KEY_CHECK, &nonce, &sealed)?;
    }
    // Read back: of two engines that stored their own at once, one finds the other's.
    let stored = vault.store.secret_get(KEY_CHECK)?;
    match stored.map(|(nonce, sealed)| ring.decrypt(KEY_CHECK, &nonce, &sealed)) {
        Some(Ok(_)) => Ok(()),
        _ => Err(Error::new(
            ErrorKind::Config,
            format!(
                "the secrets in {} are encrypted under another key than this engine's: give every server sharing \
                 the database the same key (`FLUX_SECURITY__ENCRYPTION_KEY`, or the same key file)",
                vault.store.describe()
            ),
        )),
    }
}

/// Removes the secret `name`; returns whether it existed.
pub fn remove(vault: &(impl AsRef<Vault> + ?Sized), name: &str) -> Result<bool> {
    vault.as_ref().store.secret_remove(name)
}

/// The secrets a task or workflow asked for. `Debug` shows only their names.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secrets {
    values: BTreeMap<String, String>,
}

impl Secrets {
    /// The value of `name`, if it was requested and is set.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.values.get(name).map(String::as_str)
    }

    /// The names held.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.values.keys().map(String::as_str)
    }

    /// How many secrets are held.
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// Whether none is held.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }
}

impl fmt::Debug for Secrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.values.keys().map(|k| (k, "<redacted>"))).finish()
    }
}

/// Fetches the requested secrets; an error lists every one that is not set.
pub(crate) fn fetch(vault: &Vault, requested: &[&str], requester: &str) -> Result<Secrets> {
    let mut values = BTreeMap::new();
    let mut missing = Vec::new();
    for name in requested {
        match get(vault, name)? {
            Some(v) => {
                values.insert((*name).to_string(), v);
            }
            None => missing.push(*name),
        }
    }
    if !missing.is_empty() {
        return Err(Error::new(
            ErrorKind::MissingSecret,
            format!("{requester} needs secrets that are not set: {}", missing.join(", ")),
        ));
    }
    Ok(Secrets { values })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_round_trip_and_are_bound_to_their_name() {
        let ring = Keyring::load(&KeySource::Configured([7; 32])).unwrap();
        let (nonce, sealed) = ring.encrypt("A", "value-1").unwrap();
        assert!(!sealed.windows(7).any(|w| w == b"value-1"));
        assert_eq!(ring.decrypt("A", &nonce, &sealed).unwrap(), "value-1");
        assert_eq!(ring.decrypt("B", &nonce, &sealed).unwrap_err().kind(), ErrorKind::Corrupt);
        let other = Keyring::load(&KeySource::Configured([8; 32])).unwrap();
        assert!(other.decrypt("A", &nonce, &sealed).is_err());
    }

    #[test]
    fn key_files_are_created_once_private_and_shared() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("home").join(KEY_FILE);
        let keys: Vec<[u8; 32]> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..8).map(|_| s.spawn(|| key_file(&path).unwrap())).collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert!(keys.windows(2).all(|w| w[0] == w[1]), "every opener got the same key");
        assert_eq!(key_file(&path).unwrap(), keys[0]);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        }
        let leftovers = std::fs::read_dir(path.parent().unwrap()).unwrap().count();
        assert_eq!(leftovers, 1, "no temporary files are left behind");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
            let err = key_file(&path).unwrap_err().to_string();
            assert!(err.contains("can be read by other users (mode 644)"), "{err}");
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        }
        std::fs::write(&path, "not a key").unwrap();
        assert!(key_file(&path).unwrap_err().to_string().contains("does not hold a key"));
    }

    #[test]
    fn configured_keys_must_be_random_bytes() {
        let hex = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
        assert_eq!(parse_configured_key(hex).unwrap()[1], 0x11);
        let almost = format!("{}zz", &hex[..62]);
        for weak in ["hunter2", "", &hex[..62], almost.as_str()] {
            let err = parse_configured_key(weak).unwrap_err().to_string();
            assert!(err.contains("64 hexadecimal digits"), "{err}");
            assert!(weak.is_empty() || !err.contains(weak), "the error must not echo the key: {err}");
        }
    }

    #[test]
    fn debug_output_hides_values() {
        let secrets = Secrets { values: [("TOKEN".to_string(), "hunter2".to_string())].into_iter().collect() };
        let shown = format!("{secrets:?}");
        assert!(shown.contains("TOKEN") && !shown.contains("hunter2"), "{shown}");
        assert_eq!(format!("{:?}", KeySource::Configured([0xab; 32])), "Configured(<redacted>)");
    }
}
