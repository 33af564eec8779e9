//! Wire types of the list-sessions response, read leniently: unknown fields are ignored and
//! every enumeration is an open string, so a new value from the API never breaks a scrape.

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::value::RawValue;

use super::lenient::{self, Field, FieldSet, Skipped};

/// One page of `GET /v3/organizations/{org_id}/sessions`. Strings borrow from the body.
#[derive(Debug)]
pub struct SessionPage<'a> {
    /// The sessions on this page.
    pub items: Vec<Session<'a>>,
    /// Items that could not be read as a session (no usable `session_id`, ...).
    pub skipped: Vec<Skipped>,
    /// Cursor for the next page; `None` on the last page.
    pub end_cursor: Option<String>,
    /// Whether another page follows.
    pub has_next_page: bool,
    /// Optional count of all matching sessions; a hint only, never relied on.
    pub total: Option<u64>,
}

/// The page as sent, its items read as `T`.
#[derive(Deserialize)]
struct WirePage<T> {
    items: T,
    #[serde(default)]
    end_cursor: Option<String>,
    #[serde(default)]
    has_next_page: bool,
    #[serde(default)]
    total: Option<u64>,
}

impl<'a> SessionPage<'a> {
    /// Reads a page. A body that is not a JSON object with an `items` list is an error; an
    /// item that is not a usable session never is: it is skipped, and the others are kept.
    pub fn from_slice(body: &'a [u8]) -> serde_json::Result<Self> {
        // The common case, in one pass: every item a session (odd fields read leniently).
        if let Ok(page) = serde_json::from_slice::<WirePage<Vec<Session<'a>>>>(body) {
            return Ok(page.with_items(|items| (items, Vec::new())));
        }
        // Some item is not: read each on its own.
        let page: WirePage<Vec<&'a RawValue>> = serde_json::from_slice(body)?;
        Ok(page.with_items(|raw| {
            let mut items = Vec::with_capacity(raw.len());
            let mut skipped = Vec::new();
            for item in raw {
                match lenient::decode_item(item.get()) {
                    Ok(session) => items.push(session),
                    Err(skip) => skipped.push(skip),
                }
            }
            (items, skipped)
        }))
    }

    /// [`SessionPage::from_slice`] of a string.
    #[allow(clippy::should_implement_trait)] // borrows from `body`, unlike `FromStr`
    pub fn from_str(body: &'a str) -> serde_json::Result<Self> {
        Self::from_slice(body.as_bytes())
    }

    /// Items on the page, sessions and skipped ones.
    pub fn listed(&self) -> usize {
        self.items.len() + self.skipped.len()
    }
}

impl<T> WirePage<T> {
    fn with_items<'a>(
        self,
        read: impl FnOnce(T) -> (Vec<Session<'a>>, Vec<Skipped>),
    ) -> SessionPage<'a> {
        let (items, skipped) = read(self.items);
        SessionPage {
            items,
            skipped,
            end_cursor: self.end_cursor,
            has_next_page: self.has_next_page,
            total: self.total,
        }
    }
}

