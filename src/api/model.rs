//! Wire types of the list-sessions response, read leniently: unknown fields are ignored and
//! every enumeration is an open string, so a new value from the API never breaks a scrape.

use std::borrow::Cow;

use serde::Deserialize;

/// One page of `GET /v3/organizations/{org_id}/sessions`. Strings borrow from the body.
#[derive(Debug, Deserialize)]
pub struct SessionPage<'a> {
    /// The sessions on this page.
    #[serde(borrow)]
    pub items: Vec<Session<'a>>,
    /// Cursor for the next page; `None` on the last page.
    #[serde(default)]
    pub end_cursor: Option<String>,
    /// Whether another page follows.
    #[serde(default)]
    pub has_next_page: bool,
    /// Optional count of all matching sessions; a hint only, never relied on.
    #[serde(default)]
    pub total: Option<u64>,
}

/// The fields of a `SessionResponse` the exporter uses.
#[derive(Debug, Deserialize)]
pub struct Session<'a> {
    /// Unique id, `devin-<hex>`.
    #[serde(borrow)]
    pub session_id: Cow<'a, str>,
    /// Lifecycle status (open set: new, claimed, running, exit, error, suspended, resuming, ...).
    #[serde(borrow)]
    pub status: Cow<'a, str>,
    /// Detail of the status; `None` when null.
    #[serde(default, borrow)]
    pub status_detail: Option<Cow<'a, str>>,
    /// Where the session was created from; `None` when null.
    #[serde(default, borrow)]
    pub origin: Option<Cow<'a, str>>,
    /// Use-case category; `None` until classified.
    #[serde(default, borrow)]
    pub category: Option<Cow<'a, str>>,
    /// Creation time, Unix seconds.
    #[serde(deserialize_with = "unix_seconds")]
    pub created_at: i64,
    /// Last update time, Unix seconds.
    #[serde(deserialize_with = "unix_seconds")]
    pub updated_at: i64,
    /// ACUs consumed so far.
    pub acus_consumed: f64,
    /// Pull requests opened by the session.
    #[serde(default, borrow)]
    pub pull_requests: Vec<PullRequest<'a>>,
    /// Archived flag; null or absent means not archived.
    #[serde(default)]
    pub is_archived: Option<bool>,
    /// Link to the session in the web app.
    #[serde(default, borrow)]
    pub url: Option<Cow<'a, str>>,
    /// User who started the session; `None` when null (a service user started it).
    #[serde(default, borrow)]
    pub user_id: Option<Cow<'a, str>>,
    /// Service user who started the session; `None` when null.
    #[serde(default, borrow)]
    pub service_user_id: Option<Cow<'a, str>>,
    /// Playbook the session runs; `None` when null.
    #[serde(default, borrow)]
    pub playbook_id: Option<Cow<'a, str>>,
    /// Tags of the session; null entries are skipped, a null list counts as none.
    #[serde(default, borrow, deserialize_with = "lenient_tags")]
    pub tags: Vec<Cow<'a, str>>,
}

/// A pull request of a session; only its state matters here.
#[derive(Debug, Deserialize)]
pub struct PullRequest<'a> {
    /// open, merged, closed, ... or `None` when null.
    #[serde(default, borrow)]
    pub pr_state: Option<Cow<'a, str>>,
}

/// One page of `GET /v3/enterprise/organizations`.
#[derive(Debug, Deserialize)]
pub struct OrganizationPage {
    /// The organizations on this page.
    pub items: Vec<Organization>,
    /// Cursor for the next page.
    #[serde(default)]
    pub end_cursor: Option<String>,
    /// Whether another page follows.
    #[serde(default)]
    pub has_next_page: bool,
}

