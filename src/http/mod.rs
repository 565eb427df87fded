//! The HTTP surface: `POST`/`GET /graphql`, `/graphql/ws`, GraphiQL at `/` with its
//! assets served from the binary, `POST /hooks/{provider}/{token}` (providers' delivery
//! status), the public demo sessions (`/demo/{tenant}/sessions`, `/demo-sessions/…`),
//! `/healthz`, `/readyz`, `/metrics`.

mod demo;
mod hooks;
mod metrics;
pub mod persisted;
mod ws;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use async_graphql::http::{WebSocketProtocols, ALL_WEBSOCKET_PROTOCOLS};
use async_graphql::parser::types::OperationType;
use async_graphql::{BatchRequest, BatchResponse, Data};
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{DefaultBodyLimit, Path, RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use diesel_async::SimpleAsyncConnection;
use serde_json::json;
use uuid::Uuid;

use crate::app::AppState;
use crate::auth::{authenticate, authenticate_request, KnownKeys, Principal, Proof};
use crate::error::AppError;
use crate::graphql::budget::{Throttle, Throttled};
use crate::graphql::context::RequestContext;
use crate::graphql::guard::{check_text, measure_result, selected, Prepared, RequestGuard};
use crate::observed::OBSERVED;
use crate::speed::Mechanism;
use crate::telemetry::TELEMETRY;

/// How long a WebSocket may stay open without a valid `connection_init`.
pub const WS_INIT_TIMEOUT: Duration = Duration::from_secs(5);

/// The router as a service that knows each connection's peer address (the demo
/// sessions' visitors are known by it).
pub fn service(
    state: AppState,
) -> axum::extract::connect_info::IntoMakeServiceWithConnectInfo<Router, std::net::SocketAddr> {
    router(state).into_make_service_with_connect_info::<std::net::SocketAddr>()
}

pub fn router(state: AppState) -> Router {
    let body_limit = state.limits.max_body_bytes;
    Router::new()
        .route("/", get(graphiql))
        .route("/assets/graphiql/{file}", get(graphiql_asset))
        .route(
            "/graphql",
            get(graphql_get).post(graphql_post).layer(cors()),
        )
        .route("/graphql/ws", get(graphql_ws))
        .route(
            "/hooks/{provider}/{token}",
            axum::routing::post(hooks::provider_hook),
        )
        .route(
            "/hooks/crm/{provider}/{token}",
            axum::routing::post(hooks::crm_hook),
        )
        .route(
            "/demo/{tenant}/sessions",
            axum::routing::post(demo::start).layer(cors()),
        )
        .route("/demo-sessions/{token}", get(demo::show).layer(cors()))
        .route(
            "/demo-sessions/{token}/share",
            axum::routing::post(demo::share).layer(cors()),
        )
        .route(
            "/demo-sessions/{token}/convert",
            axum::routing::post(demo::convert).layer(cors()),
        )
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics::metrics))
        .layer(DefaultBodyLimit::max(body_limit))
        .with_state(state)
}

/// Cross-origin calls of `/graphql` from web pages (the testimonial widget embedded in
/// customers' sites, dashboards): any origin may send `Authorization` and `Content-Type`
/// with GET or POST and read the answer. No cookies are involved (`Allow-Credentials` is
/// never sent), so a page can only act with a key it holds; a widget key is refused on
/// sites its widget does not allow ([`crate::auth::Principal::refuses_origin`]).
fn cors() -> tower_http::cors::CorsLayer {
    use tower_http::cors::{AllowOrigin, CorsLayer};
    CorsLayer::new()
        .allow_origin(AllowOrigin::mirror_request())
        .allow_methods([axum::http::Method::GET, axum::http::Method::POST])
        .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE])
        .max_age(std::time::Duration::from_secs(3600))
}

fn error_body(code: &str, message: &str) -> serde_json::Value {
    json!({ "errors": [{ "message": message, "extensions": { "code": code } }] })
}

fn reject(state: &AppState, status: StatusCode, code: &str, message: &str) -> Response {
    TELEMETRY.error(code);
    state
        .metrics
        .rejected_requests
        .fetch_add(1, Ordering::Relaxed);
    (status, axum::Json(error_body(code, message))).into_response()
}

