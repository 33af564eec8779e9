//! The billing and capacity families of a scrape: billed ACUs by product (cycle to date and
//! counters, the enterprise's and each org's), the cycle start, the enterprise's cycle limit,
//! the queue, and each source's health. A source switched off (no permission, or
//! `DEVIN_BILLING=off`) leaves none of its series. The orgs' cycle limits are written with
//! discovery's, in `render`, where one source is picked per org.

use super::families::{
    BILLED_ACUS, BILLING_CYCLE_ACUS, BILLING_CYCLE_START, BILLING_LAST_SUCCESS, BILLING_UP,
    ENTERPRISE_CYCLE_LIMIT, ORG_BILLED_ACUS, ORG_BILLING_CYCLE_ACUS, QUEUE_PRESSURE,
    QUEUE_SESSIONS,
};
use super::text::{Family, unix_seconds};
use crate::billing::capacity::Pressure;
use crate::billing::ledger::Ledger;
use crate::billing::{BillingView, Source};

/// A scope's cycle-to-date gauge and counter series: one per product label the ledger has
/// admitted (a product missing from the cycle reads 0, as the API says).
fn push_ledger(cycle: &mut Family, billed: &mut Family, org: Option<&str>, ledger: &Ledger) {
    let shown = ledger.shown.as_ref();
    for (product, micros) in &ledger.billed {
        let in_cycle = shown.and_then(|c| c.acus.get(product)).copied();
        let values: &[&str] = match org {
            Some(id) => &[id, product],
            None => &[product],
        };
        cycle.millionths(values, in_cycle.unwrap_or(0));
        billed.millionths(values, *micros);
    }
}

/// Writes the billing families of `view` into `out`.
pub(super) fn write_to(out: &mut Vec<u8>, view: &BillingView) {
    let mut cycle = Family::new(&BILLING_CYCLE_ACUS);
    let mut org_cycle = Family::new(&ORG_BILLING_CYCLE_ACUS);
    let mut billed = Family::new(&BILLED_ACUS);
    let mut org_billed = Family::new(&ORG_BILLED_ACUS);
    let mut cycle_start = Family::new(&BILLING_CYCLE_START);
    let mut enterprise_limit = Family::new(&ENTERPRISE_CYCLE_LIMIT);
    let mut queue = Family::new(&QUEUE_SESSIONS);
    let mut pressure = Family::new(&QUEUE_PRESSURE);
    let mut up = Family::new(&BILLING_UP);
    let mut last_success = Family::new(&BILLING_LAST_SUCCESS);

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
            pressure.count(&[p.name()], u64::from(p == q.pressure));
        }
    }
    for source in Source::ALL {
        let Some(h) = view.health(source).filter(|h| !h.off) else {
            continue;
        };
        let label = [source.name()];
        if let Some(ok) = h.up {
            up.count(&label, u64::from(ok));
        }
        if let Some(t) = h.last_success {
            last_success.value(&label, unix_seconds(t));
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
