//! Tokens: generated at random, kept as digests, compared in constant time.

use axum::http::HeaderMap;
use subtle::ConstantTimeEq;

use crate::error::{Error, ErrorKind, Result};

/// A secret token, kept only as its blake3 digest: comparing digests in constant time leaks
/// neither the token's bytes nor its length.
pub(crate) struct Token {
    digest: [u8; 32],
}

impl Token {
    /// Keeps the digest of `token`.
    pub(crate) fn new(token: &str) -> Token {
        Token { digest: *blake3::hash(token.as_bytes()).as_bytes() }
    }

    /// Whether `presented` is this token.
    pub(crate) fn matches(&self, presented: &str) -> bool {
        let digest = blake3::hash(presented.as_bytes());
        bool::from(self.digest.ct_eq(digest.as_bytes()))
    }
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

/// The name of the console's session cookie.
pub(crate) const SESSION_COOKIE: &str = "flux_console";

/// The header every request of the console's pages carries (`X-Flux-Console: 1`): a page of
/// another site can neither set it nor read the answer, so a request with it comes from the
/// console itself.
pub(crate) const CONSOLE_HEADER: &str = "x-flux-console";

/// How long a console session lasts.
pub(crate) const SESSION_LIFETIME: std::time::Duration = std::time::Duration::from_secs(12 * 3600);

/// The key console sessions are signed with, derived from the admin token: every server with
/// the same admin token accepts the same sessions, and changing the token ends them all. The
/// cookie holds neither the token nor anything it can be recovered from.
pub(crate) struct SessionKey {
    key: [u8; 32],
}

impl SessionKey {
    /// The key of sessions of admin token `token`.
    pub(crate) fn new(token: &str) -> SessionKey {
        SessionKey { key: blake3::derive_key("flux console session 2026-12 v1", token.as_bytes()) }
    }

    /// A session cookie's value that ends at `expires` (seconds since 1970):
    /// `{expires}.{signature}`.
    pub(crate) fn session(&self, expires: u64) -> String {
        format!("{expires}.{}", self.sign(expires).to_hex())
    }

    /// Whether `value` is a session this key signed that has not ended at `now` (seconds since
    /// 1970).
    pub(crate) fn accepts(&self, value: &str, now: u64) -> bool {
        let Some((expires, signature)) = value.split_once('.') else { return false };
        let Ok(expires) = expires.parse::<u64>() else { return false };
        let Ok(signature) = blake3::Hash::from_hex(signature) else { return false };
        // `blake3::Hash` compares in constant time.
        expires > now && self.sign(expires) == signature
    }

    fn sign(&self, expires: u64) -> blake3::Hash {
        blake3::keyed_hash(&self.key, expires.to_string().as_bytes())
    }
}

impl std::fmt::Debug for SessionKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SessionKey(<redacted>)")
    }
}

/// Seconds since 1970 now.
pub(crate) fn unix_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// The value of cookie `name` among the request's `Cookie` headers.
pub(crate) fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find_map(|(key, value)| (key == name).then_some(value))
}

/// Whether the request comes from a signed-in console page: a session cookie `key` accepts at
/// `now`, and the console's header.
pub(crate) fn console_session(headers: &HeaderMap, key: &SessionKey, now: u64) -> bool {
    let from_console = headers.get(CONSOLE_HEADER).is_some_and(|v| v.as_bytes() == b"1");
    from_console && cookie(headers, SESSION_COOKIE).is_some_and(|value| key.accepts(value, now))
}

/// Whether a request's `Origin`, when it has one, is the host it was sent to (a browser sends
/// it with every state-changing request; a page of another site cannot forge it).
pub(crate) fn same_origin(headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(axum::http::header::ORIGIN) else { return true };
    let host = headers.get(axum::http::header::HOST).and_then(|h| h.to_str().ok());
    let origin_host = origin.to_str().ok().and_then(|o| o.split_once("://")).map(|(_, rest)| rest);
    matches!((origin_host, host), (Some(a), Some(b)) if a.eq_ignore_ascii_case(b))
}

/// A new token: 32 random bytes as 64 hexadecimal digits.
pub(crate) fn random_token() -> Result<String> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)
        .map_err(|e| Error::new(ErrorKind::Config, format!("cannot generate a token: no randomness ({e})")))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// The token of an `Authorization: Bearer <token>` header.
pub(crate) fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(axum::http::header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim()).filter(|t| !t.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_match_only_themselves() {
        let t = Token::new("s3cret");
        assert!(t.matches("s3cret"));
        assert!(!t.matches("s3cre"));
        assert!(!t.matches("s3cret "));
        assert!(!t.matches(""));
        assert_eq!(format!("{t:?}"), "Token(<redacted>)");
        let a = random_token().unwrap();
        assert_eq!(a.len(), 64);
        assert_ne!(a, random_token().unwrap());
    }

    #[test]
    fn console_sessions_are_signed_expire_and_need_the_consoles_header() {
        let key = SessionKey::new("admin");
        let value = key.session(1_000);
        assert!(key.accepts(&value, 999));
        assert!(!key.accepts(&value, 1_000), "ended");
        assert!(!SessionKey::new("other").accepts(&value, 0), "another token's key");
        let forged = value.replacen("1000", "9000", 1);
        assert!(!key.accepts(&forged, 0), "a longer life is not signed");
        for bad in ["", "1000", "x.y", "1000.zz", "1000.", ".abc"] {
            assert!(!key.accepts(bad, 0), "{bad:?}");
        }
        let mut h = HeaderMap::new();
        h.insert("cookie", format!("theme=dark; {SESSION_COOKIE}={value}").parse().unwrap());
        assert_eq!(cookie(&h, SESSION_COOKIE), Some(value.as_str()));
        assert!(!console_session(&h, &key, 0), "no console header");
        h.insert(CONSOLE_HEADER, "1".parse().unwrap());
        assert!(console_session(&h, &key, 0));
        assert!(!console_session(&h, &key, 1_000));
        assert_eq!(format!("{key:?}"), "SessionKey(<redacted>)");
    }

    #[test]
    fn origins_must_be_the_host() {
        let mut h = HeaderMap::new();
        assert!(same_origin(&h), "no Origin: not a browser's cross-site request");
        h.insert("host", "127.0.0.1:8000".parse().unwrap());
        h.insert("origin", "http://127.0.0.1:8000".parse().unwrap());
        assert!(same_origin(&h));
        h.insert("origin", "http://evil.example".parse().unwrap());
        assert!(!same_origin(&h));
        h.insert("origin", "null".parse().unwrap());
        assert!(!same_origin(&h));
    }

    #[test]
    fn bearer_headers_are_read_strictly() {
        let mut h = HeaderMap::new();
        assert_eq!(bearer(&h), None);
        h.insert("authorization", "Bearer abc".parse().unwrap());
        assert_eq!(bearer(&h), Some("abc"));
        h.insert("authorization", "bearer  abc ".parse().unwrap());
        assert_eq!(bearer(&h), Some("abc"));
        h.insert("authorization", "Basic abc".parse().unwrap());
        assert_eq!(bearer(&h), None);
        h.insert("authorization", "Bearer ".parse().unwrap());
        assert_eq!(bearer(&h), None);
    }
}