fn app_error_response(state: &AppState, error: AppError) -> Response {
    TELEMETRY.error(error.code());
    let status = match error {
        AppError::Unauthenticated(_) => {
            state
                .metrics
                .unauthenticated
                .fetch_add(1, Ordering::Relaxed);
            StatusCode::UNAUTHORIZED
        }
        AppError::Forbidden(_) => StatusCode::FORBIDDEN,
        AppError::BadUserInput { .. } => StatusCode::BAD_REQUEST,
        AppError::RateLimited(_) => StatusCode::TOO_MANY_REQUESTS,
        AppError::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        AppError::Internal { .. } => StatusCode::INTERNAL_SERVER_ERROR,
    };
    let error: async_graphql::Error = error.into();
    let body = json!({ "errors": [{ "message": error.message, "extensions": error.extensions }] });
    (status, axum::Json(body)).into_response()
}

/// Authenticates the request, reads its operations (`read`) and runs them. A caller taken
/// from the known keys whose confirmation the database then refuses (a key revoked since,
/// or one the replica has not replayed yet) is authenticated again by a lookup (on the
/// primary), which answers 401 for a revoked key, and the
/// operations are read and run again: nothing was written for the refused caller.
async fn serve_graphql(
    state: &AppState,
    headers: &HeaderMap,
    (method, extensions): (&'static str, &axum::http::Extensions),
    mut read: impl FnMut() -> Result<BatchRequest, Unreadable>,
) -> Response {
    let header = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let origin = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok());
    let caller = Caller {
        header,
        origin,
        media: Media::accepted(headers),
        started: std::time::Instant::now(),
        method,
        peer: extensions
            .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
            .map(|c| c.0.ip()),
        user_agent: headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok()),
    };
    // Every log line of the request carries its correlation id, which the answer echoes.
    let correlation = Uuid::new_v4();
    let span = tracing::info_span!(
        "graphql",
        correlation_id = %correlation,
        tenant_id = tracing::field::Empty,
        operation = tracing::field::Empty,
    );
    let mut response = tracing::Instrument::instrument(
        async {
            let known =
                (state.limits.speed.on(Mechanism::KnownKeys)).then_some(&*state.hub.known_keys);
            if let Some(response) = attempt(state, &caller, known, &mut read).await {
                return response;
            }
            state.hub.known_keys.forget(header);
            match attempt(state, &caller, None, &mut read).await {
                Some(response) => response,
                None => app_error_response(
                    state,
                    AppError::internal(&"a looked-up key went unconfirmed"),
                ),
            }
        },
        span,
    )
    .await;
    if let Ok(value) = HeaderValue::from_str(&correlation.to_string()) {
        response.headers_mut().insert(CORRELATION_HEADER, value);
    }
    response
}

/// The response header naming a request's correlation id (also on its log lines).
pub const CORRELATION_HEADER: &str = "x-correlation-id";

/// One try at [`serve_graphql`]: `None` when the database refused the caller taken from
/// `known` (nothing has been sent to the client).
async fn attempt(
    state: &AppState,
    request: &Caller<'_>,
    known: Option<&KnownKeys>,
    read: &mut impl FnMut() -> Result<BatchRequest, Unreadable>,
) -> Option<Response> {
    let Caller {
        header,
        origin,
        media,
        started,
        ..
    } = *request;
    let caller = match authenticate_request(&state.pool, known, header, state.limits.speed).await {
        Ok(caller) => caller,
        Err(error) => return Some(app_error_response(state, error)),
    };
    tracing::Span::current().record(
        "tenant_id",
        tracing::field::display(caller.principal.tenant_id()),
    );
    let known = matches!(caller.proof, Proof::Known(_));
    // A widget key from a web page of a site its widget does not allow runs nothing.
    let operations = match caller.principal.refuses_origin(origin) {
        true => Err(reject(
            state,
            StatusCode::FORBIDDEN,
            "FORBIDDEN",
            "this widget is not allowed on this site",
        )),
        false => read().map_err(|u| reject(state, u.status, u.code, &u.message)),
    };
    let budget_holder = caller.principal.budget_holder();
    let observed = Observation::of(&caller.principal, request);
    let context = |pool, groups| {
        let window = state.batch_window();
        RequestContext {
            speed: state.limits.speed,
            ..RequestContext::for_request(pool, caller, groups, &state.hub, window)
        }
    };
    // The operations, prepared, and the budget they leave (or why none runs).
    let operations = match operations {
        Ok(mut batch) => {
            let prepared: Vec<Prepared> =
                batch.iter_mut().map(|r| state.guard.prepare(r)).collect();
            let cost: usize = prepared.iter().filter_map(|p| p.cost).sum();
            match state.budgets.charge(budget_holder, cost) {
                Ok(throttle) => Ok((batch, prepared, throttle)),
                Err(throttled) => Err(throttled_response(state, cost, throttled)),
            }
        }
        Err(response) => Err(response),
    };
    let (batch, prepared, throttle) = match operations {
        Ok(operations) => operations,
        Err(response) => {
            // The request's snapshot may have begun: end it, so the connection goes back
            // to the pool instead of being discarded there.
            let db = context(state.pool.clone(), None).db;
            let confirmation = db.confirmation().await;
            db.finish().await;
            return match confirmation {
                Ok(confirmed) => confirmed.then_some(response),
                Err(busy) => Some(app_error_response(state, busy)),
            };
        }
    };
    // One query may share its caller's read group (and read the replica, when the
    // caller's key is known: a lookup has its connection on the primary already); a batch
    // runs its operations in order on its own connection (a later one may write).
    let read_only = matches!(batch, BatchRequest::Single(_)) && prepared[0].read_only;
    let pool = state.pool_for(read_only, known);
    let context = context(pool, read_only.then_some(&state.read_groups));
    context.db.share_pool(&state.shares).await;
    let budget = (budget_holder, throttle);
    execute(
        state,
        context,
        batch,
        prepared,
        budget,
        (media, started),
        observed,
    )
    .await
}

