//! One session item read leniently: a field of the wrong type reads as null, 0 or empty and
//! is named in the session's [`FieldSet`]; an item without a usable `session_id`, `status`
//! or any timestamp is [`Skipped`]. Only broken JSON fails a page, never one odd session.

use std::borrow::Cow;
use std::fmt;

use serde::Deserialize;
use serde::de::value::MapAccessDeserializer;
use serde::de::{self, IgnoredAny, MapAccess, SeqAccess, Visitor};

use super::model::{MAX_UNIX, PullRequest, Session, clamp_unix};

/// A field of a session item, by its wire name. Metric labels come from this fixed set,
/// never from the network.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    /// `session_id`
    SessionId,
    /// `status`
    Status,
    /// `status_detail`
    StatusDetail,
    /// `origin`
    Origin,
    /// `category`
    Category,
    /// `created_at`
    CreatedAt,
    /// `updated_at`
    UpdatedAt,
    /// `acus_consumed`
    AcusConsumed,
    /// `pull_requests`
    PullRequests,
    /// `pr_state`
    PrState,
    /// `is_archived`
    IsArchived,
    /// `url`
    Url,
    /// `user_id`
    UserId,
    /// `service_user_id`
    ServiceUserId,
    /// `playbook_id`
    PlaybookId,
    /// `tags`
    Tags,
}

impl Field {
    /// Every field, in wire order.
    pub const ALL: [Field; 16] = [
        Field::SessionId,
        Field::Status,
        Field::StatusDetail,
        Field::Origin,
        Field::Category,
        Field::CreatedAt,
        Field::UpdatedAt,
        Field::AcusConsumed,
        Field::PullRequests,
        Field::PrState,
        Field::IsArchived,
        Field::Url,
        Field::UserId,
        Field::ServiceUserId,
        Field::PlaybookId,
        Field::Tags,
    ];

    /// The wire name.
    pub fn name(self) -> &'static str {
        match self {
            Field::SessionId => "session_id",
            Field::Status => "status",
            Field::StatusDetail => "status_detail",
            Field::Origin => "origin",
            Field::Category => "category",
            Field::CreatedAt => "created_at",
            Field::UpdatedAt => "updated_at",
            Field::AcusConsumed => "acus_consumed",
            Field::PullRequests => "pull_requests",
            Field::PrState => "pr_state",
            Field::IsArchived => "is_archived",
            Field::Url => "url",
            Field::UserId => "user_id",
            Field::ServiceUserId => "service_user_id",
            Field::PlaybookId => "playbook_id",
            Field::Tags => "tags",
        }
    }
}

/// The fields of one item that were malformed (read as null, 0 or empty, or with a lone
/// surrogate replaced). A bit each: free to carry on every session.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FieldSet(u16);

impl FieldSet {
    /// Adds `field`.
    pub fn insert(&mut self, field: Field) {
        self.0 |= 1 << field as u16;
    }

    /// Whether `field` is in the set.
    pub fn contains(self, field: Field) -> bool {
        self.0 & (1 << field as u16) != 0
    }

    /// Whether no field was malformed.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The fields in the set, in wire order.
    pub fn iter(self) -> impl Iterator<Item = Field> {
        Field::ALL.into_iter().filter(move |f| self.contains(*f))
    }
}

/// Why an item was skipped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SkipReason {
    /// `session_id` missing, empty or not a string.
    NoSessionId,
    /// `status` missing, empty or not a string.
    NoStatus,
    /// Neither `created_at` nor `updated_at` is a number: the session cannot be placed.
    NoTimestamps,
    /// Not a session object at all, or JSON serde cannot read as one (a duplicate key, a
    /// number beyond `f64`).
    Undecodable,
}

impl fmt::Display for SkipReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SkipReason::NoSessionId => "no usable session_id",
            SkipReason::NoStatus => "no usable status",
            SkipReason::NoTimestamps => "neither created_at nor updated_at is a number",
            SkipReason::Undecodable => "not a readable session object",
        })
    }
}

