use async_graphql::connection::Connection;
use async_graphql::{Context, InputObject, Object, SimpleObject, ID};
use chrono::{DateTime, Utc};
use scoped_futures::ScopedFutureExt;

use super::model::{self, DeliveryStatus};
use super::ops;
use crate::auth::Access;
use crate::domain::write_payload;
use crate::domain::{UserError, UserErrorCode};
use crate::error::AppResult;
use crate::graphql::connection::IntoConnection;
use crate::graphql::connection::{Cursor, PageRequest};
use crate::graphql::context::request_context;
use crate::graphql::scalars::parse_id;

#[derive(SimpleObject, Clone)]
pub struct WebhookEndpoint {
    pub id: ID,
    pub url: String,
    /// Empty: every event type.
    pub event_types: Vec<String>,
    pub enabled: bool,
    pub consecutive_failures: i32,
    pub disabled_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

impl From<model::Endpoint> for WebhookEndpoint {
    fn from(e: model::Endpoint) -> Self {
        WebhookEndpoint {
            id: ID(e.id.to_string()),
            url: e.url,
            event_types: e.event_types.into_iter().flatten().collect(),
            enabled: e.enabled,
            consecutive_failures: e.consecutive_failures,
            disabled_at: e.disabled_at,
            created_at: e.created_at,
        }
    }
}

#[derive(SimpleObject, Clone)]
pub struct WebhookDelivery {
    pub id: ID,
    pub endpoint_id: ID,
    /// The event's id, sent as `X-Growthgraph-Event-Id` (deduplicate on it).
    pub event_id: ID,
    pub event_type: String,
    pub status: DeliveryStatus,
    pub attempts: i32,
    pub response_status: Option<i32>,
    pub error: Option<String>,
    pub delivered_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

impl From<model::Delivery> for WebhookDelivery {
    fn from(d: model::Delivery) -> Self {
        WebhookDelivery {
            id: ID(d.id.to_string()),
            endpoint_id: ID(d.endpoint_id.to_string()),
            event_id: ID(d.event_id.to_string()),
            event_type: d.event_type,
            status: d.status,
            attempts: d.attempts,
            response_status: d.response_status,
            error: d.error,
            delivered_at: d.delivered_at,
            created_at: d.created_at,
        }
    }
}

#[derive(Default)]
pub struct WebhooksQuery;

#[Object]
impl WebhooksQuery {
    #[graphql(guard = "Access::Admin")]
    async fn webhook_endpoints(&self, ctx: &Context<'_>) -> AppResult<Vec<WebhookEndpoint>> {
        let request = request_context(ctx)?;
        let rows = request
            .db
            .query(|conn, scope| ops::endpoints(conn, scope).scope_boxed())
            .await?;
        Ok(crate::graphql::connection::bounded(rows)
            .into_iter()
            .map(WebhookEndpoint::from)
            .collect())
    }

    /// The delivery log, newest first.
    #[graphql(guard = "Access::Admin")]
    async fn webhook_deliveries(
        &self,
        ctx: &Context<'_>,
        endpoint_id: Option<ID>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
    ) -> AppResult<Connection<Cursor<DateTime<Utc>>, WebhookDelivery>> {
        let request = request_context(ctx)?;
        let page = PageRequest::either(first, after, last, before)?;
        let endpoint = endpoint_id
            .as_ref()
            .map(|e| parse_id(e, &["endpointId"]))
            .transpose()?;
        let rows = request
            .db
            .query(|conn, scope| {
                let page = &page;
                async move { ops::deliveries(conn, scope, endpoint, page).await }.scope_boxed()
            })
            .await?;
        Ok(page.into_connection(
            rows,
            |d| Cursor {
                key: d.created_at,
                id: d.id,
            },
            WebhookDelivery::from,
        ))
    }
}

#[derive(InputObject)]
pub struct CreateWebhookEndpointInput {
    pub url: String,
    /// Event types to deliver; empty or absent for all.
    pub event_types: Option<Vec<String>>,
    /// The signing secret; generated when absent. Shown once.
    pub secret: Option<String>,
}

crate::payload!(CreateWebhookEndpointPayload {
    webhook_endpoint: WebhookEndpoint,
    /// The signing secret, shown this once.
    secret
} from (model::Endpoint, String));

#[derive(InputObject)]
pub struct DisableWebhookEndpointInput {
    pub id: ID,
}

crate::payload!(DisableWebhookEndpointPayload {
    webhook_endpoint: WebhookEndpoint
} from model::Endpoint);

#[derive(Default)]
pub struct WebhooksMutation;

#[Object]
impl WebhooksMutation {
    #[graphql(guard = "Access::Admin")]
    async fn create_webhook_endpoint(
        &self,
        ctx: &Context<'_>,
        input: CreateWebhookEndpointInput,
    ) -> AppResult<CreateWebhookEndpointPayload> {
        let policy = ctx
            .data_opt::<crate::graphql::WebhookPolicy>()
            .copied()
            .unwrap_or_default();
        if let Err(message) = super::target::vet(&input.url, policy.allow_insecure).await {
            let error = UserError::new(UserErrorCode::Invalid, &["input", "url"], message);
            return Ok(CreateWebhookEndpointPayload {
                webhook_endpoint: None,
                secret: None,
                user_errors: vec![error],
            });
        }
        write_payload(ctx, |conn, scope| {
            async move {
                ops::create_endpoint(
                    conn,
                    scope,
                    &input.url,
                    input.event_types.unwrap_or_default(),
                    input.secret,
                )
                .await
            }
            .scope_boxed()
        })
        .await
    }

    #[graphql(guard = "Access::Admin")]
    async fn disable_webhook_endpoint(
        &self,
        ctx: &Context<'_>,
        input: DisableWebhookEndpointInput,
    ) -> AppResult<DisableWebhookEndpointPayload> {
        let id = parse_id(&input.id, &["input", "id"])?;
        write_payload(ctx, |conn, scope| {
            async move { ops::disable_endpoint(conn, scope, id).await }.scope_boxed()
        })
        .await
    }
}
