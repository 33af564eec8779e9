//! One odd session never blanks its org: a field of the wrong type reads as null (and is
//! counted), a session without a usable id or status is skipped (and counted), and the
//! org's other sessions are all there, with attribution on and off.

use crate::common;

use common::{S, page, scrape, sessions_of, start_exporter};
use serde_json::{Value, json};
use wiremock::{MockServer, ResponseTemplate};

/// Stands for a string with a lone UTF-16 surrogate, which `serde_json::Value` cannot hold:
/// the body's text is patched after serialization.
const SURROGATE: &str = "@lone-surrogate@";

/// One bad session among two good ones: how it is made, whether it is kept, and the field
/// counted (`None`: the session is skipped and counted instead).
struct Case {
    name: &'static str,
    spoil: fn(&mut Value),
    kept: bool,
    field: Option<&'static str>,
}

const CASES: &[Case] = &[
    Case {
        name: "user_id-number",
        spoil: |s| s["user_id"] = json!(42),
        kept: true,
        field: Some("user_id"),
    },
    Case {
        name: "playbook_id-bool",
        spoil: |s| s["playbook_id"] = json!(true),
        kept: true,
        field: Some("playbook_id"),
    },
    Case {
        name: "service_user_id-number",
        spoil: |s| s["service_user_id"] = json!(7.5),
        kept: true,
        field: Some("service_user_id"),
    },
    Case {
        name: "url-number",
        spoil: |s| s["url"] = json!(12),
        kept: true,
        field: Some("url"),
    },
    Case {
        name: "tags-string",
        spoil: |s| s["tags"] = json!("a,b"),
        kept: true,
        field: Some("tags"),
    },
    Case {
        name: "lone-surrogate",
        spoil: |s| s["user_id"] = json!(SURROGATE),
        kept: true,
        field: Some("user_id"),
    },
    Case {
        name: "acus-nan-string",
        spoil: |s| s["acus_consumed"] = json!("NaN"),
        kept: true,
        field: Some("acus_consumed"),
    },
    Case {
        name: "no-session_id",
        spoil: |s| {
            s.as_object_mut().unwrap().remove("session_id");
        },
        kept: false,
        field: None,
    },
    Case {
        name: "status-number",
        spoil: |s| s["status"] = json!(3),
        kept: false,
        field: None,
    },
];

/// The page of `case`: good sessions 1 and 2, the spoiled session 3 between them.
fn body(case: &Case) -> String {
    let mut body = page(&[S::new(1), S::new(3), S::new(2)], None, Some(3));
    (case.spoil)(&mut body["items"][1]);
    let text = body.to_string();
    text.replace(&format!("\"{SURROGATE}\""), r#""u\ud800x""#)
}

#[tokio::test]
async fn one_odd_session_never_blanks_its_org() {
    let api = MockServer::start().await;
    let org = |case: &Case| format!("org-{}", case.name);
    for case in CASES {
        let reply = ResponseTemplate::new(200).set_body_raw(body(case), "application/json");
        sessions_of(&org(case))
            .respond_with(reply)
            .mount(&api)
            .await;
    }
    let orgs: Vec<String> = CASES.iter().map(org).collect();
    let orgs: Vec<&str> = orgs.iter().map(String::as_str).collect();
    for attribution in [None, Some(("DEVIN_ATTRIBUTION", "user,playbook,tag"))] {
        let exp = start_exporter(&api.uri(), &orgs, attribution.as_slice()).await;
        let m = scrape(&exp.url, None).await.metrics;
        for case in CASES {
            let org = org(case);
            let at = [("org_id", org.as_str())];
            let (name, on) = (case.name, attribution.is_some());
            assert_eq!(m.up(&org), Some(1.0), "{name} attribution={on}");
            let sessions = 2.0 + f64::from(u8::from(case.kept));
            assert_eq!(m.sum("devin_sessions", &at), sessions, "{name}");
            // 1 ACU each, the spoiled one's "NaN" read as 0.
            let acus = sessions - f64::from(u8::from(case.field == Some("acus_consumed")));
            assert_eq!(m.sum("devin_sessions_acus_consumed", &at), acus, "{name}");
            let skipped = f64::from(u8::from(!case.kept));
            let malformed = m.get("devin_malformed_sessions_total", &at);
            assert_eq!(malformed, Some(skipped), "{name}");
            let fields = m.find("devin_malformed_session_fields_total", &at);
            let want: Vec<_> = case.field.iter().map(|f| (f.to_string(), 1.0)).collect();
            let got: Vec<_> = fields
                .iter()
                .map(|(l, v)| (l["field"].clone(), *v))
                .collect();
            assert_eq!(got, want, "{name}");
            if on {
                for family in ["devin_user_sessions", "devin_playbook_sessions"] {
                    assert_eq!(m.sum(family, &at), sessions, "{name} {family}");
                }
            }
        }
    }
}
