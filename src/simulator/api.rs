//! The simulated Devin API endpoints.

use std::time::{Duration, SystemTime};

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};

use super::billing;
use super::model::SimSession;
use super::world::Filters;
use super::{FaultKind, Simulator};

/// Routes under `/v3` and, as some docs show, `/v3beta1`.
pub fn routes(sim: Simulator) -> Router {
    let mut router = Router::new();
    for prefix in ["/v3", "/v3beta1"] {
        router = router
            .route(
                &format!("{prefix}/organizations/{{org_id}}/sessions"),
                get(list_sessions),
            )
            .route(
                &format!("{prefix}/enterprise/organizations"),
                get(list_organizations),
            )
            .route(
                &format!("{prefix}/enterprise/sessions"),
                get(list_enterprise_sessions),
            )
            .route(&format!("{prefix}/self"), get(whoami))
            .route(
                &format!("{prefix}/enterprise/consumption/daily"),
                get(billing::enterprise_consumption),
            )
            .route(
                &format!("{prefix}/organizations/{{org_id}}/consumption/daily"),
                get(billing::org_consumption),
            )
            .route(
                &format!("{prefix}/enterprise/consumption/acu-limits/devin"),
                get(billing::acu_limits),
            )
            .route(&format!("{prefix}/enterprise/queue"), get(billing::queue));
    }
    router.with_state(sim)
}

pub(super) fn problem(status: StatusCode, detail: &str) -> Response {
    let body = json!({
        "type": "about:blank",
        "title": status.canonical_reason().unwrap_or("Error"),
        "status": status.as_u16(),
        "detail": detail,
    });
    (
        status,
        [(header::CONTENT_TYPE, "application/problem+json")],
        body.to_string(),
    )
        .into_response()
}

/// An early answer (401, 422): boxed, as a `Response` is large.
pub(super) type Rejection = Box<Response>;

fn validation(field: &str, msg: &str, kind: &str, input: &str) -> Rejection {
    let body =
        json!({"detail": [{"loc": ["query", field], "msg": msg, "type": kind, "input": input}]});
    Box::new((StatusCode::UNPROCESSABLE_ENTITY, axum::Json(body)).into_response())
}

/// Bearer-token check; `Err` is the 401 response.
pub(super) fn authorize(sim: &Simulator, headers: &HeaderMap) -> Result<(), Rejection> {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    match token {
        Some(t) if sim.inner.config.tokens.iter().any(|ok| ok == t) => Ok(()),
        Some(_) => Err(Box::new(problem(
            StatusCode::UNAUTHORIZED,
            "Invalid or expired credentials",
        ))),
        None => Err(Box::new(problem(
            StatusCode::UNAUTHORIZED,
            "Missing bearer token",
        ))),
    }
}

/// Latency, then any injected fault. `Some` is the response the fault replaces it with.
pub(super) async fn delay_and_faults(sim: &Simulator, org_id: Option<&str>) -> Option<Response> {
    let fault = sim.take_fault(org_id);
    if !sim.inner.config.latency.is_zero() {
        tokio::time::sleep(sim.inner.config.latency).await;
    }
    match fault? {
        FaultKind::Slow(extra) => {
            tokio::time::sleep(extra).await;
            None
        }
        FaultKind::Status(code) => {
            let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            Some(problem(status, "injected fault"))
        }
        FaultKind::MalformedJson => Some(
            (
                StatusCode::OK,
                [(header::CONTENT_TYPE, "application/json")],
                "{\"items\": [{\"session_id\": ",
            )
                .into_response(),
        ),
        FaultKind::RateLimit {
            retry_after_seconds,
            http_date,
        } => {
            let mut response = problem(StatusCode::TOO_MANY_REQUESTS, "Rate limit exceeded");
            if let Some(secs) = retry_after_seconds {
                let value = if http_date {
                    httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(secs))
                } else {
                    secs.to_string()
                };
                if let Ok(v) = value.parse() {
                    response.headers_mut().insert(header::RETRY_AFTER, v);
                }
            }
            Some(response)
        }
    }
}

/// Query parameters, as pairs (repeated keys allowed).
pub(super) type Params = Vec<(String, String)>;

fn single<'a>(params: &'a Params, key: &str) -> Option<&'a str> {
    params
        .iter()
        .rev()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

fn list_param(params: &Params, key: &str) -> Option<Vec<String>> {
    let values: Vec<String> = params
        .iter()
        .filter(|(k, _)| k == key || k == &format!("{key}[]"))
        .flat_map(|(_, v)| v.split(',').map(|s| s.trim().to_string()))
        .filter(|s| !s.is_empty())
        .collect();
    (!values.is_empty()).then_some(values)
}

pub(super) fn int_param(params: &Params, key: &str) -> Result<Option<i64>, Rejection> {
    match single(params, key) {
        None => Ok(None),
        Some(v) => v.parse().map(Some).map_err(|_| {
            validation(
                key,
                "Input should be a valid integer, unable to parse string as an integer",
                "int_parsing",
                v,
            )
        }),
    }
}

