//! How the CLI talks to a server: through `flux::Client`, its errors shown the CLI's way (the
//! server's detail with the HTTP status, what to do about a missing admin token or a server
//! that cannot be reached).

use flux::{Client, ErrorKind};
use serde_json::Value;

use crate::error::CliError;

/// Shown with a 401 from an `/admin` endpoint.
pub const ADMIN_TOKEN_HINT: &str = "pass the server's admin token with --admin-token or FLUX_SECURITY__ADMIN_TOKEN \
                                    (a server without a configured one prints the token it generated when it starts)";

/// A command-line INPUT as the JSON value to send: the text parsed as JSON, or, when it is not
/// valid JSON, the text itself as a JSON string (so `World` sends `"World"`).
pub fn parse_input(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_string()))
}

/// A client of the server at `server_url`, sending `admin_token` to `/admin` endpoints.
pub fn connect(server_url: &str, admin_token: Option<String>) -> Result<Client, CliError> {
    let client = Client::new(server_url)?;
    Ok(match admin_token {
        Some(token) => client.admin_token(token),
        None => client,
    })
}

/// What the CLI shows for an error of `client`: a server's answer as its detail and status
/// (with the admin token hint for a 401 when `admin`), an unreachable server with what to do.
pub fn failure(client: &Client, error: flux::Error, admin: bool) -> CliError {
    if let Some(status) = error.http_status() {
        let hint = (admin && error.kind() == ErrorKind::Unauthorized).then_some(ADMIN_TOKEN_HINT);
        return CliError::Http { status, detail: error.message().to_string(), hint };
    }
    if error.kind() == ErrorKind::Unreachable {
        let reason = error.chain().last().cloned().unwrap_or_else(|| error.message().to_string());
        return CliError::Unreachable { url: client.url().to_string(), reason };
    }
    CliError::msg(error.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn inputs_are_json_or_else_strings() {
        assert_eq!(parse_input("World"), json!("World"));
        assert_eq!(parse_input("\"World\""), json!("World"));
        assert_eq!(parse_input("50"), json!(50));
        assert_eq!(parse_input("\"50\""), json!("50"));
        assert_eq!(parse_input("-1.5"), json!(-1.5));
        assert_eq!(parse_input("true"), json!(true));
        assert_eq!(parse_input("null"), json!(null));
        assert_eq!(parse_input(r#"{"n": 1, "tags": ["a"]}"#), json!({"n": 1, "tags": ["a"]}));
        assert_eq!(parse_input("[1, 2]"), json!([1, 2]));
        // Not JSON: sent as they are, as strings.
        assert_eq!(parse_input("Hello, World"), json!("Hello, World"));
        assert_eq!(parse_input("{not json"), json!("{not json"));
        assert_eq!(parse_input(""), json!(""));
        assert_eq!(parse_input(" 42 "), json!(42));
        assert_eq!(parse_input("x -> yes"), json!("x -> yes"));
    }

    #[test]
    fn errors_are_shown_the_clis_way() {
        let client = connect("http://127.0.0.1:9", None).expect("valid");
        let answer = flux::Error::new(ErrorKind::NotFound, "no execution `x`").with_http_status(404);
        assert_eq!(failure(&client, answer, false).to_string(), "error: no execution `x` (HTTP 404)");
        let refused = flux::Error::new(ErrorKind::Unauthorized, "missing or wrong admin token").with_http_status(401);
        let shown = failure(&client, refused, true).to_string();
        assert!(shown.ends_with(&format!("hint: {ADMIN_TOKEN_HINT}")), "{shown}");
        let unreachable =
            flux::Error::new(ErrorKind::Unreachable, "could not reach the flux server at http://127.0.0.1:9")
                .with_cause("Connection refused (os error 111)");
        let shown = failure(&client, unreachable, false).to_string();
        assert!(
            shown.starts_with("error: could not reach the flux server at http://127.0.0.1:9 (Connection refused"),
            "{shown}"
        );
        for bad in ["localhost:8000", "ftp://h", "not a url", "http://"] {
            assert!(connect(bad, None).is_err(), "{bad} accepted");
        }
    }
}