/// The fields of a `SessionResponse` the exporter uses, read leniently (see [`lenient`]).
#[derive(Debug, Clone)]
pub struct Session<'a> {
    /// Unique id, `devin-<hex>`; never empty.
    pub session_id: Cow<'a, str>,
    /// Lifecycle status (open set: new, claimed, running, exit, error, suspended, resuming, ...);
    /// never empty.
    pub status: Cow<'a, str>,
    /// Detail of the status; `None` when null.
    pub status_detail: Option<Cow<'a, str>>,
    /// Where the session was created from; `None` when null.
    pub origin: Option<Cow<'a, str>>,
    /// Use-case category; `None` until classified.
    pub category: Option<Cow<'a, str>>,
    /// Creation time, Unix seconds, clamped into `0..=MAX_UNIX`.
    pub created_at: i64,
    /// Last update time, Unix seconds, clamped into `0..=MAX_UNIX`.
    pub updated_at: i64,
    /// ACUs consumed so far.
    pub acus_consumed: f64,
    /// Pull requests opened by the session.
    pub pull_requests: Vec<PullRequest<'a>>,
    /// Archived flag; null or absent means not archived.
    pub is_archived: Option<bool>,
    /// Link to the session in the web app.
    pub url: Option<Cow<'a, str>>,
    /// User who started the session; `None` when null (a service user started it).
    pub user_id: Option<Cow<'a, str>>,
    /// Service user who started the session; `None` when null.
    pub service_user_id: Option<Cow<'a, str>>,
    /// Playbook the session runs; `None` when null.
    pub playbook_id: Option<Cow<'a, str>>,
    /// Tags of the session; null entries are skipped, a null list counts as none.
    pub tags: Vec<Cow<'a, str>>,
    /// Fields that were of the wrong type and read as null, 0 or empty.
    pub malformed: FieldSet,
    /// The org the session belongs to, as sent (only the enterprise stream reads it); `None`
    /// when null, absent or not a string.
    pub org_id: Option<Cow<'a, str>>,
}

/// A pull request of a session; only its state matters here.
#[derive(Debug, Clone)]
pub struct PullRequest<'a> {
    /// open, merged, closed, ... or `None` when null.
    pub pr_state: Option<Cow<'a, str>>,
}

