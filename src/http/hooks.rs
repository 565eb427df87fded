//! `POST /hooks/{provider}/{token}`: providers' delivery status reports. The token names
//! one channel configuration (and so its tenant); the request must carry the provider's
//! signature under that configuration's credentials. Unknown token or bad signature: 401;
//! a body that is not the provider's format: 400; nothing is written in either case.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use scoped_futures::ScopedFutureExt;
use serde_json::json;

use crate::app::AppState;
use crate::db::TenantDb;
use crate::domain::messages::hooks::{self, Refusal, Report};
use crate::domain::messages::ops;
use crate::domain::OpError;
use crate::error::AppError;

fn answer(status: StatusCode, message: &str) -> Response {
    (status, axum::Json(json!({ "error": message }))).into_response()
}

fn header<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// The URL Twilio called, as it signed it: the server's public URL (`--public-url`) or,
/// without one, `http://` and the `Host` header, then the path and query.
fn called_url(state: &AppState, headers: &HeaderMap, uri: &Uri) -> String {
    let path = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    match &state.limits.public_url {
        Some(base) => format!("{}{path}", base.trim_end_matches('/')),
        None => format!(
            "http://{}{path}",
            header(headers, "host").unwrap_or("localhost")
        ),
    }
}

pub async fn provider_hook(
    State(state): State<AppState>,
    Path((provider, token)): Path<(String, String)>,
    headers: HeaderMap,
    uri: Uri,
    body: Bytes,
) -> Response {
    if !matches!(provider.as_str(), "sendgrid" | "twilio") {
        return answer(StatusCode::NOT_FOUND, "no such provider hook");
    }
    let target = match crate::auth::is_secret(&token, "ghk_") {
        true => ops::hook_target(&state.pool, &token).await,
        false => Ok(None),
    };
    let (configuration, tenant) = match target {
        Ok(Some((configuration, tenant, p))) if p == provider => (configuration, tenant),
        Ok(_) => return answer(StatusCode::UNAUTHORIZED, "unknown hook token"),
        Err(error) => return failure(error),
    };
    let db = TenantDb::new(state.pool.clone(), tenant);
    let key = state.limits.secret_key.clone();
    let credentials = db
        .query(move |conn, scope| {
            async move { ops::hook_credentials(conn, scope, configuration, key.as_ref()).await }
                .scope_boxed()
        })
        .await;
    let credentials = match credentials {
        Ok(Some(c)) => c,
        Ok(None) => {
            return answer(
                StatusCode::UNAUTHORIZED,
                "the channel has no credentials to verify this hook with",
            )
        }
        Err(error) => return failure(error),
    };
    let reports: Result<Vec<Report>, Refusal> = match provider.as_str() {
        "sendgrid" => {
            let key = credentials["webhookVerificationKey"].as_str().unwrap_or("");
            hooks::verify_sendgrid(
                key,
                header(&headers, "x-twilio-email-event-webhook-signature"),
                header(&headers, "x-twilio-email-event-webhook-timestamp"),
                &body,
            )
            .and_then(|()| hooks::parse_sendgrid(&body))
        }
        _ => {
            let token = credentials["authToken"].as_str().unwrap_or("");
            let url = called_url(&state, &headers, &uri);
            hooks::twilio_params(&body).and_then(|params| {
                hooks::verify_twilio(token, header(&headers, "x-twilio-signature"), &url, &params)?;
                Ok(vec![hooks::parse_twilio(&params)?])
            })
        }
    };
    let reports = match reports {
        Ok(reports) => reports,
        Err(Refusal::Signature) => {
            return answer(StatusCode::UNAUTHORIZED, "the signature does not verify")
        }
        Err(Refusal::Malformed(message)) => return answer(StatusCode::BAD_REQUEST, &message),
    };
    let applied = db
        .run(move |conn, scope| {
            async move { ops::apply_reports(conn, scope, configuration, &reports).await }
                .scope_boxed()
        })
        .await;
    match applied {
        Ok(moved) => (StatusCode::OK, axum::Json(json!({ "moved": moved }))).into_response(),
        Err(OpError::App(error)) => failure(error),
        Err(OpError::User(e) | OpError::Answered(e)) => answer(StatusCode::BAD_REQUEST, &e.message),
    }
}