/// A skipped item: why, and its session id if it had one (cut short, for the log).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    /// The item's `session_id`, cut to 64 characters, if it had one.
    pub session_id: Option<String>,
    /// The item's `org_id` if it was a string (the enterprise stream counts a skipped item
    /// against its org); cut like any org id from the network.
    pub org_id: Option<String>,
    /// Why it was skipped.
    pub reason: SkipReason,
}

/// Longest session id a log line quotes: the value came from the network.
const LOGGED_ID_CHARS: usize = 64;

/// `id` cut to [`LOGGED_ID_CHARS`].
pub fn logged_id(id: &str) -> String {
    id.chars().take(LOGGED_ID_CHARS).collect()
}

/// Longest org id taken from the network, in bytes; a longer one is cut (and then belongs
/// to no collected org: ids of that length are refused everywhere else).
pub const MAX_ORG_ID_BYTES: usize = 128;

/// Whether an org id from the network can name an org: not empty, at most
/// [`MAX_ORG_ID_BYTES`] (ids are short, `org-<hex>`; a longer one would be exposed in every
/// `org_id` label and request path).
pub fn usable_org_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= MAX_ORG_ID_BYTES
}

/// `id` cut to one byte over [`MAX_ORG_ID_BYTES`] at a character boundary: still too long
/// to match an org, and no longer than that in memory.
pub fn cut_org_id(id: &str) -> String {
    cut(id, MAX_ORG_ID_BYTES + 1).to_string()
}

/// Cuts `v` to at most `max` bytes, on a character boundary: how every value from the
/// network is kept within its bound.
pub fn cut(v: &str, max: usize) -> &str {
    if v.len() <= max {
        return v;
    }
    let mut end = max;
    while !v.is_char_boundary(end) {
        end -= 1;
    }
    &v[..end]
}

/// Any JSON value, read without ever failing on its type. Lists and objects are skipped
/// over: no field this reads into may be one.
#[derive(Debug, Default)]
enum Loose<'a> {
    #[default]
    Absent,
    Null,
    Str(Cow<'a, str>),
    Int(i64),
    Uint(u64),
    Float(f64),
    Bool(bool),
    Other,
}

impl<'de: 'a, 'a> Deserialize<'de> for Loose<'a> {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(LooseVisitor)
    }
}

struct LooseVisitor;

impl<'de> Visitor<'de> for LooseVisitor {
    type Value = Loose<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Loose::Str(Cow::Borrowed(v)))
    }
    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Loose::Str(Cow::Owned(v.to_owned())))
    }
    fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
        Ok(Loose::Str(Cow::Owned(v)))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Self::Value, E> {
        Ok(Loose::Int(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Self::Value, E> {
        Ok(Loose::Uint(v))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Self::Value, E> {
        Ok(Loose::Float(v))
    }
    fn visit_bool<E>(self, v: bool) -> Result<Self::Value, E> {
        Ok(Loose::Bool(v))
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(Loose::Null)
    }
    fn visit_none<E>(self) -> Result<Self::Value, E> {
        Ok(Loose::Null)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Loose::Other)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Loose::Other)
    }
}

impl<'a> Loose<'a> {
    /// An optional string: null or absent is `None`; any other type too, noted in `bad`.
    fn text(self, field: Field, bad: &mut FieldSet) -> Option<Cow<'a, str>> {
        match self {
            Loose::Str(s) => Some(s),
            Loose::Absent | Loose::Null => None,
            _ => {
                bad.insert(field);
                None
            }
        }
    }

    /// A required, non-empty string.
    fn required_text(self) -> Option<Cow<'a, str>> {
        match self {
            Loose::Str(s) if !s.is_empty() => Some(s),
            _ => None,
        }
    }

    /// A Unix time, clamped into `0..=MAX_UNIX` (fractions truncated), if a number.
    fn unix_seconds(&self) -> Option<i64> {
        match *self {
            Loose::Int(i) => Some(i.clamp(0, MAX_UNIX)),
            Loose::Uint(u) => Some(i64::try_from(u).map_or(MAX_UNIX, |i| i.min(MAX_UNIX))),
            Loose::Float(f) => Some(clamp_unix(f)),
            _ => None,
        }
    }

    /// A number as `f64`, if a number (the store clamps what is absurd).
    fn number(&self) -> Option<f64> {
        match *self {
            Loose::Int(i) => Some(i as f64),
            Loose::Uint(u) => Some(u as f64),
            Loose::Float(f) => Some(f),
            _ => None,
        }
    }
}