impl Session<'_> {
    /// The session owning its strings (an item read from a repaired copy of its text).
    pub fn into_owned(self) -> Session<'static> {
        let own = |s: Cow<'_, str>| Cow::Owned(s.into_owned());
        Session {
            session_id: own(self.session_id),
            status: own(self.status),
            status_detail: self.status_detail.map(own),
            origin: self.origin.map(own),
            category: self.category.map(own),
            created_at: self.created_at,
            updated_at: self.updated_at,
            acus_consumed: self.acus_consumed,
            pull_requests: (self.pull_requests.into_iter())
                .map(|p| PullRequest {
                    pr_state: p.pr_state.map(own),
                })
                .collect(),
            is_archived: self.is_archived,
            url: self.url.map(own),
            user_id: self.user_id.map(own),
            service_user_id: self.service_user_id.map(own),
            playbook_id: self.playbook_id.map(own),
            tags: self.tags.into_iter().map(own).collect(),
            malformed: self.malformed,
            org_id: self.org_id.map(own),
        }
    }

    /// Marks the fields holding U+FFFD as malformed: after lone surrogates were replaced by
    /// it, those are the fields that had one (or, rarely, had the character itself).
    pub(super) fn mark_replacement_characters(&mut self) {
        let has = |s: &str| s.contains('\u{FFFD}');
        let opt = |s: &Option<Cow<'_, str>>| s.as_deref().is_some_and(has);
        let fields = [
            (Field::SessionId, has(&self.session_id)),
            (Field::Status, has(&self.status)),
            (Field::StatusDetail, opt(&self.status_detail)),
            (Field::Origin, opt(&self.origin)),
            (Field::Category, opt(&self.category)),
            (Field::Url, opt(&self.url)),
            (Field::UserId, opt(&self.user_id)),
            (Field::ServiceUserId, opt(&self.service_user_id)),
            (Field::PlaybookId, opt(&self.playbook_id)),
            (Field::Tags, self.tags.iter().any(|t| has(t))),
            (
                Field::PrState,
                self.pull_requests.iter().any(|p| opt(&p.pr_state)),
            ),
        ];
        for (field, replaced) in fields {
            if replaced {
                self.malformed.insert(field);
            }
        }
    }
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
    use crate::api::lenient::SkipReason;

    #[test]
    fn parses_nulls_unknown_fields_and_new_enum_values() {
        let body = br#"{"items":[{"session_id":"devin-1","url":"u","status":"hibernating",
            "status_detail":null,"origin":null,"category":null,"tags":[],"org_id":"o",
            "created_at":1700000000,"updated_at":1700000100.0,"acus_consumed":1.5,
            "pull_requests":[{"pr_url":"p","pr_state":null}],"brand_new_field":{"x":1}}],
            "end_cursor":null,"total":null}"#;
        let page = SessionPage::from_slice(body).unwrap();
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
        let page = SessionPage::from_slice(body).unwrap();
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
            let page = SessionPage::from_str(&body).unwrap();
            assert_eq!(page.items[0].updated_at, want, "{raw}");
            assert_eq!(page.items[0].created_at, want, "{raw}");
        }
    }

    #[test]
    fn an_item_without_a_required_field_is_skipped_not_the_page() {
        let body = br#"{"items":[{"session_id":"devin-1","created_at":1,"updated_at":1,"acus_consumed":0},
            {"session_id":"devin-2","status":"new","created_at":1,"updated_at":1,"acus_consumed":0}]}"#;
        let page = SessionPage::from_slice(body).unwrap();
        assert_eq!(page.items.len(), 1);
        assert_eq!(page.items[0].session_id, "devin-2");
        let skipped = Skipped {
            session_id: Some("devin-1".into()),
            org_id: None,
            reason: SkipReason::NoStatus,
        };
        assert_eq!(page.skipped, [skipped]);
    }

    /// `{"items":[<item>]}` with `item` a good session whose `field` is `value` (raw JSON).
    fn one_item(field: &str, value: &str) -> String {
        let mut item = serde_json::json!({"session_id": "devin-1", "status": "running",
            "status_detail": "working", "origin": "api", "category": "testing", "url": "u",
            "created_at": 10, "updated_at": 20, "acus_consumed": 1.5, "is_archived": false,
            "user_id": "user-1", "service_user_id": null, "playbook_id": "pb-1",
            "tags": ["a"], "pull_requests": [{"pr_state": "open"}]});
        item[field] = serde_json::json!("@value@");
        format!(r#"{{"items":[{item}]}}"#).replace(r#""@value@""#, value)
    }

    #[test]
    fn wrongly_typed_fields_read_as_null_and_are_named() {
        use Field::*;
        for (field, value, named) in [
            ("status_detail", "3", StatusDetail),
            ("origin", "[1]", Origin),
            ("category", r#"{"a":"b"}"#, Category),
            ("url", "12", Url),
            ("user_id", "42", UserId),
            ("service_user_id", "false", ServiceUserId),
            ("playbook_id", "true", PlaybookId),
            ("tags", r#""a,b""#, Tags),
            ("tags", r#"["a",7]"#, Tags),
            ("is_archived", r#""yes""#, IsArchived),
            ("pull_requests", r#"{"pr_state":"open"}"#, PullRequests),
            (
                "pull_requests",
                r#"[{"pr_state":"open"},"x"]"#,
                PullRequests,
            ),
            ("pull_requests", r#"[{"pr_state":1}]"#, PrState),
            ("acus_consumed", r#""NaN""#, AcusConsumed),
            ("acus_consumed", "null", AcusConsumed),
            ("created_at", r#""2024-01-01""#, CreatedAt),
            ("updated_at", "null", UpdatedAt),
        ] {
            let body = one_item(field, value);
            let page = SessionPage::from_str(&body).unwrap();
            assert!(page.skipped.is_empty(), "{field}={value}");
            let s = &page.items[0];
            assert_eq!(
                s.malformed.iter().collect::<Vec<_>>(),
                [named],
                "{field}={value}"
            );
            let text = |o: &Option<Cow<'_, str>>| o.as_deref().map(str::to_owned);
            // What the field reads as: nothing, 0, or the other timestamp.
            let read = match named {
                StatusDetail => text(&s.status_detail),
                Origin => text(&s.origin),
                Category => text(&s.category),
                Url => text(&s.url),
                UserId => text(&s.user_id),
                ServiceUserId => text(&s.service_user_id),
                PlaybookId => text(&s.playbook_id),
                PrState => text(&s.pull_requests[0].pr_state),
                IsArchived => s.is_archived.map(|b| b.to_string()),
                AcusConsumed => (s.acus_consumed != 0.0).then(|| s.acus_consumed.to_string()),
                // What is left of the lists: below.
                Tags | PullRequests => None,
                CreatedAt => (s.created_at != 20).then(|| s.created_at.to_string()),
                UpdatedAt => (s.updated_at != 10).then(|| s.updated_at.to_string()),
                SessionId | Status => unreachable!(),
            };
            assert_eq!(read, None, "{field}={value}");
        }
        for (field, value, left) in [
            ("tags", r#""a,b""#, 0),
            ("tags", r#"["a",7]"#, 1),
            ("pull_requests", r#"{"pr_state":"open"}"#, 0),
            ("pull_requests", r#"[{"pr_state":"open"},"x"]"#, 1),
        ] {
            let body = one_item(field, value);
            let page = SessionPage::from_str(&body).unwrap();
            let s = &page.items[0];
            let len = match field {
                "tags" => s.tags.len(),
                _ => s.pull_requests.len(),
            };
            assert_eq!(len, left, "{field}={value}");
        }
        // Nulls and absent optional fields are not malformed.
        let body = one_item("user_id", "null");
        let page = SessionPage::from_str(&body).unwrap();
        assert!(page.items[0].malformed.is_empty());
    }

    #[test]
    fn unusable_items_are_skipped_with_their_reason() {
        for (field, value, id, reason) in [
            ("session_id", "1", None, SkipReason::NoSessionId),
            ("session_id", r#""""#, None, SkipReason::NoSessionId),
            ("status", "3", Some("devin-1"), SkipReason::NoStatus),
            ("status", "null", Some("devin-1"), SkipReason::NoStatus),
            // Duplicate keys and numbers beyond f64: serde cannot read the item at all.
            (
                "url",
                r#""u","url":"v""#,
                Some("devin-1"),
                SkipReason::Undecodable,
            ),
            ("acus_consumed", "1e400", None, SkipReason::Undecodable),
        ] {
            let body = one_item(field, value);
            let page = SessionPage::from_str(&body).unwrap();
            assert!(page.items.is_empty(), "{field}={value}");
            let skipped = Skipped {
                session_id: id.map(String::from),
                org_id: None,
                reason,
            };
            assert_eq!(page.skipped, [skipped], "{field}={value}");
        }
        let body = r#"{"items":[{"session_id":"d","status":"new","acus_consumed":0},3,null,"x"]}"#;
        let page = SessionPage::from_str(body).unwrap();
        let reasons: Vec<_> = page.skipped.iter().map(|s| s.reason).collect();
        use SkipReason::*;
        assert_eq!(
            reasons,
            [NoTimestamps, Undecodable, Undecodable, Undecodable]
        );
    }

    #[test]
    fn lone_surrogates_are_replaced_and_named() {
        let body = one_item("user_id", r#""a\ud800b""#)
            .replace(r#""working""#, r#""\udc00""#)
            .replace(r#""api""#, r#""\ud83d\ude00""#);
        // serde refuses the lone surrogates in a string it keeps...
        assert!(serde_json::from_str::<serde_json::Value>(&body).is_err());
        let page = SessionPage::from_str(&body).unwrap();
        let s = &page.items[0];
        assert_eq!(s.user_id.as_deref(), Some("a\u{fffd}b"));
        assert_eq!(s.status_detail.as_deref(), Some("\u{fffd}"));
        // ...but a pair is a character.
        assert_eq!(s.origin.as_deref(), Some("\u{1f600}"));
        let named: Vec<_> = s.malformed.iter().collect();
        assert_eq!(named, [Field::StatusDetail, Field::UserId]);
    }

    #[test]
    fn a_broken_page_is_still_an_error() {
        for body in [
            "",
            "[]",
            r#"{"items":{}}"#,
            r#"{"has_next_page":false}"#,
            r#"{"items":[{"session_id":"d"}"#,
            r#"{"items":[],"total":-1}"#,
        ] {
            assert!(SessionPage::from_str(body).is_err(), "{body}");
        }
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
