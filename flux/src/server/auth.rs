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
