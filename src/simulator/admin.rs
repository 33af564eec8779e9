//! `/sim/` routes that control the simulated world (development tool, no auth).

use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;

use super::{Fault, Simulator};

/// The admin routes.
pub fn routes(sim: Simulator) -> Router {
    Router::new()
        .route("/sim/totals", get(totals))
        .route("/sim/pause", post(pause))
        .route("/sim/resume", post(resume))
        .route("/sim/advance", post(advance))
        .route("/sim/touch", post(touch))
        .route("/sim/create", post(create))
        .route("/sim/delete", post(delete))
        .route("/sim/transition", post(transition))
        .route("/sim/faults", post(fault))
        .route("/sim/requests", get(requests))
        .with_state(sim)
}

async fn totals(State(sim): State<Simulator>) -> Response {
    Json(json!(sim.totals())).into_response()
}

async fn pause(State(sim): State<Simulator>) -> Response {
    sim.pause();
    Json(json!({"paused": true, "now": sim.now()})).into_response()
}

async fn resume(State(sim): State<Simulator>) -> Response {
    sim.resume();
    Json(json!({"paused": false, "now": sim.now()})).into_response()
}

#[derive(Deserialize)]
struct Advance {
    seconds: u64,
}

async fn advance(State(sim): State<Simulator>, Query(q): Query<Advance>) -> Response {
    sim.advance(Duration::from_secs(q.seconds));
    Json(json!({"now": sim.now()})).into_response()
}

#[derive(Deserialize)]
struct Change {
    org_id: String,
    n: usize,
}

fn changed(n: usize) -> Response {
    if n == 0 {
        (
            StatusCode::NOT_FOUND,
            Json(json!({"error": "unknown org or nothing to change"})),
        )
            .into_response()
    } else {
        Json(json!({"changed": n})).into_response()
    }
}

async fn touch(State(sim): State<Simulator>, Query(q): Query<Change>) -> Response {
    changed(sim.touch(&q.org_id, q.n))
}

async fn create(State(sim): State<Simulator>, Query(q): Query<Change>) -> Response {
    changed(sim.create(&q.org_id, q.n))
}

async fn delete(State(sim): State<Simulator>, Query(q): Query<Change>) -> Response {
    changed(sim.delete(&q.org_id, q.n))
}

#[derive(Deserialize)]
struct Transition {
    org_id: String,
    #[serde(default = "one")]
    n: usize,
    status: String,
    /// Absent for a null detail.
    status_detail: Option<String>,
}

fn one() -> usize {
    1
}

/// Moves live sessions into a status now, e.g.
/// `?org_id=org-x&status=suspended&status_detail=out_of_credits`.
async fn transition(State(sim): State<Simulator>, Query(q): Query<Transition>) -> Response {
    match sim.transition(&q.org_id, q.n, &q.status, q.status_detail.as_deref()) {
        Ok(ids) if ids.is_empty() => changed(0),
        Ok(ids) => Json(json!({"changed": ids.len(), "session_ids": ids, "now": sim.now()}))
            .into_response(),
        Err(e) => (StatusCode::UNPROCESSABLE_ENTITY, Json(json!({"error": e}))).into_response(),
    }
}

async fn fault(State(sim): State<Simulator>, Json(f): Json<Fault>) -> Response {
    sim.inject(f);
    Json(json!({"queued": true})).into_response()
}

async fn requests(State(sim): State<Simulator>) -> Response {
    let per_org: serde_json::Map<String, serde_json::Value> = sim
        .org_ids()
        .into_iter()
        .map(|id| {
            let n = sim.org_request_count(&id);
            (id, json!(n))
        })
        .collect();
    Json(json!({"total": sim.request_count(), "per_org": per_org})).into_response()
}