/// The database failed: the provider should try again (its retries are the reason the
/// reports only ever move a message forward).
fn failure(error: AppError) -> Response {
    tracing::warn!(?error, "status hook failed");
    answer(StatusCode::SERVICE_UNAVAILABLE, "try again later")
}

/// `POST /hooks/crm/{provider}/{token}`: the CRM's webhooks (Shopify: orders created and
/// cancelled, refunds, customers; Commerce7: customers and orders). Unknown token or a
/// signature (Shopify) or basic authentication (Commerce7) that does not verify: 401; a
/// body that is not the CRM's JSON: 400; an order not known yet: 422 (the CRM delivers it
/// again); nothing is written in any of these cases. A delivery applied before answers 200
/// again.
pub async fn crm_hook(
    State(state): State<AppState>,
    Path((provider, token)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    use crate::domain::crm::{hooks as crm_hooks, model::CrmPlatform, ops as crm};
    let Some(platform) = CrmPlatform::parse(&provider) else {
        return answer(StatusCode::NOT_FOUND, "no such CRM hook");
    };
    let target = match crate::auth::is_secret(&token, "ghk_") {
        true => crm::hook_target(&state.pool, &token).await,
        false => Ok(None),
    };
    let tenant = match target {
        Ok(Some((tenant, p))) if p == platform => tenant,
        Ok(_) => return answer(StatusCode::UNAUTHORIZED, "unknown hook token"),
        Err(error) => return failure(error),
    };
    let db = TenantDb::new(state.pool.clone(), tenant);
    let key = state.limits.secret_key.clone();
    let credentials = db
        .query(move |conn, scope| {
            async move { crm::hook_credentials(conn, scope, key.as_ref()).await }.scope_boxed()
        })
        .await;
    let credentials = match credentials {
        Ok(credentials) => credentials.unwrap_or_default(),
        Err(error) => return failure(error),
    };
    let verified = match platform {
        CrmPlatform::Shopify => {
            let secret = credentials["webhookSecret"].as_str().unwrap_or("");
            let signature = header(&headers, "x-shopify-hmac-sha256").unwrap_or("");
            !secret.is_empty() && crm_hooks::shopify_signature_valid(secret, &body, signature)
        }
        CrmPlatform::Commerce7 => {
            let authorization = header(&headers, "authorization").unwrap_or("");
            crm_hooks::commerce7_authorization_valid(&credentials, authorization)
        }
    };
    if !verified {
        return answer(StatusCode::UNAUTHORIZED, "the signature does not verify");
    }
    let Ok(payload) = serde_json::from_slice::<serde_json::Value>(&body) else {
        return answer(StatusCode::BAD_REQUEST, "the body is not JSON");
    };
    let delivery = match platform {
        CrmPlatform::Shopify => {
            let (Some(topic), Some(delivery)) = (
                header(&headers, "x-shopify-topic").map(str::to_owned),
                header(&headers, "x-shopify-webhook-id")
                    .filter(|d| (1..=200).contains(&d.len()))
                    .map(str::to_owned),
            ) else {
                return answer(
                    StatusCode::BAD_REQUEST,
                    "X-Shopify-Topic and X-Shopify-Webhook-Id are required",
                );
            };
            Some((topic, delivery))
        }
        CrmPlatform::Commerce7 => None,
    };
    let applied = db
        .run(move |conn, scope| {
            async move {
                match delivery {
                    Some((topic, delivery)) => {
                        crm_hooks::apply_shopify(conn, scope, &topic, &delivery, &payload).await
                    }
                    None => crm_hooks::apply_commerce7(conn, scope, &payload).await,
                }
            }
            .scope_boxed()
        })
        .await;
    match applied {
        Ok(applied) => {
            let (applied, id) = match applied {
                crm_hooks::Applied::Applied(id) => ("applied", Some(id)),
                crm_hooks::Applied::Duplicate => ("duplicate", None),
                crm_hooks::Applied::Ignored => ("ignored", None),
            };
            (
                StatusCode::OK,
                axum::Json(json!({ "result": applied, "id": id })),
            )
                .into_response()
        }
        Err(OpError::App(error)) => failure(error),
        Err(OpError::User(e) | OpError::Answered(e)) => {
            answer(StatusCode::UNPROCESSABLE_ENTITY, &e.message)
        }
    }
}
