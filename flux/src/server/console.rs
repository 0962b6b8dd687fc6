//! The console at `/ui`: pages in the browser over the server's own API (docs/design.md §25).
//!
//! Plain HTML, CSS and JavaScript kept in the crate (`flux/assets/console/`), with no build
//! step and nothing loaded from elsewhere, so it works offline and what is served is what is
//! reviewed. The pages call the API under `/ui/api/...` (every route of the API, the same
//! handlers), which answers only a signed-in console:
//!
//! - `GET /ui/login` is a form for the admin token; `POST /ui/login` checks it and sets the
//!   session cookie (`HttpOnly`, `SameSite=Strict`, signed with a key derived from the admin
//!   token, ending after 12 hours); `POST /ui/logout` clears it.
//! - `GET /ui` without a session redirects to the form; `/ui/api/...` without one answers 401.
//! - Every request of the pages carries `X-Flux-Console: 1`, which a page of another site can
//!   neither set without the server's consent (it gives none: no CORS) nor send with a form, and
//!   a request whose `Origin` is another host is refused (403): no cross-site request acts on
//!   the console's behalf.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

use super::auth::{self, SESSION_COOKIE, SESSION_LIFETIME};
use super::respond::ApiError;
use super::state::{Shared, SharedState};

const INDEX_HTML: &str = include_str!("../../assets/console/index.html");
const LOGIN_HTML: &str = include_str!("../../assets/console/login.html");
const CONSOLE_JS: &str = include_str!("../../assets/console/console.js");
const CONSOLE_CSS: &str = include_str!("../../assets/console/console.css");

/// What the console's pages may load and do: their own files and API only.
const CSP: &str =
    "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

/// The console's routes, with `api` (the API's routes) under `/ui/api`, answered only for a
/// signed-in console.
pub(crate) fn routes(shared: &Arc<Shared>, api: Router<Arc<Shared>>) -> Router<Arc<Shared>> {
    let guarded = api.layer(axum::middleware::from_fn_with_state(shared.clone(), guard));
    Router::new()
        .route("/ui", get(index))
        .route("/ui/", get(|| async { redirect("../ui", None) }))
        .route("/ui/login", get(login_form).post(login))
        .route("/ui/logout", post(logout))
        .route("/ui/assets/{file}", get(asset))
        .nest("/ui/api", guarded)
}

/// Lets through only the requests of a signed-in console page from this server's origin.
async fn guard(State(s): SharedState, request: Request, next: Next) -> Response {
    let headers = request.headers();
    if !auth::same_origin(headers) {
        return ApiError::new(StatusCode::FORBIDDEN, "a request from another site is refused").into_response();
    }
    if !auth::console_session(headers, &s.console_key, auth::unix_now()) {
        return ApiError::new(
            StatusCode::UNAUTHORIZED,
            "the console's API needs a console session (sign in at /ui/login) and `X-Flux-Console: 1`",
        )
        .into_response();
    }
    next.run(request).await
}

/// Whether the request carries a session cookie the server signed and that has not ended.
fn signed_in(s: &Shared, headers: &HeaderMap) -> bool {
    auth::cookie(headers, SESSION_COOKIE).is_some_and(|value| s.console_key.accepts(value, auth::unix_now()))
}

/// A page with the console's headers: its own files only, never framed, never cached.
fn page(body: String) -> Response {
    let mut response = ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], body).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    response
}

