//! `parse`: configuration and every other parser of the public API, on any text.
//!
//! An input is text (invalid UTF-8 is replaced). Before a line `%%`, each line `KEY=VALUE` is an
//! environment variable (any key: flux reads only its own); after it comes the text of a
//! `flux.toml`. Without `%%` the whole input is both: the lines as variables and the text as the
//! file, so that a seed of either kind reaches both parsers. Then:
//!
//! - `Config::from_sources` must return a configuration or a `Config` error with a message;
//!   a configuration it returns has a valid database URL and positive durations;
//! - every line, and every value, goes through `EventType`, `ExecutionState`, `Durability` and
//!   `ErrorKind` (as JSON and MessagePack), `Engine::with_encryption_key` and
//!   `flux::identity::base_id`; what parses must print back to what parses the same.

use std::path::Path;
use std::str::FromStr;
use std::sync::OnceLock;

use flux::store::Durability;
use flux::{Config, Engine, ErrorKind, EventType, ExecutionState};

fn engine() -> &'static Engine {
    static ENGINE: OnceLock<Engine> = OnceLock::new();
    ENGINE.get_or_init(Engine::in_memory)
}

/// Runs one input (see the module documentation).
pub fn run(data: &[u8]) {
    let data = &data[..data.len().min(crate::MAX_INPUT)];
    let text = String::from_utf8_lossy(data);
    let (env_text, file) = match text.split_once("\n%%\n") {
        Some((env, file)) => (env, Some(file)),
        None => match text.strip_prefix("%%\n") {
            Some(file) => ("", Some(file)),
            None => (text.as_ref(), Some(text.as_ref())),
        },
    };
    let env: Vec<(String, String)> = env_text
        .lines()
        .filter_map(|line| line.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.to_string()))
        .collect();

    config(file, env.clone());
    config(None, env.clone());
    if let Some(file) = file {
        config(Some(file), Vec::new());
    }

    for line in text.lines() {
        words(line);
    }
    for (_, value) in &env {
        words(value);
    }
}

fn config(file: Option<&str>, env: Vec<(String, String)>) {
    match Config::from_sources(file.map(|f| (Path::new("flux.toml"), f)), env) {
        Ok(config) => {
            if let Err(e) = config.database() {
                panic!("a configuration that loads has an invalid database url: {e}");
            }
            assert!(!config.workers.lease_timeout.is_zero(), "zero lease timeout accepted");
            assert!(!config.workers.heartbeat_interval.is_zero(), "zero heartbeat interval accepted");
            assert!(config.max_body_bytes > 0, "zero body limit accepted");
            assert!(config.max_header_bytes >= 1024, "header limit under 1 KiB accepted");
            assert!(config.max_connections > 0, "zero connection limit accepted");
            assert!(!config.request_timeout.is_zero(), "zero request timeout accepted");
            let _ = format!("{config:?}");
            if let Some(key) = &config.encryption_key
                && let Err(e) = engine().with_encryption_key(key)
            {
                panic!("a configuration that loads has an encryption key the engine refuses: {e}");
            }
        }
        Err(e) => {
            assert_eq!(e.kind(), ErrorKind::Config, "configuration error of another kind: {e}");
            assert!(!e.to_string().trim().is_empty(), "configuration error without a message");
        }
    }
}

/// Every `FromStr` and string-keyed decoder of the public API on `word`.
fn words(word: &str) {
    round_trip::<EventType>(word, EventType::as_str);
    round_trip::<ExecutionState>(word, ExecutionState::as_str);
    if let Ok(d) = Durability::from_str(word) {
        assert_eq!(Durability::from_str(&d.to_string()).ok(), Some(d), "durability `{word}` does not print back");
    }
    if let Ok(kind) = serde_json::from_value::<ErrorKind>(serde_json::Value::String(word.to_string())) {
        assert!(kind == ErrorKind::Unknown || kind.as_str() == word, "error kind `{word}` read as `{kind}`");
    }
    if let Ok(bytes) = flux::value::to_msgpack(word) {
        let _ = flux::value::from_msgpack::<ErrorKind>(&bytes);
        let _ = flux::value::from_msgpack::<EventType>(&bytes);
        let _ = flux::value::from_msgpack::<ExecutionState>(&bytes);
    }
    if engine().with_encryption_key(word).is_ok() {
        assert!(key_like(word.trim()), "encryption key `{word}` accepted although it is not 64 hexadecimal digits");
    }
    let base = flux::identity::base_id(word);
    assert!(word.starts_with(base), "base id `{base}` is not a prefix of `{word}`");
}

/// Whether `hex` is what flux accepts as a key: 64 hexadecimal digits. Known and reported:
/// flux also takes a `+` in place of the first digit of a pair (`+f` for `0f`), because it
/// reads each pair with `u8::from_str_radix`, which allows a sign; the same 32 bytes result.
fn key_like(hex: &str) -> bool {
    hex.len() == 64
        && hex.as_bytes().chunks(2).all(|pair| match pair {
            [a, b] => (a.is_ascii_hexdigit() || *a == b'+') && b.is_ascii_hexdigit(),
            _ => false,
        })
}

fn round_trip<T: FromStr + Copy + PartialEq + std::fmt::Debug>(word: &str, name: fn(T) -> &'static str) {
    if let Ok(value) = word.parse::<T>() {
        assert_eq!(name(value), word, "`{word}` parses as {value:?}, whose name differs");
    }
}