/// What the server notes of a request about itself (`crate::observed`): the tenant, and
/// for a partner's or widget's call what its log row needs.
struct Observation {
    tenant: Uuid,
    call: Option<crate::observed::Call>,
}

impl Observation {
    fn of(principal: &Principal, caller: &Caller<'_>) -> Observation {
        use crate::auth::Role;
        let logged = matches!(
            principal,
            Principal::Widget { .. }
                | Principal::ApiKey {
                    role: Role::Partner,
                    ..
                }
        );
        let token = caller
            .header
            .and_then(|h| h.strip_prefix("Bearer "))
            .map(str::trim);
        let call = logged.then(|| crate::observed::Call {
            tenant: principal.tenant_id(),
            // The key's display prefix (its last 40 hex digits are never kept).
            key_prefix: token
                .filter(|t| t.len() > 40 && t.is_char_boundary(t.len() - 40))
                .map(|t| t[..t.len() - 40].to_owned()),
            method: caller.method,
            request: serde_json::Value::Null,
            status: 0,
            response: serde_json::Value::Null,
            ip_hash: caller
                .peer
                .map(|ip| crate::auth::sha256_hex(&ip.to_string())),
            user_agent: caller.user_agent.map(|a| a.chars().take(500).collect()),
            at: chrono::Utc::now(),
        });
        Observation {
            tenant: principal.tenant_id(),
            call,
        }
    }
}

/// A request's operations as its log row keeps them (before redaction).
fn logged_request(batch: &BatchRequest) -> serde_json::Value {
    let one = |r: &async_graphql::Request| {
        serde_json::json!({
            "query": r.query,
            "operationName": r.operation_name,
            "variables": serde_json::to_value(&r.variables).unwrap_or_default(),
        })
    };
    match batch {
        BatchRequest::Single(r) => one(r),
        BatchRequest::Batch(requests) => requests.iter().map(one).collect(),
    }
}

/// 429 `RATE_LIMITED` for operations their tenant's budget cannot pay for now, with
/// `Retry-After` and the budget in `extensions.cost`.
fn throttled_response(state: &AppState, cost: usize, throttled: Throttled) -> Response {
    state
        .metrics
        .rejected_requests
        .fetch_add(1, Ordering::Relaxed);
    let body = RequestGuard::throttled(cost, &throttled);
    let mut response = (StatusCode::TOO_MANY_REQUESTS, axum::Json(body)).into_response();
    response.headers_mut().insert(
        header::RETRY_AFTER,
        HeaderValue::from(throttled.retry_after_secs()),
    );
    response
}

