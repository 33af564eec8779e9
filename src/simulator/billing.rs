//! Billing and capacity in the simulated world: daily consumption, cycle ACU limits and the
//! queue, as the API reference describes them.
//!
//! - Billing days break at 08:00 UTC on the simulated clock. A billing cycle is
//!   [`CYCLE_DAYS`] billing days, the first starting 1970-01-01 08:00 UTC (a fixed length, so
//!   that a test can find the next boundary without a calendar).
//! - An org's `devin` ACUs of a day are its sessions' ACU growth on that day, to the
//!   millionth (see `SimOrg::billed`). The enterprise's `devin` is the sum of its orgs';
//!   `cascade` and `terminal` are tied to no org: they accrue at a seeded rate that changes
//!   every simulated hour, and appear only in the enterprise's figures.
//! - Cycle limits: the orgs' `max_cycle_acu_limit`, an enterprise limit and a user-scope one
//!   (which the exporter does not show).
//! - The queue: sessions in new, claimed or resuming across the orgs; its status from the
//!   API's thresholds.

use std::collections::BTreeMap;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use rand::RngExt;
use serde_json::{Value, json};

use super::Simulator;
use super::api::{
    Params, Rejection, authorize, delay_and_faults, int_param, offset_cursor, page_size, problem,
    with_date,
};
use super::model::{mix, rng};

const DAY: i64 = 86_400;
const HOUR: i64 = 3600;
/// Billing days start at 08:00 UTC (midnight PST).
const DAY_OFFSET: i64 = 8 * HOUR;
/// Billing days per cycle.
pub const CYCLE_DAYS: i64 = 30;
/// Most days one consumption answer lists.
const MAX_DAYS: i64 = 400;
/// The enterprise's cycle limit.
pub const ENTERPRISE_CYCLE_LIMIT: i64 = 1_000_000;

/// Products tied to no org, with the range of their rate in millionths of an ACU per hour.
const UNATTACHED: [(&str, u64, u64); 2] = [
    ("cascade", 1_000_000, 6_000_000),
    ("terminal", 200_000, 1_500_000),
];

/// The start of the billing day holding `t`.
pub fn day_start(t: i64) -> i64 {
    t - (t - DAY_OFFSET).rem_euclid(DAY)
}

/// The start of the billing cycle holding `t`.
pub fn cycle_start(t: i64) -> i64 {
    t - (t - DAY_OFFSET).rem_euclid(CYCLE_DAYS * DAY)
}

/// Millionths of product `index` of [`UNATTACHED`] used in `[from, to)`: each hour at its own
/// seeded rate, a partial hour pro rata (rounded down, so the figure never shrinks as `to`
/// grows).
fn unattached(seed: u64, index: usize, from: i64, to: i64) -> u64 {
    let (_, lo, hi) = UNATTACHED[index];
    let mut total = 0;
    let mut hour = from.div_euclid(HOUR);
    while hour * HOUR < to {
        let (a, b) = (from.max(hour * HOUR), to.min((hour + 1) * HOUR));
        if b > a {
            let rate: u64 =
                rng(mix(mix(seed, 60_000 + index as u64), hour as u64)).random_range(lo..hi);
            total += rate * (b - a) as u64 / HOUR as u64;
        }
        hour += 1;
    }
    total
}

/// ACUs of millionths, as the API writes them.
fn acus(micros: u64) -> f64 {
    micros as f64 / 1_000_000.0
}

