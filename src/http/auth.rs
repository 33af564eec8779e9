//! Basic authentication against bcrypt hashes. A bcrypt run takes tens of milliseconds by
//! design, so successes are remembered (see [`cache`]), and unknown users cost the same run
//! as a wrong password (see [`hash::dummy`]) lest timing tell which user names exist.

mod cache;
pub(super) mod hash;

#[cfg(test)]
use crate::lock::Locked;
use std::collections::BTreeMap;
use std::sync::Arc;
#[cfg(test)]
use std::sync::Mutex;

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine;

/// Users and their bcrypt hashes.
pub struct BasicAuth {
    users: BTreeMap<String, String>,
    /// What unknown users are verified against: a hash of the highest configured cost.
    dummy: String,
    /// Credentials that verified, by digest.
    accepted: cache::Verified,
    /// The hashes bcrypt ran against, in order.
    #[cfg(test)]
    verified: Mutex<Vec<String>>,
}

/// Paths that answer without credentials: liveness and readiness reveal nothing.
const OPEN_PATHS: &[&str] = &["/healthz", "/readyz"];

/// The dummy's cost when no hash is usable (everybody is refused then): exporter-toolkit's.
const FALLBACK_COST: u32 = 10;

impl BasicAuth {
    /// Authentication for `users` (name to bcrypt hash). A hash that the web config would
    /// refuse (see [`hash::cost`]) is left out, its user refused like an unknown one, so that
    /// no request ever runs bcrypt at an unbounded cost.
    pub fn new(users: BTreeMap<String, String>) -> Arc<Self> {
        let costs: BTreeMap<String, (String, u32)> = users
            .into_iter()
            .filter_map(|(user, h)| hash::cost(&h).ok().map(|cost| (user, (h, cost))))
            .collect();
        let cost = costs
            .values()
            .map(|(_, c)| *c)
            .max()
            .unwrap_or(FALLBACK_COST);
        Arc::new(BasicAuth {
            users: costs.into_iter().map(|(user, (h, _))| (user, h)).collect(),
            dummy: hash::dummy(cost),
            accepted: cache::Verified::default(),
            #[cfg(test)]
            verified: Mutex::new(Vec::new()),
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
        // Known or not, the same steps follow: a cache look-up, then one bcrypt run.
        let (hash, known) = match self.users.get(user) {
            Some(hash) => (hash.clone(), true),
            None => (self.dummy.clone(), false),
        };
        let key = cache::Key::of(user, &hash, password);
        if self.accepted.contains(&key) {
            return true;
        }
        #[cfg(test)]
        self.verified.locked().push(hash.clone());
        let password = password.to_string();
        // Off the async workers: a bcrypt run would stall every request they serve.
        let matched =
            tokio::task::spawn_blocking(move || bcrypt::verify(password, &hash).unwrap_or(false))
                .await
                .unwrap_or(false);
        let ok = matched && known;
        if ok {
            self.accepted.insert(key);
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    fn header(user: &str, password: &str) -> HeaderValue {
        let encoded =
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        HeaderValue::from_str(&format!("Basic {encoded}")).unwrap()
    }

    /// Users with their passwords hashed at the given costs.
    fn auth(users: &[(&str, &str, u32)]) -> Arc<BasicAuth> {
        BasicAuth::new(
            users
                .iter()
                .map(|(u, p, cost)| (u.to_string(), bcrypt::hash(p, *cost).unwrap()))
                .collect(),
        )
    }

    /// The hashes bcrypt has run against so far.
    fn verified(auth: &BasicAuth) -> Vec<String> {
        auth.verified.lock().unwrap().clone()
    }

    #[tokio::test]
    async fn an_unknown_user_costs_one_bcrypt_run_at_the_highest_cost() {
        let auth = auth(&[("alice", "pw", 4), ("bob", "pw", 5)]);
        assert!(!auth.check(Some(&header("mallory", "pw"))).await);
        let runs = verified(&auth);
        assert_eq!(runs.len(), 1, "as many runs as for a known user: {runs:?}");
        assert_eq!(bcrypt::HashParts::from_str(&runs[0]).unwrap().get_cost(), 5);
        assert!(
            !auth.users.values().any(|h| *h == runs[0]),
            "no user's hash"
        );
        // A wrong password for a known user costs the same one run.
        assert!(!auth.check(Some(&header("bob", "guess"))).await);
        assert_eq!(verified(&auth).len(), 2);
    }

    #[tokio::test]
    async fn a_success_is_remembered_without_the_password() {
        let auth = auth(&[("alice", "s3cret", 4)]);
        for _ in 0..3 {
            assert!(auth.check(Some(&header("alice", "s3cret"))).await);
        }
        assert_eq!(
            verified(&auth).len(),
            1,
            "later checks answer from the cache"
        );
        let cached = format!("{:?}", auth.accepted);
        let encoded = base64::engine::general_purpose::STANDARD.encode("alice:s3cret");
        assert!(
            !cached.contains("s3cret") && !cached.contains(&encoded),
            "{cached}"
        );
        // A wrong password after a success still fails, at the price of a bcrypt run.
        assert!(!auth.check(Some(&header("alice", "guess"))).await);
        assert_eq!(verified(&auth).len(), 2);
        assert!(auth.check(Some(&header("alice", "s3cret"))).await);
        assert_eq!(verified(&auth).len(), 2);
    }

    #[tokio::test]
    async fn the_cache_holds_a_bounded_number_of_successes() {
        // bcrypt reads 72 bytes of a password: all these verify, each a distinct success.
        let password = "p".repeat(72);
        let auth = auth(&[("alice", &password, 4)]);
        for i in 0..cache::CAPACITY + 10 {
            assert!(
                auth.check(Some(&header("alice", &format!("{password}{i}"))))
                    .await
            );
        }
        assert_eq!(auth.accepted.len(), cache::CAPACITY);
    }

    #[tokio::test]
    async fn a_hash_above_the_cost_bound_is_never_run() {
        let mut users = BTreeMap::new();
        users.insert("slow".to_string(), hash::dummy(31));
        let auth = BasicAuth::new(users);
        assert!(!auth.check(Some(&header("slow", "pw"))).await);
        assert_eq!(verified(&auth), [hash::dummy(FALLBACK_COST)]);
    }
}
