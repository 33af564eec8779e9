//! Basic authentication against bcrypt hashes. A successful check is remembered per user so
//! that each scrape does not pay for a bcrypt round (tens of milliseconds by design).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine;

/// Users and their bcrypt hashes.
pub struct BasicAuth {
    users: BTreeMap<String, String>,
    /// The last credentials accepted per user, as sent (base64 of `user:password`).
    accepted: Mutex<HashMap<String, String>>,
}

/// Paths that answer without credentials: liveness and readiness reveal nothing.
const OPEN_PATHS: &[&str] = &["/healthz", "/readyz"];

impl BasicAuth {
    /// Authentication for `users` (name to bcrypt hash).
    pub fn new(users: BTreeMap<String, String>) -> Arc<Self> {
        Arc::new(BasicAuth {
            users,
            accepted: Mutex::new(HashMap::new()),
        })
    }

    async fn check(&self, authorization: Option<&HeaderValue>) -> bool {
        let Some(encoded) = authorization
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Basic "))
            .map(str::trim)
        else {
            return false;
        };
        let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(encoded) else {
            return false;
        };
        let Ok(decoded) = String::from_utf8(decoded) else {
            return false;
        };
        let Some((user, password)) = decoded.split_once(':') else {
            return false;
        };
        let Some(hash) = self.users.get(user).cloned() else {
            return false;
        };
        let remembered = self
            .accepted
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(user)
            .is_some_and(|a| a == encoded);
        if remembered {
            return true;
        }
        let password = password.to_string();
        let ok =
            tokio::task::spawn_blocking(move || bcrypt::verify(password, &hash).unwrap_or(false))
                .await
                .unwrap_or(false);
        if ok {
            self.accepted
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(user.to_string(), encoded.to_string());
        }
        ok
    }
}

/// Middleware: 401 with a Basic challenge unless the request carries valid credentials.
pub async fn require(State(auth): State<Arc<BasicAuth>>, request: Request, next: Next) -> Response {
    if OPEN_PATHS.contains(&request.uri().path())
        || auth
            .check(request.headers().get(header::AUTHORIZATION))
            .await
    {
        return next.run(request).await;
    }
    (
        StatusCode::UNAUTHORIZED,
        [(header::WWW_AUTHENTICATE, "Basic realm=\"devin-exporter\"")],
        "unauthorized\n",
    )
        .into_response()
}
