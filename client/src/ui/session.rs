//! The rules every request to `candor ui` passes, in order:
//!
//! 1. The `Host` header names this server (`127.0.0.1:PORT` or `localhost:PORT`): a page on
//!    another site that rebinds its DNS name to 127.0.0.1 is refused (421).
//! 2. `GET /launch?token=…` trades the one-time launch token printed by `candor ui` for the
//!    session cookie (HttpOnly, SameSite=Strict); the token is dead afterwards.
//! 3. Every other request needs that cookie, or gets 401 and no content.
//! 4. A request that changes anything (any method but GET and HEAD) needs a same-origin
//!    `Origin` (or, without one, `Sec-Fetch-Site: same-origin`) and the session's form token
//!    in its form body (403 otherwise).
//! 5. Every response, refusals included, carries the security headers of [`HEADERS`].
//!
//! Secrets (launch token, session id, form token) come from the OS RNG; only their BLAKE3
//! hashes are kept for comparison, and `blake3::Hash` compares in constant time.

use crate::commands::random;
use anyhow::Result;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::header::{self, HeaderMap, HeaderValue};
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

/// The largest form body accepted (a shared note holds up to 1 MiB of text, form-encoded).
pub const MAX_FORM_BYTES: usize = 4 * 1024 * 1024;

/// The name of the hidden form field that carries the per-session form token.
pub const FORM_TOKEN_FIELD: &str = "form_token";

/// Headers set on every response.
pub const HEADERS: &[(&str, &str)] = &[
    (
        "content-security-policy",
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
         connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    ),
    // Not `no-referrer`: with it Chromium sends `Origin: null` on same-origin form posts.
    ("referrer-policy", "same-origin"),
    ("cache-control", "no-store"),
    ("x-content-type-options", "nosniff"),
    ("x-frame-options", "DENY"),
    ("cross-origin-opener-policy", "same-origin"),
    ("cross-origin-resource-policy", "same-origin"),
    (
        "permissions-policy",
        "camera=(), microphone=(), geolocation=(), interest-cohort=()",
    ),
];

/// A message shown once on the next page (post/redirect/get).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Flash {
    /// Whether it reports a failure.
    pub error: bool,
    /// The words.
    pub text: String,
}

/// What a handler learns about the session of its request.
#[derive(Clone, Debug)]
pub struct SessionInfo {
    /// The form token every form of this session carries.
    pub form_token: String,
}

struct Session {
    id: blake3::Hash,
    form_token: String,
    flash: Option<Flash>,
}

/// The launch token, the one session, and the addresses this server answers to.
pub struct Guard {
    addr: SocketAddr,
    hosts: Vec<String>,
    origins: Vec<String>,
    cookie: String,
    launch_token: String,
    launch: Mutex<Option<blake3::Hash>>,
    session: Mutex<Option<Session>>,
}

impl Guard {
    /// A guard for a server bound to `addr`, with a fresh launch token.
    pub fn new(addr: SocketAddr) -> Result<Self> {
        let launch_token = hex::encode(random::<32>()?);
        let port = addr.port();
        let ip = match addr {
            SocketAddr::V4(v4) => v4.ip().to_string(),
            SocketAddr::V6(v6) => format!("[{}]", v6.ip()),
        };
        let hosts = vec![format!("{ip}:{port}"), format!("localhost:{port}")];
        let origins = hosts.iter().map(|h| format!("http://{h}")).collect();
        Ok(Guard {
            addr,
            hosts,
            origins,
            cookie: format!("candor_session_{port}"),
            launch: Mutex::new(Some(blake3::hash(launch_token.as_bytes()))),
            launch_token,
            session: Mutex::new(None),
        })
    }