/// 303 to `location` (relative, so that the console works under any prefix), setting `cookie`.
fn redirect(location: &'static str, cookie: Option<String>) -> Response {
    let mut response = (StatusCode::SEE_OTHER, [(header::LOCATION, location)]).into_response();
    if let Some(value) = cookie.and_then(|c| HeaderValue::from_str(&c).ok()) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// `GET /ui`: the console, or the sign-in form without a session.
async fn index(State(s): SharedState, headers: HeaderMap) -> Response {
    if !signed_in(&s, &headers) {
        return redirect("ui/login", None);
    }
    page(INDEX_HTML.to_string())
}

/// `GET /ui/login`: the sign-in form.
async fn login_form() -> Response {
    page(LOGIN_HTML.replace("<!--message-->", ""))
}

/// `POST /ui/login`: signs in with the admin token (a form field `token`).
async fn login(State(s): SharedState, headers: HeaderMap, body: Result<Bytes, BytesRejection>) -> Response {
    if !auth::same_origin(&headers) {
        return ApiError::new(StatusCode::FORBIDDEN, "a sign-in from another site is refused").into_response();
    }
    let token = body.ok().and_then(|bytes| form_field(&bytes, "token"));
    match token {
        Some(token) if s.admin_token.matches(&token) => {
            let expires = auth::unix_now() + SESSION_LIFETIME.as_secs();
            let cookie = format!(
                "{SESSION_COOKIE}={}; HttpOnly; SameSite=Strict; Max-Age={}",
                s.console_key.session(expires),
                SESSION_LIFETIME.as_secs()
            );
            redirect("../ui", Some(cookie))
        }
        _ => {
            let message = r#"<p class="error" role="alert">That is not the admin token.</p>"#;
            let mut response = page(LOGIN_HTML.replace("<!--message-->", message));
            *response.status_mut() = StatusCode::UNAUTHORIZED;
            response
        }
    }
}

/// `POST /ui/logout`: ends the session in this browser.
async fn logout(headers: HeaderMap) -> Response {
    if !auth::same_origin(&headers) {
        return ApiError::new(StatusCode::FORBIDDEN, "a sign-out from another site is refused").into_response();
    }
    redirect("login", Some(format!("{SESSION_COOKIE}=; HttpOnly; SameSite=Strict; Max-Age=0")))
}

/// `GET /ui/assets/{file}`: the console's script and style sheet (they hold no data).
async fn asset(Path(file): Path<String>) -> Response {
    let (body, kind) = match file.as_str() {
        "console.js" => (CONSOLE_JS, "text/javascript; charset=utf-8"),
        "console.css" => (CONSOLE_CSS, "text/css; charset=utf-8"),
        _ => return ApiError::new(StatusCode::NOT_FOUND, format!("no console file `{file}`")).into_response(),
    };
    let mut response = ([(header::CONTENT_TYPE, kind)], body).into_response();
    response.headers_mut().insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    response
}

/// The value of field `name` of an `application/x-www-form-urlencoded` body.
fn form_field(body: &[u8], name: &str) -> Option<String> {
    let text = std::str::from_utf8(body).ok()?;
    text.split('&').filter_map(|pair| pair.split_once('=')).find(|(key, _)| *key == name).and_then(|(_, v)| decode(v))
}

/// Decodes a form value: `+` is a space, `%XX` a byte; `None` if it is not UTF-8 or malformed.
fn decode(value: &str) -> Option<String> {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_fields_are_decoded() {
        assert_eq!(form_field(b"token=a%2Bb+c&x=1", "token").as_deref(), Some("a+b c"));
        assert_eq!(form_field(b"x=1&token=", "token").as_deref(), Some(""));
        assert_eq!(form_field(b"x=1", "token"), None);
        assert_eq!(form_field(b"token=%zz", "token"), None);
        assert_eq!(form_field(b"token=%4", "token"), None);
        assert_eq!(form_field(b"token=%ff", "token"), None, "not UTF-8");
    }

    #[test]
    fn the_pages_load_nothing_from_elsewhere() {
        for (name, text) in [("index", INDEX_HTML), ("login", LOGIN_HTML), ("js", CONSOLE_JS), ("css", CONSOLE_CSS)] {
            for outside in ["http://", "https://", "//cdn", "<script>", "style=\"", "onclick="] {
                assert!(!text.contains(outside), "{name} has `{outside}`: the pages load their own files only");
            }
        }
    }
}