/// An organization of the enterprise.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Organization {
    /// The org id.
    pub org_id: String,
    /// Display name.
    #[serde(default)]
    pub name: Option<String>,
    /// Most ACUs one session may use; `None` when unlimited.
    #[serde(default)]
    pub max_session_acu_limit: Option<f64>,
    /// Most ACUs the org may use per billing cycle; `None` when unlimited.
    #[serde(default)]
    pub max_cycle_acu_limit: Option<f64>,
}

/// `GET /v3/self`: who a token is.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Principal {
    /// `service_user`, ...
    #[serde(default)]
    pub principal_type: Option<String>,
    /// The service user's id.
    #[serde(default)]
    pub service_user_id: Option<String>,
    /// Display name, when given.
    #[serde(default)]
    pub name: Option<String>,
    /// The org of an org-scoped principal; `None` for an enterprise one.
    #[serde(default)]
    pub org_id: Option<String>,
}

/// Latest timestamp taken at face value: 9999-12-31T23:59:59Z. Anything later (milliseconds,
/// `1e308`) is clamped to it, so that arithmetic on timestamps can never overflow.
pub const MAX_UNIX: i64 = 253_402_300_799;

/// Clamps a Unix time in seconds into `0..=MAX_UNIX` (fractions truncated, never wrapped).
pub fn clamp_unix(secs: f64) -> i64 {
    if secs.is_nan() {
        0
    } else {
        secs.clamp(0.0, MAX_UNIX as f64) as i64
    }
}

/// Accepts integer timestamps and, defensively, fractional ones (truncated); clamped into
/// `0..=MAX_UNIX`.
fn unix_seconds<'de, D: serde::Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    let n = serde_json::Number::deserialize(d)?;
    Ok(match n.as_i64() {
        Some(i) => i.clamp(0, MAX_UNIX),
        // u64 beyond i64 and floats: clamped as floats.
        None => clamp_unix(n.as_f64().unwrap_or(f64::MAX)),
    })
}

/// Reads `tags` leniently: null, a null entry or a non-string entry never fails the page.
fn lenient_tags<'de: 'a, 'a, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Vec<Cow<'a, str>>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Tag<'a> {
        Text(#[serde(borrow)] Cow<'a, str>),
        Other(serde::de::IgnoredAny),
    }
    let tags: Option<Vec<Tag<'a>>> = Option::deserialize(d)?;
    Ok(tags
        .unwrap_or_default()
        .into_iter()
        .filter_map(|t| match t {
            Tag::Text(s) => Some(s),
            Tag::Other(_) => None,
        })
        .collect())
}

/// Error body of the API: RFC 9457 problem details or FastAPI's validation shape.
#[derive(Debug, Deserialize)]
struct ErrorBody {
    #[serde(default)]
    detail: Option<serde_json::Value>,
    #[serde(default)]
    title: Option<String>,
}