/// Runs the operations; `None` when the database refused the request's caller.
async fn execute(
    state: &AppState,
    context: RequestContext,
    batch: BatchRequest,
    prepared: Vec<Prepared>,
    (budget_holder, throttle): (uuid::Uuid, Throttle),
    (media, started): (Media, std::time::Instant),
    mut observed: Observation,
) -> Option<Response> {
    let count = match &batch {
        BatchRequest::Single(_) => 1,
        BatchRequest::Batch(requests) => requests.len(),
    };
    // Each operation's name and type, for its duration's labels.
    let labels: Vec<(String, &'static str)> = prepared
        .iter()
        .map(|prepared| {
            let name = TELEMETRY.operation_label(prepared.operation_name.as_deref());
            (
                name,
                if prepared.read_only {
                    "query"
                } else {
                    "mutation"
                },
            )
        })
        .collect();
    let names: Vec<&str> = labels.iter().map(|(name, _)| name.as_str()).collect();
    tracing::Span::current().record("operation", names.join(","));
    if let Some(call) = &mut observed.call {
        call.request = logged_request(&batch);
    }
    let db = context.db.clone();
    // A query its read group's members ask alike while it runs is run once for them.
    let identity = match &batch {
        BatchRequest::Single(request)
            if db.grouped() && state.limits.speed.on(Mechanism::IdenticalQueries) =>
        {
            run_identity(&context.principal, request)
        }
        _ => None,
    };
    let batch = batch.data(context);
    let mut response = match batch {
        BatchRequest::Single(request) => {
            let run = state.run(request, &prepared[0]);
            BatchResponse::Single(match identity {
                Some(identity) => {
                    let shared = db.once(identity, async { Arc::new(run.await) }).await;
                    Arc::try_unwrap(shared).unwrap_or_else(|shared| copy(&shared))
                }
                None => run.await,
            })
        }
        BatchRequest::Batch(requests) => {
            let mut responses = Vec::with_capacity(requests.len());
            for (request, prepared) in requests.into_iter().zip(&prepared) {
                responses.push(state.run(request, prepared).await);
            }
            BatchResponse::Batch(responses)
        }
    };
    let confirmation = db.confirmation().await;
    // The connection goes back to the pool before the response is serialized.
    db.finish().await;
    match confirmation {
        Ok(true) => {}
        Ok(false) => return None,
        // The caller could not be confirmed: no data goes out, only why.
        Err(busy) => return Some(app_error_response(state, busy)),
    }
    state
        .metrics
        .graphql_operations
        .fetch_add(count as u64, Ordering::Relaxed);
    let responses = match &mut response {
        BatchResponse::Single(response) => std::slice::from_mut(response),
        BatchResponse::Batch(responses) => responses.as_mut_slice(),
    };
    // The budget paid what the operations could cost; what their results did not hold
    // goes back to it.
    let actual: Vec<Option<usize>> = responses
        .iter_mut()
        .zip(&prepared)
        .map(|(response, prepared)| {
            let actual = measure_result(response, prepared.cost.unwrap_or(0));
            prepared.cost.map(|_| actual)
        })
        .collect();
    let unused = prepared
        .iter()
        .zip(&actual)
        .map(|(p, a)| p.cost.unwrap_or(0) - a.unwrap_or(0))
        .sum();
    let throttle = match unused {
        0 => throttle,
        unused => state.budgets.refund(budget_holder, unused),
    };
    for ((response, prepared), actual) in responses.iter_mut().zip(prepared).zip(actual) {
        RequestGuard::finish(response, prepared.cost, actual, Some(&throttle));
    }
    let elapsed = started.elapsed().as_secs_f64();
    let now = chrono::Utc::now();
    for (response, (name, kind)) in responses.iter().zip(&labels) {
        TELEMETRY
            .request_duration
            .with_label_values(&[name.as_str(), kind])
            .observe(elapsed);
        let failed = !response.errors.is_empty();
        OBSERVED.operation(observed.tenant, name, elapsed * 1_000.0, failed, now);
        for error in &response.errors {
            let code = error.extensions.as_ref().and_then(|x| x.get("code"));
            match code {
                Some(async_graphql::Value::String(code)) => TELEMETRY.error(code),
                Some(async_graphql::Value::Enum(code)) => TELEMETRY.error(code.as_str()),
                _ => {}
            }
        }
    }
    let answer = json_within(state, &response, media);
    if let Some(mut call) = observed.call {
        call.request = crate::observed::logged(&call.request);
        call.status = answer.status().as_u16().into();
        call.response =
            crate::observed::logged(&serde_json::to_value(&response).unwrap_or_default());
        OBSERVED.call(call);
    }
    Some(answer)
}

/// What makes two queries of one read group the same question: the key that asks (a
/// field may answer about it), the document, the operation, the variables and the
/// extensions. `None` for a caller that has no read group.
fn run_identity(principal: &Principal, request: &async_graphql::Request) -> Option<String> {
    let Principal::ApiKey { key_id, .. } = principal else {
        return None;
    };
    let variables = serde_json::to_string(&request.variables).ok()?;
    let extensions = serde_json::to_string(&request.extensions).ok()?;
    Some(format!(
        "{key_id}\n{:?}\n{variables}\n{extensions}\n{}",
        request.operation_name, request.query
    ))
}

/// A copy of a response another request of the read group ran.
fn copy(shared: &async_graphql::Response) -> async_graphql::Response {
    let mut response = async_graphql::Response::new(shared.data.clone());
    response.extensions = shared.extensions.clone();
    response.cache_control = shared.cache_control;
    response.errors = shared.errors.clone();
    response.http_headers = shared.http_headers.clone();
    response
}

/// Who asks, from where, for which media type (one request's headers).
#[derive(Clone, Copy)]
struct Caller<'h> {
    header: Option<&'h str>,
    origin: Option<&'h str>,
    media: Media,
    started: std::time::Instant,
    /// For the integration log of partner and widget calls.
    method: &'static str,
    peer: Option<std::net::IpAddr>,
    user_agent: Option<&'h str>,
}

