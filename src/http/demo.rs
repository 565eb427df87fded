//! Public demo sessions (seed 000), called from the tenant's web pages without a key:
//! `POST /demo/{tenant}/sessions` starts one (the tenant named by its slug) and answers
//! its token once; `GET /demo-sessions/{token}`, `POST /demo-sessions/{token}/share` and
//! `POST /demo-sessions/{token}/convert` read it, count a share and record the visitor's
//! sign-up. A session past its 24 hours, an unknown token or slug: 404. The rules live in
//! [`crate::domain::automations::demo`].

use std::net::{IpAddr, SocketAddr};

use axum::body::Bytes;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{header, Extensions, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use scoped_futures::ScopedFutureExt;
use serde_json::json;

use crate::app::AppState;
use crate::db::TenantDb;
use crate::domain::automations::demo::{self, StartDemo, Started};
use crate::domain::automations::model::DemoSession;
use crate::domain::{OpError, UserError};
use crate::error::AppError;

/// `POST /demo/{tenant}/sessions` with an optional JSON body `{visitorEmail, videoUrl}`:
/// 201 and the session with its `sessionToken`; 429 with `Retry-After` past the visitor's
/// hourly limit; 400 for bad input; nothing written on refusal.
pub async fn start(
    State(state): State<AppState>,
    Path(slug): Path<String>,
    extensions: Extensions,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let input: StartDemo = match body.is_empty() {
        true => StartDemo::default(),
        false => match serde_json::from_slice(&body) {
            Ok(input) => input,
            Err(error) => {
                let message = format!("not a demo session request: {error}");
                return super::app_error_response(&state, AppError::bad_input(&[], message));
            }
        },
    };
    let tenant = match demo::tenant_of_slug(&state.pool, &slug).await {
        Ok(Some(tenant)) => tenant,
        Ok(None) => return not_found(&state, "no such tenant"),
        Err(error) => return super::app_error_response(&state, error),
    };
    let ip_hash = crate::auth::sha256_hex(&visitor(&state, &extensions, &headers));
    let per_hour = i64::from(state.limits.demo_sessions_per_hour);
    let started = TenantDb::new(state.pool.clone(), tenant)
        .run(move |conn, scope| {
            async move { demo::start(conn, scope, &ip_hash, &input, per_hour, Utc::now()).await }
                .scope_boxed()
        })
        .await;
    match started {
        Ok(Started::Session(session, token)) => {
            let mut body = view(&session);
            body["sessionToken"] = json!(token);
            (StatusCode::CREATED, axum::Json(body)).into_response()
        }
        Ok(Started::Limited { retry_after_secs }) => {
            let error =
                AppError::RateLimited("too many demo sessions from this visitor; try again later");
            let mut response = super::app_error_response(&state, error);
            response.headers_mut().insert(
                header::RETRY_AFTER,
                HeaderValue::from(retry_after_secs.max(1)),
            );
            response
        }
        Err(error) => op_error(&state, error),
    }
}

/// `GET /demo-sessions/{token}`: the live session.
pub async fn show(State(state): State<AppState>, Path(token): Path<String>) -> Response {
    on_session(&state, &token, |conn, scope, token, now| {
        async move { Ok(demo::by_token(conn, scope, &token, now).await?) }.scope_boxed()
    })
    .await
}

/// `POST /demo-sessions/{token}/share`: one more share.
pub async fn share(State(state): State<AppState>, Path(token): Path<String>) -> Response {
    on_session(&state, &token, |conn, scope, token, now| {
        async move { demo::record_share(conn, scope, &token, now).await }.scope_boxed()
    })
    .await
}

/// `POST /demo-sessions/{token}/convert`: the visitor signed up (once).
pub async fn convert(State(state): State<AppState>, Path(token): Path<String>) -> Response {
    on_session(&state, &token, |conn, scope, token, now| {
        async move { demo::record_conversion(conn, scope, &token, now).await }.scope_boxed()
    })
    .await
}

/// Runs `work` on the tenant of the session `token`: 200 and the session, or 404.
async fn on_session<F>(state: &AppState, token: &str, work: F) -> Response
where
    F: for<'r> FnOnce(
            &'r mut diesel_async::AsyncPgConnection,
            crate::db::Tenant,
            String,
            DateTime<Utc>,
        ) -> scoped_futures::ScopedBoxFuture<
            'static,
            'r,
            Result<Option<DemoSession>, OpError>,
        > + Send
        + 'static,
{
    let tenant = match demo::tenant_of_token(&state.pool, token).await {
        Ok(Some(tenant)) => tenant,
        Ok(None) => return not_found(state, "no such demo session"),
        Err(error) => return super::app_error_response(state, error),
    };
    let token = token.to_owned();
    let session = TenantDb::new(state.pool.clone(), tenant)
        .run(move |conn, scope| work(conn, scope, token, Utc::now()))
        .await;
    match session {
        Ok(Some(session)) => (StatusCode::OK, axum::Json(view(&session))).into_response(),
        Ok(None) => not_found(state, "no such demo session"),
        Err(error) => op_error(state, error),
    }
}

/// Who the visitor is: their address (with `--trust-forwarded-for`, the one the proxy in
/// front appended last to `X-Forwarded-For`); an IPv6 visitor is known by their /64
/// network, which one subscriber usually holds whole.
fn visitor(state: &AppState, extensions: &Extensions, headers: &HeaderMap) -> String {
    let forwarded = state
        .limits
        .trust_forwarded_for
        .then(|| headers.get("x-forwarded-for")?.to_str().ok())
        .flatten()
        .and_then(|list| list.rsplit(',').next()?.trim().parse::<IpAddr>().ok());
    let peer = extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip());
    match forwarded.or(peer) {
        Some(IpAddr::V6(v6)) if v6.to_ipv4_mapped().is_none() => {
            let s = v6.segments();
            format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
        }
        Some(IpAddr::V6(v6)) => v6
            .to_ipv4_mapped()
            .map_or_else(String::new, |v4| v4.to_string()),
        Some(ip) => ip.to_string(),
        None => "unknown".to_owned(),
    }
}

fn view(session: &DemoSession) -> serde_json::Value {
    json!({
        "id": session.id,
        "visitorEmail": session.visitor_email,
        "videoUrl": session.video_url,
        "shareCount": session.share_count,
        "converted": session.converted,
        "convertedAt": session.converted_at,
        "expiresAt": session.expires_at,
        "createdAt": session.created_at,
    })
}

fn not_found(state: &AppState, message: &str) -> Response {
    super::reject(state, StatusCode::NOT_FOUND, "NOT_FOUND", message)
}

/// A refused request: 400 `BAD_USER_INPUT` with the field of a business rule's refusal.
fn op_error(state: &AppState, error: OpError) -> Response {
    let error = match error {
        OpError::App(error) => error,
        OpError::User(UserError { field, message, .. })
        | OpError::Answered(UserError { field, message, .. }) => AppError::BadUserInput {
            message,
            field: field.unwrap_or_default(),
        },
    };
    super::app_error_response(state, error)
}