/// `first`: 1..=200, default 100.
pub(super) fn page_size(params: &Params) -> Result<usize, Rejection> {
    let Some(n) = int_param(params, "first")? else {
        return Ok(100);
    };
    let raw = single(params, "first").unwrap_or_default();
    if n < 1 {
        return Err(validation(
            "first",
            "Input should be greater than or equal to 1",
            "greater_than_equal",
            raw,
        ));
    }
    if n > 200 {
        return Err(validation(
            "first",
            "Input should be less than or equal to 200",
            "less_than_equal",
            raw,
        ));
    }
    Ok(n as usize)
}

fn encode_cursor(s: &SimSession) -> String {
    URL_SAFE_NO_PAD.encode(format!("{}:{}", s.created_at, s.id))
}

fn decode_cursor(cursor: &str) -> Option<(i64, String)> {
    let bytes = URL_SAFE_NO_PAD.decode(cursor).ok()?;
    let text = String::from_utf8(bytes).ok()?;
    let (created, id) = text.split_once(':')?;
    Some((created.parse().ok()?, id.to_string()))
}

fn session_json(s: &SimSession, org_id: &str) -> Value {
    let hex = s.id.trim_start_matches("devin-");
    json!({
        "session_id": s.id,
        "url": format!("https://app.devin.ai/sessions/{hex}"),
        "status": s.status,
        "status_detail": s.detail,
        "tags": s.tags,
        "org_id": org_id,
        "created_at": s.created_at,
        "updated_at": s.updated_at,
        "acus_consumed": s.acus,
        "pull_requests": s.prs.iter().enumerate().map(|(i, state)| json!({
            "pr_url": format!("https://github.com/acme/app/pull/{}", s.serial * 4 + i as u64 + 1),
            "pr_state": state,
        })).collect::<Vec<_>>(),
        "origin": s.origin,
        "category": s.category,
        "subcategory": s.category.map(|_| "Other"),
        "is_archived": s.archived,
        "title": format!("Session {} ({})", s.serial, s.origin),
        "user_id": s.service_user.is_none().then(|| format!("user-{}", s.user)),
        "service_user_id": s.service_user,
        "playbook_id": s.playbook,
        "parent_session_id": null,
        "child_session_ids": null,
        "structured_output": null,
    })
}

/// `first`, the filters and the `after` cursor (created_at, session id) of a session listing.
type ListingParams = (usize, Filters, Option<(i64, String)>);

/// Reads the [`ListingParams`] of a session listing.
fn listing_params(sim: &Simulator, params: &Params) -> Result<ListingParams, Rejection> {
    let first = page_size(params)?;
    let filters = Filters {
        created_after: int_param(params, "created_after")?,
        created_before: int_param(params, "created_before")?,
        updated_after: int_param(params, "updated_after")?,
        updated_before: int_param(params, "updated_before")?,
        is_archived: match single(params, "is_archived") {
            None => None,
            Some("true") => Some(true),
            Some("false") => Some(false),
            Some(v) => {
                return Err(validation(
                    "is_archived",
                    "Input should be a valid boolean",
                    "bool_parsing",
                    v,
                ));
            }
        },
        origins: list_param(params, "origins"),
        category: single(params, "category").map(String::from),
        session_ids: list_param(params, "session_ids"),
        exclusive: sim.inner.config.exclusive_time_bounds,
    };
    let after = match single(params, "after") {
        None => None,
        Some(c) => Some(
            decode_cursor(c)
                .ok_or_else(|| validation("after", "Invalid cursor", "value_error", c))?,
        ),
    };
    Ok((first, filters, after))
}

/// `GET /v3/enterprise/sessions`: every org's sessions in one listing, newest first, each
/// naming its org; the same filters and cursors as an org's listing.
async fn list_enterprise_sessions(
    State(sim): State<Simulator>,
    headers: HeaderMap,
    Query(params): Query<Params>,
) -> Response {
    sim.count_request(None);
    if let Err(r) = authorize(&sim, &headers) {
        return *r;
    }
    if sim.inner.config.forbid_enterprise_sessions {
        return problem(
            StatusCode::FORBIDDEN,
            "Missing permission ViewAccountSessions for the enterprise",
        );
    }
    if let Some(r) = delay_and_faults(&sim, None).await {
        return r;
    }
    let (first, filters, after) = match listing_params(&sim, &params) {
        Ok(p) => p,
        Err(r) => return *r,
    };
    let world = sim.world();
    let after = after.as_ref().map(|(c, id)| (*c, id.as_str()));
    // No org can hold more than `first` of the page: take that many of each, then the
    // newest `first` of all (and one more, to tell whether more follow).
    let mut page: Vec<(&SimSession, &str)> = world
        .orgs
        .iter()
        .flat_map(|org| {
            let (sessions, _) = org.list(&filters, after, first + 1);
            sessions.into_iter().map(|s| (s, org.id.as_str()))
        })
        .collect();
    let newest_first = |a: &(&SimSession, &str), b: &(&SimSession, &str)| {
        (b.0.created_at, &b.0.id).cmp(&(a.0.created_at, &a.0.id))
    };
    if page.len() > first + 1 {
        page.select_nth_unstable_by(first, newest_first);
        page.truncate(first + 1);
    }
    page.sort_unstable_by(newest_first);
    let more = page.len() > first;
    page.truncate(first);
    let total = (after.is_none() && !filters.has_time_filter())
        .then(|| world.orgs.iter().map(|o| o.count(&filters)).sum::<usize>());
    let now = world.clock.now();
    let body = json!({
        "items": page.iter().map(|(s, org)| session_json(s, org)).collect::<Vec<_>>(),
        "end_cursor": if more { page.last().map(|(s, _)| encode_cursor(s)) } else { None },
        "has_next_page": more,
        "total": total,
    });
    drop(world);
    with_date(axum::Json(body).into_response(), now)
}