/// A consumption body: the days from the one holding `time_after` (else the cycle's first)
/// up to now and before `time_before`, each with its products' ACUs.
fn consumption(
    now: i64,
    params: &Params,
    products: impl Fn(i64, i64) -> BTreeMap<&'static str, u64>,
) -> Result<Value, Rejection> {
    let after = int_param(params, "time_after")?;
    let before = int_param(params, "time_before")?;
    let first = day_start(after.unwrap_or_else(|| cycle_start(now))).max(now - MAX_DAYS * DAY);
    let mut days = Vec::new();
    let mut total = 0u64;
    let mut day = first;
    while day <= now && before.is_none_or(|b| day < b) {
        let by_product = products(day, (day + DAY).min(now));
        let sum: u64 = by_product.values().sum();
        total += sum;
        days.push(json!({
            "date": day,
            "acus": acus(sum),
            "acus_by_product": by_product
                .iter()
                .map(|(p, m)| (p.to_string(), json!(acus(*m))))
                .collect::<serde_json::Map<_, _>>(),
        }));
        day += DAY;
    }
    Ok(json!({"total_acus": acus(total), "consumption_by_date": days}))
}

/// The 403 of a billing source the simulator is told to forbid.
fn forbidden(sim: &Simulator, source: &str, permission: &str) -> Option<Response> {
    sim.inner
        .config
        .forbidden_billing
        .iter()
        .any(|s| s == source)
        .then(|| {
            problem(
                StatusCode::FORBIDDEN,
                &format!("Missing permission {permission}"),
            )
        })
}

/// Authorization, forbidden sources, latency and faults: `Some` is the early answer.
async fn gate(
    sim: &Simulator,
    headers: &HeaderMap,
    source: &str,
    permission: &str,
) -> Option<Response> {
    sim.count_request(None);
    if let Err(r) = authorize(sim, headers) {
        return Some(*r);
    }
    if let Some(r) = forbidden(sim, source, permission) {
        return Some(r);
    }
    delay_and_faults(sim, None).await
}

pub(super) async fn enterprise_consumption(
    State(sim): State<Simulator>,
    headers: HeaderMap,
    Query(params): Query<Params>,
) -> Response {
    if let Some(r) = gate(
        &sim,
        &headers,
        "enterprise_consumption",
        "ViewAccountConsumption",
    )
    .await
    {
        return r;
    }
    let world = sim.world();
    let now = world.clock.now();
    let seed = sim.inner.config.seed;
    let body = consumption(now, &params, |day, end| {
        let devin = world.orgs.iter().filter_map(|o| o.billed.get(&day)).sum();
        let mut products = BTreeMap::from([("devin", devin)]);
        for (i, (name, _, _)) in UNATTACHED.iter().enumerate() {
            products.insert(*name, unattached(seed, i, day, end));
        }
        products
    });
    drop(world);
    match body {
        Ok(b) => with_date(axum::Json(b).into_response(), now),
        Err(r) => *r,
    }
}

pub(super) async fn org_consumption(
    State(sim): State<Simulator>,
    Path(org_id): Path<String>,
    headers: HeaderMap,
    Query(params): Query<Params>,
) -> Response {
    if let Some(r) = gate(&sim, &headers, "org_consumption", "ViewOrgConsumption").await {
        return r;
    }
    if sim
        .inner
        .config
        .forbidden_consumption_orgs
        .contains(&org_id)
    {
        return problem(
            StatusCode::FORBIDDEN,
            &format!("Missing permission ViewOrgConsumption for organization {org_id}"),
        );
    }
    let world = sim.world();
    let now = world.clock.now();
    let Some(org) = world.orgs.iter().find(|o| o.id == org_id) else {
        return problem(
            StatusCode::NOT_FOUND,
            &format!("Organization {org_id} not found"),
        );
    };
    let body = consumption(now, &params, |day, _| {
        BTreeMap::from([("devin", org.billed.get(&day).copied().unwrap_or(0))])
    });
    drop(world);
    match body {
        Ok(b) => with_date(axum::Json(b).into_response(), now),
        Err(r) => *r,
    }
}

