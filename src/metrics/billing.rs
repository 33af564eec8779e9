//! The billing and capacity families of a scrape: billed ACUs by product (cycle to date and
//! counters, the enterprise's and each org's), the cycle start, the enterprise's cycle limit,
//! the queue, and each source's health. A source switched off (no permission, or
//! `DEVIN_BILLING=off`) leaves none of its series. The orgs' cycle limits are written with
//! discovery's, in `render`, where one source is picked per org.

use super::render::seconds;
use super::text::Family;
use crate::billing::capacity::Pressure;
use crate::billing::ledger::Ledger;
use crate::billing::{BillingView, Source};

/// A scope's cycle-to-date gauge and counter series: one per product label the ledger has
/// admitted (a product missing from the cycle reads 0, as the API says).
fn push_ledger(cycle: &mut Family, billed: &mut Family, org: Option<&str>, ledger: &Ledger) {
    let shown = ledger.shown.as_ref();
    for (product, micros) in &ledger.billed {
        let in_cycle = shown.and_then(|c| c.acus.get(product)).copied();
        let labels: &[(&str, &str)] = match org {
            Some(id) => &[("org_id", id), ("product", product)],
            None => &[("product", product)],
        };
        cycle.millionths(labels, in_cycle.unwrap_or(0));
        billed.millionths(labels, *micros);
    }
}

/// Writes the billing families of `view` into `out`.
pub(super) fn write(out: &mut Vec<u8>, view: &BillingView) {
    let mut cycle = Family::gauge(
        "devin_billing_cycle_acus",
        "ACUs the enterprise was billed in the current billing cycle so far, by product.",
    );
    let mut org_cycle = Family::gauge(
        "devin_org_billing_cycle_acus",
        "ACUs the org was billed in the current billing cycle so far, by product.",
    );
    let mut billed = Family::counter(
        "devin_billed_acus_total",
        "ACUs billed to the enterprise while this process watches, by product (born at 0 at the first read).",
    );
    let mut org_billed = Family::counter(
        "devin_org_billed_acus_total",
        "ACUs billed to the org while this process watches, by product (born at 0 at the first read).",
    );
    let mut cycle_start = Family::gauge(
        "devin_billing_cycle_start_timestamp_seconds",
        "Unix time the current billing cycle started (its first day, 08:00 UTC).",
    );
    let mut enterprise_limit = Family::gauge(
        "devin_enterprise_max_cycle_acu_limit",
        "Most ACUs the enterprise may use per billing cycle (absent when unlimited).",
    );
    let mut queue = Family::gauge(
        "devin_queue_sessions",
        "Sessions waiting to start (new, claimed, resuming).",
    );
    let mut pressure = Family::gauge(
        "devin_queue_pressure",
        "Pressure on the queue: 1 for the current state (normal <= 10, elevated 11..50, high > 50), 0 for the others.",
    );
    let mut up = Family::gauge(
        "devin_billing_up",
        "1 if the billing source's last refresh succeeded; absent while it is off.",
    );
    let mut last_success = Family::gauge(
        "devin_billing_last_success_timestamp_seconds",
        "Unix time of the billing source's last successful refresh (org_consumption: its stalest org).",
    );

    if let Some(ledger) = &view.enterprise {
        push_ledger(&mut cycle, &mut billed, None, ledger);
    }
    for (id, ledger) in &view.orgs {
        push_ledger(&mut org_cycle, &mut org_billed, Some(id), ledger);
    }
    if let Some(start) = view.cycle_start() {
        cycle_start.value(&[], start as f64);
    }
    if let Some(limit) = view.limits.as_ref().and_then(|l| l.enterprise) {
        enterprise_limit.value(&[], limit);
    }
    if let Some(q) = view.queue {
        queue.count(&[], q.size);
        for p in Pressure::ALL {
            pressure.count(&[("status", p.name())], u64::from(p == q.pressure));
        }
    }
    for source in Source::ALL {
        let Some(h) = view.health(source).filter(|h| !h.off) else {
            continue;
        };
        let label = [("source", source.name())];
        if let Some(ok) = h.up {
            up.count(&label, u64::from(ok));
        }
        if let Some(t) = h.last_success {
            last_success.value(&label, seconds(t));
        }
    }
    for family in [
        cycle,
        org_cycle,
        billed,
        org_billed,
        cycle_start,
        enterprise_limit,
        queue,
        pressure,
        up,
        last_success,
    ] {
        family.write_to(out);
    }
}