/// Extracts a short human-readable reason from an error body, whatever its shape.
pub fn error_detail(body: &[u8]) -> Option<String> {
    let parsed: ErrorBody = serde_json::from_slice(body).ok()?;
    let text = match parsed.detail {
        Some(serde_json::Value::String(s)) => s,
        Some(serde_json::Value::Array(items)) => items
            .iter()
            .map(|i| {
                let msg = i.get("msg").and_then(|m| m.as_str()).unwrap_or("invalid");
                let loc = i
                    .get("loc")
                    .and_then(|l| l.as_array())
                    .map(|l| {
                        l.iter()
                            .map(|p| match p {
                                serde_json::Value::String(s) => s.clone(),
                                other => other.to_string(),
                            })
                            .collect::<Vec<_>>()
                            .join(".")
                    })
                    .unwrap_or_default();
                if loc.is_empty() {
                    msg.to_string()
                } else {
                    format!("{loc}: {msg}")
                }
            })
            .collect::<Vec<_>>()
            .join("; "),
        Some(other) if !other.is_null() => other.to_string(),
        _ => parsed.title?,
    };
    // Error text ends up in logs and on the landing page: keep it to one short line.
    let one_line: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    Some(one_line.chars().take(300).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_nulls_unknown_fields_and_new_enum_values() {
        let body = br#"{"items":[{"session_id":"devin-1","url":"u","status":"hibernating",
            "status_detail":null,"origin":null,"category":null,"tags":[],"org_id":"o",
            "created_at":1700000000,"updated_at":1700000100.0,"acus_consumed":1.5,
            "pull_requests":[{"pr_url":"p","pr_state":null}],"brand_new_field":{"x":1}}],
            "end_cursor":null,"total":null}"#;
        let page: SessionPage = serde_json::from_slice(body).unwrap();
        assert!(!page.has_next_page);
        let s = &page.items[0];
        assert_eq!(s.status, "hibernating");
        assert_eq!(s.status_detail, None);
        assert_eq!(s.updated_at, 1700000100);
        assert_eq!(s.pull_requests[0].pr_state, None);
        assert_eq!(s.is_archived, None);
        assert_eq!(s.url.as_deref(), Some("u"));
        assert!(s.tags.is_empty());
        assert_eq!(
            (s.user_id.as_deref(), s.playbook_id.as_deref()),
            (None, None)
        );
    }

    #[test]
    fn attribution_fields_are_read_leniently() {
        let body = br#"{"items":[
            {"session_id":"a","status":"new","created_at":1,"updated_at":1,"acus_consumed":0,
             "user_id":"user-1","service_user_id":null,"playbook_id":"pb-1",
             "tags":["x",null,3,"y\u00e9"]},
            {"session_id":"b","status":"new","created_at":1,"updated_at":1,"acus_consumed":0,
             "user_id":null,"service_user_id":"svc","tags":null}]}"#;
        let page: SessionPage = serde_json::from_slice(body).unwrap();
        let (a, b) = (&page.items[0], &page.items[1]);
        assert_eq!(a.user_id.as_deref(), Some("user-1"));
        assert_eq!(a.playbook_id.as_deref(), Some("pb-1"));
        assert_eq!(a.tags, ["x", "y\u{e9}"]);
        assert_eq!(b.user_id, None);
        assert_eq!(b.service_user_id.as_deref(), Some("svc"));
        assert!(b.tags.is_empty() && b.playbook_id.is_none());
    }

    #[test]
    fn absurd_timestamps_are_clamped_not_wrapped() {
        for (raw, want) in [
            ("1700000000123", MAX_UNIX),
            ("1e308", MAX_UNIX),
            ("18446744073709551615", MAX_UNIX),
            ("-5", 0),
            ("-1e308", 0),
            ("1700000000.9", 1_700_000_000),
        ] {
            let body = format!(
                r#"{{"items":[{{"session_id":"d","status":"new","created_at":{raw},"updated_at":{raw},"acus_consumed":0}}]}}"#
            );
            let page: SessionPage = serde_json::from_str(&body).unwrap();
            assert_eq!(page.items[0].updated_at, want, "{raw}");
            assert_eq!(page.items[0].created_at, want, "{raw}");
        }
    }

    #[test]
    fn missing_required_field_is_an_error() {
        let body = br#"{"items":[{"session_id":"devin-1","created_at":1,"updated_at":1,"acus_consumed":0}]}"#;
        assert!(serde_json::from_slice::<SessionPage>(body).is_err());
    }

    #[test]
    fn error_detail_shapes() {
        assert_eq!(
            error_detail(br#"{"title":"Unauthorized","status":401,"detail":"Invalid token"}"#)
                .as_deref(),
            Some("Invalid token")
        );
        assert_eq!(
            error_detail(
                br#"{"detail":[{"loc":["query","first"],"msg":"must be <= 200","type":"x"}]}"#
            )
            .as_deref(),
            Some("query.first: must be <= 200")
        );
        assert_eq!(
            error_detail(br#"{"title":"Forbidden"}"#).as_deref(),
            Some("Forbidden")
        );
        assert_eq!(error_detail(b"<html>oops</html>"), None);
    }
}