pub(super) async fn acu_limits(
    State(sim): State<Simulator>,
    headers: HeaderMap,
    Query(params): Query<Params>,
) -> Response {
    if let Some(r) = gate(&sim, &headers, "acu_limits", "ViewAccountConsumption").await {
        return r;
    }
    let (first, skip) = match (page_size(&params), offset_cursor(&params)) {
        (Ok(first), Ok(skip)) => (first, skip),
        (Err(r), _) | (_, Err(r)) => return *r,
    };
    let world = sim.world();
    let now = world.clock.now();
    let mut items = vec![
        json!({"cycle_acu_limit": ENTERPRISE_CYCLE_LIMIT, "scope": "enterprise",
        "org_id": null, "user_id": null}),
    ];
    items.extend(world.orgs.iter().filter_map(|o| {
        o.max_cycle_acu_limit.map(|limit| {
            json!({"cycle_acu_limit": limit as i64, "scope": "organization", "org_id": o.id,
                "user_id": null})
        })
    }));
    items.push(
        json!({"cycle_acu_limit": 500, "scope": "user", "org_id": null,
        "user_id": "user-1"}),
    );
    drop(world);
    let more = skip + first < items.len();
    let page: Vec<Value> = items.into_iter().skip(skip).take(first).collect();
    let body = json!({
        "items": page,
        "end_cursor": more.then(|| super::api::encode_offset(skip + first)),
        "has_next_page": more,
    });
    with_date(axum::Json(body).into_response(), now)
}

pub(super) async fn queue(State(sim): State<Simulator>, headers: HeaderMap) -> Response {
    if let Some(r) = gate(&sim, &headers, "queue", "ViewAccountMetrics").await {
        return r;
    }
    let world = sim.world();
    let now = world.clock.now();
    let size = world
        .orgs
        .iter()
        .flat_map(|o| &o.sessions)
        .filter(|s| matches!(s.status, "new" | "claimed" | "resuming"))
        .count();
    drop(world);
    let status = match size {
        0..=10 => "normal",
        11..=50 => "elevated",
        _ => "high",
    };
    with_date(
        axum::Json(json!({"queue_size": size, "status": status})).into_response(),
        now,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_and_cycles_break_at_8_utc() {
        // 2023-11-14 22:13:20 UTC: the day began at 08:00 that day.
        let t = 1_700_000_000;
        assert_eq!(day_start(t), 1_699_948_800);
        assert_eq!(day_start(1_699_948_800), 1_699_948_800);
        assert_eq!(day_start(1_699_948_799), 1_699_948_800 - DAY);
        let c = cycle_start(t);
        assert_eq!((c - DAY_OFFSET) % (CYCLE_DAYS * DAY), 0);
        assert!(c <= t && t < c + CYCLE_DAYS * DAY);
    }

    #[test]
    fn an_orgs_billed_days_are_its_sessions_acu_growth() {
        use super::super::world::SimOrg;
        let start = 1_700_000_000;
        let mut org = SimOrg::new(3, 0, 300, 10 * DAY, 60.0, start);
        org.advance(3, 60.0, start + 2 * DAY);
        org.touch(3, 20, start + 2 * DAY, 1);
        let sessions: u64 = org.sessions.iter().map(|s| s.acu_micros()).sum();
        assert!(sessions > 0);
        assert_eq!(org.billed.values().sum::<u64>(), sessions);
        assert!(org.billed.keys().all(|d| day_start(*d) == *d));
        assert!(org.billed.len() > 3, "spread over the days it happened");
    }

    #[test]
    fn unattached_usage_adds_up_and_never_shrinks() {
        let day = day_start(1_700_000_000);
        let whole = unattached(7, 0, day, day + DAY);
        let halves =
            unattached(7, 0, day, day + 12 * HOUR) + unattached(7, 0, day + 12 * HOUR, day + DAY);
        assert_eq!(whole, halves);
        assert!((24_000_000..=144_000_000).contains(&whole));
        let mut last = 0;
        for end in (day..day + 2 * HOUR).step_by(97) {
            let u = unattached(7, 1, day, end);
            assert!(u >= last);
            last = u;
        }
    }
}