/// Visitor methods that answer a value of a wrong type with `$bad` instead of an error, so
/// that it never fails its item. Lists and objects are handled by each visitor.
macro_rules! wrong_types_are {
    ($bad:expr) => {
        fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
            Ok($bad)
        }
        fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
            Ok($bad)
        }
        fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
            Ok($bad)
        }
        fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
            Ok($bad)
        }
        fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
            Ok($bad)
        }
    };
}

/// Reads over the rest of a list.
fn skip_seq<'de, A: SeqAccess<'de>>(mut seq: A) -> Result<(), A::Error> {
    while seq.next_element::<IgnoredAny>()?.is_some() {}
    Ok(())
}

/// Reads over the rest of an object.
fn skip_map<'de, A: MapAccess<'de>>(mut map: A) -> Result<(), A::Error> {
    while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
    Ok(())
}

/// `tags`: strings kept; null (the list or an entry) tolerated; anything else is malformed.
#[derive(Debug, Default)]
struct Tags<'a> {
    list: Vec<Cow<'a, str>>,
    bad: bool,
}

impl<'a> Tags<'a> {
    fn bad() -> Self {
        Tags {
            list: Vec::new(),
            bad: true,
        }
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Tags<'a> {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Tags<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a list of tags")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut tags = Tags::default();
                while let Some(tag) = seq.next_element::<Loose<'de>>()? {
                    match tag {
                        Loose::Str(s) => tags.list.push(s),
                        Loose::Null => {}
                        _ => tags.bad = true,
                    }
                }
                Ok(tags)
            }
            fn visit_unit<E>(self) -> Result<Self::Value, E> {
                Ok(Tags::default())
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                skip_map(map).map(|()| Tags::bad())
            }
            wrong_types_are!(Tags::bad());
        }
        d.deserialize_any(V)
    }
}

/// `pull_requests`: objects kept (their `pr_state` read leniently); null tolerated; any
/// other entry, or a value that is not a list, is malformed.
#[derive(Debug, Default)]
struct PullRequests<'a> {
    list: Vec<PullRequest<'a>>,
    bad: bool,
    bad_state: bool,
}

impl<'a> PullRequests<'a> {
    fn bad() -> Self {
        PullRequests {
            bad: true,
            ..PullRequests::default()
        }
    }
}

#[derive(Deserialize)]
struct WirePullRequest<'a> {
    #[serde(default, borrow)]
    pr_state: Loose<'a>,
}

/// One `pull_requests` entry: `None` when not an object.
struct PullRequestEntry<'a>(Option<WirePullRequest<'a>>);

impl<'de: 'a, 'a> Deserialize<'de> for PullRequestEntry<'a> {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = PullRequestEntry<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a pull request object")
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                WirePullRequest::deserialize(MapAccessDeserializer::new(map))
                    .map(|pr| PullRequestEntry(Some(pr)))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
                skip_seq(seq).map(|()| PullRequestEntry(None))
            }
            fn visit_unit<E>(self) -> Result<Self::Value, E> {
                Ok(PullRequestEntry(None))
            }
            wrong_types_are!(PullRequestEntry(None));
        }
        d.deserialize_any(V)
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for PullRequests<'a> {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = PullRequests<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a list of pull requests")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut prs = PullRequests::default();
                while let Some(entry) = seq.next_element::<PullRequestEntry<'de>>()? {
                    let Some(pr) = entry.0 else {
                        prs.bad = true;
                        continue;
                    };
                    let mut bad = FieldSet::default();
                    let pr_state = pr.pr_state.text(Field::PrState, &mut bad);
                    prs.bad_state |= !bad.is_empty();
                    prs.list.push(PullRequest { pr_state });
                }
                Ok(prs)
            }
            fn visit_unit<E>(self) -> Result<Self::Value, E> {
                Ok(PullRequests::default())
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                skip_map(map).map(|()| PullRequests::bad())
            }
            wrong_types_are!(PullRequests::bad());
        }
        d.deserialize_any(V)
    }
}

