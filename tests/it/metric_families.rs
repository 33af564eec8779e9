//! The family table is the one truth about the metrics: the README's metric table lists
//! exactly its families, and a body rendered with every feature on writes no family, type,
//! help or label name that the table does not declare.
#![cfg(feature = "simulator")]

use crate::common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use common::{scrape, start_exporter};
use devin_exporter::metrics::families::{ALL, FamilyDef};

#[test]
fn the_readme_metric_table_is_the_family_table() {
    let rows = common::readme::table(&["metric", "type", "labels", "meaning"]);
    let readme: Vec<(String, String, String)> = rows
        .into_iter()
        .map(|cells| {
            let name = cells[0].trim_matches('`').to_string();
            (name, cells[1].clone(), cells[2].clone())
        })
        .collect();
    let table: Vec<(String, String, String)> = ALL
        .iter()
        .map(|f| {
            (
                f.name.to_string(),
                f.kind.as_str().to_string(),
                f.labels.join(", "),
            )
        })
        .collect();
    let sorted = |mut v: Vec<(String, String, String)>| {
        v.sort();
        v
    };
    common::assert_same_map(
        "README metric table vs families::ALL",
        &sorted(readme)
            .into_iter()
            .map(|(n, k, l)| (n, (k, l)))
            .collect(),
        &sorted(table)
            .into_iter()
            .map(|(n, k, l)| (n, (k, l)))
            .collect(),
    );
}

/// What a body says of each family: its `# HELP` text, its type, and the label names of
/// its series (a histogram's `_sum` and `_count` counted with it).
#[derive(Default)]
struct Written {
    help: BTreeMap<String, String>,
    kind: BTreeMap<String, &'static str>,
    labels: BTreeMap<String, BTreeSet<Vec<String>>>,
}

fn written(body: &str) -> Written {
    use prometheus_parse::Value;
    let parsed = prometheus_parse::Scrape::parse(body.lines().map(|l| Ok(l.to_string()))).unwrap();
    let mut w = Written {
        help: parsed.docs.into_iter().collect(),
        ..Written::default()
    };
    for sample in parsed.samples {
        let (family, kind) = match sample.value {
            Value::Counter(_) => (sample.metric.clone(), "counter"),
            Value::Gauge(_) => (sample.metric.clone(), "gauge"),
            Value::Histogram(_) => (sample.metric.clone(), "histogram"),
            // A histogram's `_sum` and `_count` lines.
            _ => {
                let base = sample.metric.strip_suffix("_sum");
                let base = base.or_else(|| sample.metric.strip_suffix("_count"));
                (base.unwrap_or(&sample.metric).to_string(), "histogram")
            }
        };
        let mut names: Vec<String> = sample.labels.keys().cloned().collect();
        names.sort();
        w.kind.insert(family.clone(), kind);
        w.labels.entry(family).or_default().insert(names);
    }
    w
}

#[tokio::test]
async fn a_body_with_every_feature_on_writes_only_declared_families() {
    let (sim, url) = common::serve_simulator(common::frozen_simulator(2, 300)).await;
    let orgs = sim.org_ids();
    // One org configured and discovered too, the other discovered only: both have their
    // name and limits.
    let extra = [
        ("DEVIN_ATTRIBUTION", "user,playbook,tag"),
        ("DEVIN_DISCOVER_ORGS", "true"),
        ("DEVIN_BILLING", "on"),
    ];
    let exp = start_exporter(&url, &[orgs[0].as_str()], &extra).await;
    scrape(&exp.url, None).await;
    // Sessions end while the exporter watches: the ended-session histograms fill.
    sim.advance(Duration::from_secs(3600));
    for org in &orgs {
        sim.transition(org, 3, "exit", None).unwrap();
    }
    let scraped = common::scrape_after_billing(&exp).await;
    for org in &orgs {
        let info = scraped.metrics.get("devin_org_info", &[("org_id", org)]);
        assert_eq!(info, Some(1.0), "{org}");
    }
    let w = written(&scraped.body);
    let by_name: BTreeMap<&str, &FamilyDef> = ALL.iter().map(|f| (f.name, *f)).collect();
    let mut seen = BTreeSet::new();
    for (name, kind) in w.kind.iter().filter(|(n, _)| n.starts_with("devin_")) {
        let def = by_name
            .get(name.as_str())
            .unwrap_or_else(|| panic!("{name} is not declared"));
        assert_eq!(*kind, def.kind.as_str(), "{name}");
        assert_eq!(
            w.help.get(name).map(String::as_str),
            Some(def.help),
            "{name}"
        );
        seen.insert(def.name);
        let mut labels: Vec<String> = def.labels.iter().map(|l| l.to_string()).collect();
        labels.sort();
        assert_eq!(w.labels[name], BTreeSet::from([labels]), "{name}");
    }
    // Every family shows up but those this world cannot have: demo mode, limits the
    // simulator leaves unset, and malformed fields (each field's series comes with its
    // first malformed value).
    let absent: BTreeSet<&str> = by_name
        .keys()
        .copied()
        .filter(|n| !seen.contains(n))
        .collect();
    let allowed = BTreeSet::from([
        "devin_exporter_demo_mode",
        "devin_org_max_cycle_acu_limit",
        "devin_org_max_session_acu_limit",
        "devin_enterprise_max_cycle_acu_limit",
        "devin_malformed_session_fields_total",
        // Written only while the enterprise stream is the source; this world lists by org.
        "devin_exporter_stream_sessions_dropped_total",
    ]);
    assert!(absent.is_subset(&allowed), "never written: {absent:?}");
}
