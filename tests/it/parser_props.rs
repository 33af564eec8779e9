//! Property tests of the API response parser: malformed or truncated JSON is an error, never
//! a panic; a well-formed page always parses; a wrongly typed field never fails a page nor
//! loses its other sessions.

use devin_exporter::api::{OrganizationPage, SessionPage};
use devin_exporter::sync::{SessionStore, Transitions};
use proptest::prelude::*;
use serde_json::{Value, json};

/// The fields of a session item the parser reads: without the first two, it is skipped.
const FIELDS: &str = "session_id status status_detail origin category created_at updated_at \
    acus_consumed pull_requests is_archived url user_id service_user_id playbook_id tags";

fn valid_item(i: u32, status: String, acus: f64) -> Value {
    json!({
        "session_id": format!("devin-{i:032x}"), "url": "u", "status": status,
        "status_detail": null, "origin": "api", "category": null, "tags": [],
        "org_id": "org-x", "created_at": 1_700_000_000 + i64::from(i), "updated_at": 1_700_000_500,
        "acus_consumed": acus, "pull_requests": [{"pr_url": "p", "pr_state": "open"}]
    })
}

/// Arbitrary JSON values, nested a few levels.
fn any_json() -> impl Strategy<Value = Value> {
    let keys = format!("items {FIELDS}");
    let keys: Vec<String> = keys.split(' ').map(String::from).collect();
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(|f| json!(f)),
        ".{0,12}".prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 6, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(
                prop_oneof![
                    6 => prop::sample::select(keys.clone()),
                    1 => ".{0,8}",
                ],
                inner,
                0..6
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn parse_and_apply(bytes: &[u8]) {
    if let Ok(page) = SessionPage::from_slice(bytes) {
        let mut store = SessionStore::default();
        for s in &page.items {
            store.upsert(s, 1, Transitions::Counted);
        }
    }
    let _ = serde_json::from_slice::<OrganizationPage>(bytes);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        parse_and_apply(&bytes);
    }

    #[test]
    fn arbitrary_json_never_panics(v in any_json()) {
        parse_and_apply(v.to_string().as_bytes());
        parse_and_apply(json!({"items": [v.clone()]}).to_string().as_bytes());
    }

    #[test]
    fn truncated_pages_are_errors_not_panics(n in 1u32..20, cut in 0usize..4000, status in "[a-z_]{1,20}") {
        let items: Vec<Value> = (0..n).map(|i| valid_item(i, status.clone(), f64::from(i) * 0.5)).collect();
        let body = json!({"items": items, "end_cursor": "c", "has_next_page": true}).to_string();
        let whole = SessionPage::from_str(&body).unwrap();
        prop_assert_eq!(whole.items.len(), n as usize);
        let cut = cut.min(body.len().saturating_sub(1));
        prop_assert!(SessionPage::from_slice(&body.as_bytes()[..cut]).is_err());
        parse_and_apply(&body.as_bytes()[..cut]);
    }

    #[test]
    fn wrongly_typed_fields_never_lose_a_session(field in prop::sample::select(FIELDS.split_whitespace().collect::<Vec<_>>()), v in any_json()) {
        let mut spoiled = valid_item(1, "running".into(), 1.0);
        spoiled[field] = v.clone();
        let items = [valid_item(0, "new".into(), 1.0), spoiled, valid_item(2, "exit".into(), 1.0)];
        let body = json!({"items": items}).to_string();
        let page = SessionPage::from_str(&body).unwrap();
        // Only a session_id or status that is not a non-empty string skips the item.
        let required = ["session_id", "status"].contains(&field);
        let kept = !required || v.as_str().is_some_and(|s| !s.is_empty());
        prop_assert_eq!(page.items.len(), 2 + usize::from(kept));
        prop_assert_eq!(page.skipped.len(), usize::from(!kept));
        let mut store = SessionStore::default();
        for s in &page.items {
            store.upsert(s, 1, Transitions::Counted);
        }
        prop_assert_eq!(store.len(), page.items.len());
        let ids: Vec<&str> = page.items.iter().map(|s| s.session_id.as_ref()).collect();
        for good in [format!("devin-{:032x}", 0), format!("devin-{:032x}", 2)] {
            prop_assert!(ids.contains(&good.as_str()), "{good} lost: {ids:?}");
        }
    }
}