/// A session item as sent, every field read without failing on its type.
#[derive(Deserialize)]
struct WireSession<'a> {
    #[serde(default, borrow)]
    session_id: Loose<'a>,
    #[serde(default, borrow)]
    status: Loose<'a>,
    #[serde(default, borrow)]
    status_detail: Loose<'a>,
    #[serde(default, borrow)]
    origin: Loose<'a>,
    #[serde(default, borrow)]
    category: Loose<'a>,
    #[serde(default)]
    created_at: Loose<'a>,
    #[serde(default)]
    updated_at: Loose<'a>,
    #[serde(default)]
    acus_consumed: Loose<'a>,
    #[serde(default, borrow)]
    pull_requests: PullRequests<'a>,
    #[serde(default)]
    is_archived: Loose<'a>,
    #[serde(default, borrow)]
    url: Loose<'a>,
    #[serde(default, borrow)]
    user_id: Loose<'a>,
    #[serde(default, borrow)]
    service_user_id: Loose<'a>,
    #[serde(default, borrow)]
    playbook_id: Loose<'a>,
    #[serde(default, borrow)]
    tags: Tags<'a>,
    #[serde(default, borrow)]
    org_id: Loose<'a>,
}

impl<'a> WireSession<'a> {
    /// The session, with what was malformed in it; or why it cannot be one.
    fn into_session(self) -> Result<Session<'a>, Skipped> {
        // Not a field of the session's metrics: a wrong type only means "no org".
        let org_id = self.org_id.text(Field::SessionId, &mut FieldSet::default());
        let skip = |id: Option<&str>, reason| Skipped {
            session_id: id.map(logged_id),
            org_id: org_id.as_deref().map(cut_org_id),
            reason,
        };
        let Some(session_id) = self.session_id.required_text() else {
            return Err(skip(None, SkipReason::NoSessionId));
        };
        let Some(status) = self.status.required_text() else {
            return Err(skip(Some(&session_id), SkipReason::NoStatus));
        };
        let mut bad = FieldSet::default();
        // A missing timestamp reads as the other one: a created_at no earlier than the
        // truth keeps the session within the lookback; an updated_at no later than the
        // truth never replaces a newer copy nor moves the watermark ahead.
        let (created_at, updated_at) = match (
            self.created_at.unix_seconds(),
            self.updated_at.unix_seconds(),
        ) {
            (Some(c), Some(u)) => (c, u),
            (Some(c), None) => {
                bad.insert(Field::UpdatedAt);
                (c, c)
            }
            (None, Some(u)) => {
                bad.insert(Field::CreatedAt);
                (u, u)
            }
            (None, None) => return Err(skip(Some(&session_id), SkipReason::NoTimestamps)),
        };
        let acus_consumed = self.acus_consumed.number().unwrap_or_else(|| {
            bad.insert(Field::AcusConsumed);
            0.0
        });
        let is_archived = match self.is_archived {
            Loose::Bool(b) => Some(b),
            Loose::Absent | Loose::Null => None,
            _ => {
                bad.insert(Field::IsArchived);
                None
            }
        };
        if self.pull_requests.bad {
            bad.insert(Field::PullRequests);
        }
        if self.pull_requests.bad_state {
            bad.insert(Field::PrState);
        }
        if self.tags.bad {
            bad.insert(Field::Tags);
        }
        Ok(Session {
            status_detail: self.status_detail.text(Field::StatusDetail, &mut bad),
            origin: self.origin.text(Field::Origin, &mut bad),
            category: self.category.text(Field::Category, &mut bad),
            url: self.url.text(Field::Url, &mut bad),
            user_id: self.user_id.text(Field::UserId, &mut bad),
            service_user_id: self.service_user_id.text(Field::ServiceUserId, &mut bad),
            playbook_id: self.playbook_id.text(Field::PlaybookId, &mut bad),
            session_id,
            status,
            created_at,
            updated_at,
            acus_consumed,
            pull_requests: self.pull_requests.list,
            is_archived,
            tags: self.tags.list,
            malformed: bad,
            org_id,
        })
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Session<'a> {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        WireSession::deserialize(d)?
            .into_session()
            .map_err(|s| de::Error::custom(s.reason))
    }
}