/// The media type of a GraphQL response (GraphQL over HTTP): `application/json`, or
/// `application/graphql-response+json` for clients that accept it. With the latter, a
/// request that could not be executed (a document that does not parse or validate,
/// variables that do not coerce) answers 400 without a `data` entry.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Media {
    Json,
    GraphqlResponse,
}

impl Media {
    const GRAPHQL_RESPONSE: &'static str = "application/graphql-response+json";

    fn accepted(headers: &HeaderMap) -> Media {
        let accepts = headers
            .get_all(header::ACCEPT)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|range| {
                let mut parts = range.split(';');
                let essence = parts.next().unwrap_or("").trim();
                // `q=0` says "not this one".
                let refused = parts.any(|p| {
                    p.trim()
                        .strip_prefix("q=")
                        .and_then(|q| q.trim().parse::<f32>().ok())
                        == Some(0.0)
                });
                essence.eq_ignore_ascii_case(Media::GRAPHQL_RESPONSE) && !refused
            });
        match accepts {
            true => Media::GraphqlResponse,
            false => Media::Json,
        }
    }

    fn content_type(self) -> &'static str {
        match self {
            Media::Json => "application/json",
            Media::GraphqlResponse => "application/graphql-response+json; charset=utf-8",
        }
    }
}

/// A response to a request that never executed: no data, only errors none of which
/// belongs to a field.
fn is_request_error(response: &async_graphql::Response) -> bool {
    response.data == async_graphql::Value::Null
        && !response.errors.is_empty()
        && response.errors.iter().all(|e| e.path.is_empty())
}

/// The response as JSON, or a `QUERY_TOO_COMPLEX` error in its place when it is larger
/// than `--max-response-bytes`.
fn json_within(state: &AppState, response: &BatchResponse, media: Media) -> Response {
    let (status, body) = match (media, response) {
        (Media::GraphqlResponse, BatchResponse::Single(single)) if is_request_error(single) => {
            let mut value = match serde_json::to_value(single) {
                Ok(value) => value,
                Err(error) => return app_error_response(state, AppError::internal(&error)),
            };
            if let Some(object) = value.as_object_mut() {
                object.remove("data");
            }
            (StatusCode::BAD_REQUEST, serde_json::to_vec(&value))
        }
        _ => (StatusCode::OK, serde_json::to_vec(response)),
    };
    let body = match body {
        Ok(body) => body,
        Err(error) => return app_error_response(state, AppError::internal(&error)),
    };
    if body.len() > state.limits.max_response_bytes {
        let limit = state.limits.max_response_bytes;
        let error = error_body(
            "QUERY_TOO_COMPLEX",
            &format!(
                "the response would be larger than {limit} bytes: ask for fewer rows or fields"
            ),
        );
        return axum::Json(error).into_response();
    }
    (status, [(header::CONTENT_TYPE, media.content_type())], body).into_response()
}

async fn graphql_post(
    State(state): State<AppState>,
    headers: HeaderMap,
    extensions: axum::http::Extensions,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    state.metrics.http_requests.fetch_add(1, Ordering::Relaxed);
    let body = match body {
        Ok(body) => body,
        Err(rejection) => {
            let limit = state.limits.max_body_bytes;
            let message = match rejection.status() {
                StatusCode::PAYLOAD_TOO_LARGE => format!("the body is larger than {limit} bytes"),
                _ => "the body could not be read".to_owned(),
            };
            return reject(&state, rejection.status(), "BAD_USER_INPUT", &message);
        }
    };
    // Only JSON bodies: the form and text/plain content types a browser may send
    // cross-site without a preflight are refused (CSRF).
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    if essence != "application/json" && essence != "application/graphql-response+json" {
        return reject(
            &state,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "BAD_USER_INPUT",
            "POST /graphql needs Content-Type: application/json",
        );
    }
    serve_graphql(&state, &headers, ("POST", &extensions), || {
        read_batch(&state, &body)
    })
    .await
}