async fn list_sessions(
    State(sim): State<Simulator>,
    Path(org_id): Path<String>,
    headers: HeaderMap,
    Query(params): Query<Params>,
) -> Response {
    sim.count_request(Some(&org_id));
    if let Err(r) = authorize(&sim, &headers) {
        return *r;
    }
    if sim.inner.config.forbidden_orgs.contains(&org_id) {
        return problem(
            StatusCode::FORBIDDEN,
            &format!("Missing permission ViewOrgSessions for organization {org_id}"),
        );
    }
    if let Some(r) = delay_and_faults(&sim, Some(&org_id)).await {
        return r;
    }
    let (first, filters, after) = match listing_params(&sim, &params) {
        Ok(p) => p,
        Err(r) => return *r,
    };
    let world = sim.world();
    let Some(org) = world.orgs.iter().find(|o| o.id == org_id) else {
        return problem(
            StatusCode::NOT_FOUND,
            &format!("Organization {org_id} not found"),
        );
    };
    let (page, more) = org.list(
        &filters,
        after.as_ref().map(|(c, id)| (*c, id.as_str())),
        first,
    );
    // Like the real API, `total` is optional: sent only for unfiltered first pages.
    let total = (after.is_none() && !filters.has_time_filter()).then(|| org.count(&filters));
    let now = world.clock.now();
    let body = json!({
        "items": page.iter().map(|s| session_json(s, &org.id)).collect::<Vec<_>>(),
        "end_cursor": if more { page.last().map(|s| encode_cursor(s)) } else { None },
        "has_next_page": more,
        "total": total,
    });
    drop(world);
    with_date(axum::Json(body).into_response(), now)
}

/// Sends the simulated clock as the `Date` header, as a real server sends its own.
pub(super) fn with_date(mut response: Response, now: i64) -> Response {
    let at = SystemTime::UNIX_EPOCH + Duration::from_secs(u64::try_from(now).unwrap_or(0));
    if let Ok(v) = httpdate::fmt_http_date(at).parse() {
        response.headers_mut().insert(header::DATE, v);
    }
    response
}

async fn list_organizations(
    State(sim): State<Simulator>,
    headers: HeaderMap,
    Query(params): Query<Params>,
) -> Response {
    sim.count_request(None);
    if let Err(r) = authorize(&sim, &headers) {
        return *r;
    }
    if let Some(r) = delay_and_faults(&sim, None).await {
        return r;
    }
    let first = match page_size(&params) {
        Ok(n) => n,
        Err(r) => return *r,
    };
    let skip = match offset_cursor(&params) {
        Ok(n) => n,
        Err(r) => return *r,
    };
    let world = sim.world();
    let start = world.clock.now() - 400 * 86_400;
    let orgs: Vec<Value> = world
        .orgs
        .iter()
        .skip(skip)
        .take(first)
        .map(|o| {
            json!({
                "org_id": o.id,
                "name": o.name,
                "created_at": start + o.index as i64 * 86_400,
                "updated_at": start + o.index as i64 * 86_400,
                "max_session_acu_limit": o.max_session_acu_limit,
                "max_cycle_acu_limit": o.max_cycle_acu_limit,
            })
        })
        .collect();
    let more = skip + orgs.len() < world.orgs.len();
    let body = json!({
        "items": orgs,
        "end_cursor": more.then(|| encode_offset(skip + first)),
        "has_next_page": more,
        "total": world.orgs.len(),
    });
    axum::Json(body).into_response()
}

/// The cursor of a listing paged by position: the offset of the next page.
pub(super) fn encode_offset(offset: usize) -> String {
    URL_SAFE_NO_PAD.encode(offset.to_string())
}

/// The offset an `after` cursor of [`encode_offset`] stands for (0 without one).
pub(super) fn offset_cursor(params: &Params) -> Result<usize, Rejection> {
    match single(params, "after") {
        None => Ok(0),
        Some(c) => URL_SAFE_NO_PAD
            .decode(c)
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| validation("after", "Invalid cursor", "value_error", c)),
    }
}

async fn whoami(State(sim): State<Simulator>, headers: HeaderMap) -> Response {
    sim.count_request(None);
    if let Err(r) = authorize(&sim, &headers) {
        return *r;
    }
    axum::Json(json!({
        "principal_type": "service_user",
        "service_user_id": "service-user-simulator",
        "name": "simulator",
        "org_id": null,
    }))
    .into_response()
}