/// One item of a page whose items could not all be read in one go: the session, or why it
/// was skipped. An item serde cannot read is tried once more with its lone surrogates
/// replaced (serde refuses `"\ud800"` in a string it keeps).
pub(super) fn decode_item(raw: &str) -> Result<Session<'_>, Skipped> {
    if let Ok(wire) = serde_json::from_str::<WireSession<'_>>(raw) {
        return wire.into_session();
    }
    let Some(repaired) = replace_lone_surrogates(raw) else {
        return Err(undecodable(raw));
    };
    match serde_json::from_str::<WireSession<'_>>(&repaired) {
        Ok(wire) => wire.into_session().map(|mut s| {
            s.mark_replacement_characters();
            s.into_owned()
        }),
        Err(_) => Err(undecodable(&repaired)),
    }
}

/// An item serde cannot read as a session, with its session id if one can be found.
fn undecodable(raw: &str) -> Skipped {
    let value: Option<serde_json::Value> = serde_json::from_str(raw).ok();
    let text = |key: &str| value.as_ref().and_then(|v| v.get(key)?.as_str());
    Skipped {
        session_id: text("session_id").map(logged_id),
        org_id: text("org_id").map(cut_org_id),
        reason: SkipReason::Undecodable,
    }
}

/// `raw` with every `\u` escape of a lone UTF-16 surrogate replaced by `\ufffd`; `None`
/// when it has none. A backslash is only ever an escape inside a JSON string, so the text
/// is scanned as is.
pub(super) fn replace_lone_surrogates(raw: &str) -> Option<String> {
    let bytes = raw.as_bytes();
    let unit = |at: usize| -> Option<u16> {
        let hex = bytes.get(at..at + 6)?;
        if hex[0] != b'\\' || hex[1] != b'u' {
            return None;
        }
        u16::from_str_radix(std::str::from_utf8(&hex[2..]).ok()?, 16).ok()
    };
    let mut out: Option<String> = None;
    let (mut i, mut copied) = (0, 0);
    while i < bytes.len() {
        if bytes[i] != b'\\' {
            i += 1;
            continue;
        }
        let Some(u) = unit(i) else {
            i += 2; // `\"`, `\\`, ...: its second byte is never an escape's start.
            continue;
        };
        let lone = match u {
            0xD800..=0xDBFF => !unit(i + 6).is_some_and(|low| (0xDC00..=0xDFFF).contains(&low)),
            0xDC00..=0xDFFF => true,
            _ => false,
        };
        if !lone {
            // A pair is read as one: its low half is no lone surrogate.
            i += if (0xD800..=0xDBFF).contains(&u) {
                12
            } else {
                6
            };
            continue;
        }
        let out = out.get_or_insert_with(|| String::with_capacity(raw.len()));
        out.push_str(&raw[copied..i]);
        out.push_str("\\ufffd");
        i += 6;
        copied = i;
    }
    out.map(|mut out| {
        out.push_str(&raw[copied..]);
        out
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_lone_surrogate_escapes_are_replaced() {
        for (raw, want) in [
            (r#""a\ud800b""#, Some(r#""a\ufffdb""#)),
            (r#""\uDBFF""#, Some(r#""\ufffd""#)),
            (r#""\udc00\ud800""#, Some(r#""\ufffd\ufffd""#)),
            (r#""\ud800\ud800\udc00""#, Some(r#""\ufffd\ud800\udc00""#)),
            // A pair, an escaped backslash before `ud800`, other escapes: left alone.
            (r#""\ud83d\ude00""#, None),
            (r#""\\ud800""#, None),
            (r#""\"\n\u00e9\u""#, None),
        ] {
            assert_eq!(replace_lone_surrogates(raw).as_deref(), want, "{raw}");
        }
    }

    #[test]
    fn field_sets_name_their_fields_in_wire_order() {
        let mut set = FieldSet::default();
        assert!(set.is_empty());
        for f in [Field::Tags, Field::SessionId, Field::AcusConsumed] {
            set.insert(f);
        }
        let names: Vec<_> = set.iter().map(Field::name).collect();
        assert_eq!(names, ["session_id", "acus_consumed", "tags"]);
    }
}