/// Why a request's operations could not be read: its answer's status, code and message.
pub struct Unreadable {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl From<String> for Unreadable {
    fn from(message: String) -> Self {
        Unreadable {
            status: StatusCode::BAD_REQUEST,
            code: "BAD_USER_INPUT",
            message,
        }
    }
}

impl From<persisted::Unresolved> for Unreadable {
    fn from(unresolved: persisted::Unresolved) -> Self {
        use persisted::Unresolved;
        let (status, code, message) = match unresolved {
            // Apollo's clients send the document on this answer.
            Unresolved::NotFound => (
                StatusCode::OK,
                "PERSISTED_QUERY_NOT_FOUND",
                "PersistedQueryNotFound",
            ),
            Unresolved::Invalid(message) => (StatusCode::BAD_REQUEST, "BAD_USER_INPUT", message),
            Unresolved::NotTrusted => (
                StatusCode::FORBIDDEN,
                "FORBIDDEN",
                "only trusted documents run on this server",
            ),
        };
        Unreadable {
            status,
            code,
            message: message.to_owned(),
        }
    }
}

/// The body as a GraphQL request or batch (of 1 to `max_batch` operations), each with
/// its document (see `persisted`), or why not.
fn read_batch(state: &AppState, body: &[u8]) -> Result<BatchRequest, Unreadable> {
    let mut batch: BatchRequest = serde_json::from_slice(body)
        .map_err(|_| "the body is not a GraphQL request".to_string())?;
    if let BatchRequest::Batch(requests) = &batch {
        if requests.is_empty() || requests.len() > state.limits.max_batch {
            return Err(format!("a batch holds 1 to {} operations", state.limits.max_batch).into());
        }
    }
    for request in batch.iter_mut() {
        state.persisted.resolve(request)?;
    }
    Ok(batch)
}

/// Queries only: a mutation or subscription over GET is refused with 405.
async fn graphql_get(
    State(state): State<AppState>,
    headers: HeaderMap,
    extensions: axum::http::Extensions,
    RawQuery(query): RawQuery,
) -> Response {
    state.metrics.http_requests.fetch_add(1, Ordering::Relaxed);
    let request = match read_get(&state, query.as_deref()) {
        Ok(request) => request,
        Err(u) => return reject(&state, u.status, u.code, &u.message),
    };
    // Measured before it is parsed (here and in the guard), as every document is.
    if let Err(error) = check_text(&request.query) {
        let body = async_graphql::Response::from_errors(vec![error]);
        return (StatusCode::BAD_REQUEST, axum::Json(body)).into_response();
    }
    if let Ok(document) = async_graphql::parser::parse_query(&request.query) {
        // The operation GET would run (the one `operationName` names): only a query.
        let not_a_query = match selected(&document, request.operation_name.as_deref()) {
            Some(operation) => operation.ty != OperationType::Query,
            None => document
                .operations
                .iter()
                .any(|(_, op)| op.node.ty != OperationType::Query),
        };
        if not_a_query {
            let mut response = reject(
                &state,
                StatusCode::METHOD_NOT_ALLOWED,
                "BAD_USER_INPUT",
                "only queries may be sent with GET; use POST",
            );
            response
                .headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static("POST"));
            return response;
        }
    }
    let mut parsed = Some(request);
    serve_graphql(&state, &headers, ("GET", &extensions), || {
        match parsed.take() {
            Some(request) => Ok(BatchRequest::Single(request)),
            None => read_get(&state, query.as_deref()).map(BatchRequest::Single),
        }
    })
    .await
}