    /// The address to open: it carries the one-time launch token.
    pub fn launch_url(&self) -> String {
        format!(
            "http://{}/launch?token={}",
            self.hosts[0], self.launch_token
        )
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Leaves a message for the next page of the session.
    pub fn flash(&self, error: bool, text: impl Into<String>) {
        if let Some(session) = self.lock_session().as_mut() {
            session.flash = Some(Flash {
                error,
                text: text.into(),
            });
        }
    }

    /// Takes the message left for this page, if any.
    pub fn take_flash(&self) -> Option<Flash> {
        self.lock_session().as_mut().and_then(|s| s.flash.take())
    }

    fn lock_session(&self) -> std::sync::MutexGuard<'_, Option<Session>> {
        self.session.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Trades the launch token for a new session; `None` if the token is wrong or was used.
    fn exchange(&self, token: &str) -> Result<Option<String>> {
        let mut launch = self.launch.lock().unwrap_or_else(|p| p.into_inner());
        match *launch {
            Some(expected) if blake3::hash(token.as_bytes()) == expected => {}
            _ => return Ok(None),
        }
        *launch = None;
        let id = hex::encode(random::<32>()?);
        *self.lock_session() = Some(Session {
            id: blake3::hash(id.as_bytes()),
            form_token: hex::encode(random::<32>()?),
            flash: None,
        });
        Ok(Some(format!(
            "{}={id}; HttpOnly; SameSite=Strict; Path=/",
            self.cookie
        )))
    }

    fn host_allowed(&self, headers: &HeaderMap) -> bool {
        headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .is_some_and(|h| self.hosts.iter().any(|allowed| allowed == h))
    }

    /// The session's form token, if the request carries the session cookie.
    fn session_of(&self, headers: &HeaderMap) -> Option<String> {
        let session = self.lock_session();
        let session = session.as_ref()?;
        let presented = headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .filter_map(|pair| pair.trim().split_once('='))
            .filter(|(name, _)| *name == self.cookie)
            .any(|(_, value)| blake3::hash(value.as_bytes()) == session.id);
        presented.then(|| session.form_token.clone())
    }

    fn same_origin(&self, headers: &HeaderMap) -> bool {
        match headers.get(header::ORIGIN).map(|o| o.to_str()) {
            Some(Ok(origin)) => self.origins.iter().any(|allowed| allowed == origin),
            Some(Err(_)) => false,
            None => headers
                .get("sec-fetch-site")
                .is_some_and(|site| site == "same-origin"),
        }
    }
}

/// The middleware that applies the rules above to every request.
pub async fn check(State(guard): State<Arc<Guard>>, request: Request, next: Next) -> Response {
    let mut response = decide(&guard, request, next).await;
    let headers = response.headers_mut();
    for (name, value) in HEADERS {
        headers.insert(*name, HeaderValue::from_static(value));
    }
    response
}

fn refuse(status: StatusCode, text: &'static str) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        text,
    )
        .into_response()
}

async fn decide(guard: &Guard, request: Request, next: Next) -> Response {
    if !guard.host_allowed(request.headers()) {
        return refuse(
            StatusCode::MISDIRECTED_REQUEST,
            "This address is not the one `candor ui` printed.",
        );
    }
    if request.uri().path() == "/launch" && request.method() == Method::GET {
        let token = request
            .uri()
            .query()
            .and_then(|q| serde_urlencoded::from_str::<Vec<(String, String)>>(q).ok())
            .and_then(|pairs| pairs.into_iter().find(|(k, _)| k == "token"))
            .map(|(_, v)| v)
            .unwrap_or_default();
        return match guard.exchange(&token) {
            Ok(Some(cookie)) => {
                let mut response = Redirect::to("/").into_response();
                if let Ok(value) = HeaderValue::from_str(&cookie) {
                    response.headers_mut().insert(header::SET_COOKIE, value);
                }
                response
            }
            Ok(None) => refuse(
                StatusCode::UNAUTHORIZED,
                "This link was already used, or is not the one `candor ui` printed. \
                 Stop `candor ui` (Ctrl-C) and start it again for a new link.",
            ),
            Err(_) => refuse(
                StatusCode::INTERNAL_SERVER_ERROR,
                "The random number generator failed.",
            ),
        };
    }
    let Some(form_token) = guard.session_of(request.headers()) else {
        return refuse(
            StatusCode::UNAUTHORIZED,
            "Open Candor with the address `candor ui` printed.",
        );
    };
    let request = if request.method() == Method::GET || request.method() == Method::HEAD {
        request
    } else {
        if !guard.same_origin(request.headers()) {
            return refuse(
                StatusCode::FORBIDDEN,
                "Refused: this request did not come from Candor's own pages.",
            );
        }
        let (parts, body) = request.into_parts();
        let Ok(bytes) = axum::body::to_bytes(body, MAX_FORM_BYTES).await else {
            return refuse(StatusCode::PAYLOAD_TOO_LARGE, "That form is too large.");
        };
        if !form_token_matches(&bytes, &form_token) {
            return refuse(
                StatusCode::FORBIDDEN,
                "Refused: the form is out of date. Go back, reload the page and try again.",
            );
        }
        Request::from_parts(parts, Body::from(bytes))
    };
    let mut request = request;
    request.extensions_mut().insert(SessionInfo { form_token });
    next.run(request).await
}

fn form_token_matches(body: &Bytes, expected: &str) -> bool {
    let Ok(pairs) = serde_urlencoded::from_bytes::<Vec<(String, String)>>(body) else {
        return false;
    };
    let expected = blake3::hash(expected.as_bytes());
    pairs
        .iter()
        .filter(|(name, _)| name == FORM_TOKEN_FIELD)
        .any(|(_, value)| blake3::hash(value.as_bytes()) == expected)
}