/// A GET request's query string as a GraphQL request (`query`, `operationName`,
/// `variables` and `extensions` as JSON), or why not. (async-graphql's own
/// `parse_query_string` reads `operation_name`, which no client sends.)
fn read_get(state: &AppState, query: Option<&str>) -> Result<async_graphql::Request, Unreadable> {
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Params {
        #[serde(default)]
        query: String,
        operation_name: Option<String>,
        variables: Option<String>,
        extensions: Option<String>,
    }
    let malformed = |_| "malformed GraphQL GET request".to_string();
    let params: Params = serde_urlencoded::from_str(query.unwrap_or("")).map_err(malformed)?;
    let json = |text: Option<String>| -> Result<serde_json::Value, String> {
        match text {
            None => Ok(serde_json::Value::Null),
            Some(text) => serde_json::from_str(&text)
                .map_err(|_| "variables and extensions of a GET request must be JSON".to_string()),
        }
    };
    let mut request = async_graphql::Request::new(params.query)
        .variables(async_graphql::Variables::from_json(json(params.variables)?));
    if let Some(name) = params.operation_name {
        request = request.operation_name(name);
    }
    if let serde_json::Value::Object(extensions) = json(params.extensions)? {
        for (key, value) in extensions {
            let value =
                async_graphql::Value::from_json(value).map_err(|_| "bad extensions".to_string())?;
            request.extensions.insert(key, value);
        }
    }
    state.persisted.resolve(&mut request)?;
    Ok(request)
}

async fn graphql_ws(
    State(state): State<AppState>,
    headers: HeaderMap,
    upgrade: WebSocketUpgrade,
) -> Response {
    let requested = headers
        .get(header::SEC_WEBSOCKET_PROTOCOL)
        .and_then(|v| v.to_str().ok());
    let Some(protocol) = ws::requested_protocol(requested) else {
        return reject(
            &state,
            StatusCode::BAD_REQUEST,
            "BAD_USER_INPUT",
            "Sec-WebSocket-Protocol must name graphql-transport-ws or graphql-ws",
        );
    };
    // A client message is held to the HTTP body limit, and each socket starts with a
    // small read buffer (tungstenite's default is 128 KiB per socket: 1.3 GB for 10 000
    // subscribers that mostly only listen); it grows for a larger message.
    let limit = state.limits.max_body_bytes;
    upgrade
        .protocols(ALL_WEBSOCKET_PROTOCOLS)
        .read_buffer_size(4096)
        .max_message_size(limit)
        .max_frame_size(limit)
        .on_upgrade(move |socket| serve_websocket(state, socket, protocol))
}

/// WebSocket connections one API key may hold open at once.
pub const MAX_SOCKETS_PER_KEY: usize = 50;

/// Holds one of a key's socket slots; released when the connection ends.
struct SocketSlot {
    state: AppState,
    key: Uuid,
}

impl SocketSlot {
    fn take(state: &AppState, key: Uuid) -> Option<Self> {
        let mut open = state.sockets_per_key.lock().expect("not poisoned");
        let count = open.entry(key).or_default();
        if *count >= MAX_SOCKETS_PER_KEY {
            return None;
        }
        *count += 1;
        Some(SocketSlot {
            state: state.clone(),
            key,
        })
    }
}

impl Drop for SocketSlot {
    fn drop(&mut self) {
        let mut open = self.state.sockets_per_key.lock().expect("not poisoned");
        if let Some(count) = open.get_mut(&self.key) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.key);
            }
        }
    }
}

/// Close codes of the graphql-transport-ws protocol (4429: too many connections).
const CLOSE_TOO_MANY: u16 = 4429;
const CLOSE_UNAUTHORIZED: u16 = 4401;
const CLOSE_INIT_TIMEOUT: u16 = 4408;
const CLOSE_BAD_REQUEST: u16 = 4400;

async fn close(mut socket: WebSocket, code: u16, reason: &'static str) {
    let _ = socket
        .send(Message::Close(Some(CloseFrame {
            code,
            reason: reason.into(),
        })))
        .await;
}

/// The bearer token of a `connection_init` payload: `{"authorization": "Bearer …"}`
/// (also accepted capitalised, or inside `headers` as GraphiQL sends it).
fn init_authorization(payload: &serde_json::Value) -> Option<&str> {
    ["authorization", "Authorization"]
        .iter()
        .find_map(|k| payload.get(k))
        .or_else(|| {
            let headers = payload.get("headers")?;
            ["authorization", "Authorization"]
                .iter()
                .find_map(|k| headers.get(k))
        })
        .and_then(|v| v.as_str())
}

/// Authenticates the socket on its first message (which must be `connection_init`,
/// within [`WS_INIT_TIMEOUT`]) before handing it to the GraphQL protocol handler.
async fn serve_websocket(state: AppState, mut socket: WebSocket, protocol: WebSocketProtocols) {
    let first = match tokio::time::timeout(WS_INIT_TIMEOUT, socket.recv()).await {
        Err(_) => {
            return close(
                socket,
                CLOSE_INIT_TIMEOUT,
                "Connection initialisation timeout",
            )
            .await
        }
        Ok(None) | Ok(Some(Err(_))) => return,
        Ok(Some(Ok(message))) => message,
    };
    let init: Option<serde_json::Value> = match &first {
        Message::Text(text) => serde_json::from_str(text.as_str()).ok(),
        Message::Binary(bytes) => serde_json::from_slice(bytes).ok(),
        _ => None,
    };
    let Some(init) =
        init.filter(|m| m.get("type").and_then(|t| t.as_str()) == Some("connection_init"))
    else {
        return close(socket, CLOSE_BAD_REQUEST, "Expected connection_init").await;
    };
    let payload = init
        .get("payload")
        .cloned()
        .unwrap_or(serde_json::Value::Null);
    let principal = match authenticate(&state.pool, init_authorization(&payload)).await {
        Ok(principal) => principal,
        Err(_) => return close(socket, CLOSE_UNAUTHORIZED, "Unauthorized").await,
    };
    let budget_holder = principal.budget_holder();
    let key_id = match principal {
        Principal::Widget { .. } => {
            return close(socket, CLOSE_UNAUTHORIZED, "Widget keys cannot subscribe").await
        }
        Principal::ApiKey { key_id, .. } => key_id,
    };
    let Some(_slot) = SocketSlot::take(&state, key_id) else {
        return close(
            socket,
            CLOSE_TOO_MANY,
            "Too many connections for this API key",
        )
        .await;
    };
    state
        .metrics
        .websocket_connections
        .fetch_add(1, Ordering::Relaxed);
    let context = RequestContext::for_socket(
        state.pool.clone(),
        principal,
        &state.hub,
        state.batch_window(),
    );
    let mut data = Data::default();
    data.insert(context);
    ws::serve(state.clone(), protocol, data, budget_holder, socket).await;
    state
        .metrics
        .websocket_connections
        .fetch_sub(1, Ordering::Relaxed);
}

async fn readyz(State(state): State<AppState>) -> Response {
    let check = async {
        let mut conn = state.pool.get().await.ok()?;
        conn.batch_execute("SELECT 1").await.ok()
    };
    match tokio::time::timeout(Duration::from_secs(2), check).await {
        Ok(Some(())) => (StatusCode::OK, "ready").into_response(),
        _ => (StatusCode::SERVICE_UNAVAILABLE, "database unreachable").into_response(),
    }
}

const GRAPHIQL_HTML: &str = include_str!("../../assets/graphiql/index.html");

async fn graphiql(State(state): State<AppState>) -> Html<String> {
    let headers = match &state.graphiql_key {
        Some(key) => json!({ "Authorization": format!("Bearer {key}") }).to_string(),
        None => json!({ "Authorization": "Bearer <your API key>" }).to_string(),
    };
    Html(GRAPHIQL_HTML.replace("__DEFAULT_HEADERS__", &headers))
}

async fn graphiql_asset(Path(file): Path<String>) -> Response {
    let (body, content_type): (&'static [u8], &str) = match file.as_str() {
        "graphiql.min.js" => (
            include_bytes!("../../assets/graphiql/graphiql.min.js"),
            "text/javascript",
        ),
        "graphiql.min.css" => (
            include_bytes!("../../assets/graphiql/graphiql.min.css"),
            "text/css",
        ),
        "react.production.min.js" => (
            include_bytes!("../../assets/graphiql/react.production.min.js"),
            "text/javascript",
        ),
        "react-dom.production.min.js" => (
            include_bytes!("../../assets/graphiql/react-dom.production.min.js"),
            "text/javascript",
        ),
        _ => return StatusCode::NOT_FOUND.into_response(),
    };
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "public, max-age=86400"),
        ],
        body,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn graphql_response_json_is_answered_to_clients_that_accept_it() {
        let media = |accept: &[&str]| {
            let mut headers = HeaderMap::new();
            for a in accept {
                headers.append(header::ACCEPT, HeaderValue::from_str(a).unwrap());
            }
            Media::accepted(&headers)
        };
        assert!(media(&[]) == Media::Json);
        assert!(media(&["*/*"]) == Media::Json);
        assert!(media(&["application/json"]) == Media::Json);
        assert!(media(&["application/graphql-response+json"]) == Media::GraphqlResponse);
        assert!(
            media(&["application/json;q=0.9, Application/GraphQL-Response+JSON"])
                == Media::GraphqlResponse
        );
        assert!(
            media(&["text/html", "application/graphql-response+json; q=1"])
                == Media::GraphqlResponse
        );
        assert!(media(&["application/graphql-response+json;q=0, application/json"]) == Media::Json);
    }
}
