use async_graphql::{Context, InputObject, Json, Object, SimpleObject};
use chrono::{DateTime, Utc};
use scoped_futures::ScopedFutureExt;

use super::model::{self, CrmPlatform};
use super::ops;
use crate::auth::Access;
use crate::domain::{write_payload, Payload, UserError};
use crate::error::AppResult;
use crate::graphql::context::request_context;
use crate::secrets::SecretKey;

/// The tenant's CRM (never its credentials).
#[derive(SimpleObject)]
#[graphql(complex)]
pub struct CrmConnection {
    pub provider: CrmPlatform,
    /// Shopify: the store's `*.myshopify.com` domain; Commerce7: the tenant.
    pub shop: String,
    /// Whether enrollment changes are synced to it.
    pub enabled: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// The CRM's OAuth grant (an expiring access token the server refreshes): never its
/// tokens.
#[derive(SimpleObject)]
pub struct CrmSession {
    /// When the current access token expires (refreshed ten minutes before).
    pub expires_at: Option<DateTime<Utc>>,
    /// Why the last refresh failed, while it has not succeeded since.
    pub last_refresh_error: Option<String>,
}

#[async_graphql::ComplexObject]
impl CrmConnection {
    /// The expiring OAuth token the server refreshes, when the CRM was connected with one.
    async fn session(&self, ctx: &Context<'_>) -> AppResult<Option<CrmSession>> {
        let state = request_context(ctx)?
            .db
            .query(|conn, scope| ops::session_state(conn, scope).scope_boxed())
            .await?;
        Ok(state.map(|(expires_at, last_refresh_error)| CrmSession {
            expires_at,
            last_refresh_error,
        }))
    }
}

impl From<model::CrmConnection> for CrmConnection {
    fn from(c: model::CrmConnection) -> Self {
        CrmConnection {
            provider: c.provider,
            shop: c.shop,
            enabled: c.enabled,
            created_at: c.created_at,
            updated_at: c.updated_at,
        }
    }
}

#[derive(InputObject)]
pub struct ConfigureCrmInput {
    pub provider: CrmPlatform,
    /// Shopify: the store's `*.myshopify.com` domain; Commerce7: the tenant (the first part
    /// of its admin's address).
    pub shop: String,
    /// Write-only, sealed with the server's secret key, never returned. Shopify:
    /// `{"accessToken": "shpat_…", "webhookSecret": "<the app's client secret>"}`, and for
    /// an expiring token also `refreshToken`, `expiresIn` (seconds) and `clientId` (the
    /// server then refreshes it before it expires);
    /// Commerce7: `{"appId", "appSecret", "webhookUsername", "webhookPassword"}` (the
    /// webhook's basic authentication as set in Commerce7).
    /// Required when the CRM is first connected or changes; left out, the stored ones stay.
    pub credentials: Option<Json<serde_json::Value>>,
    pub enabled: Option<bool>,
    /// Replaces the webhook token (the old one stops working at once).
    #[graphql(default)]
    pub rotate_hook_token: bool,
}

#[derive(SimpleObject)]
pub struct ConfigureCrmPayload {
    pub crm_connection: Option<CrmConnection>,
    /// The token of the CRM's webhooks, `POST /hooks/crm/{provider}/{token}`: shown only
    /// when it is made, with the first connection or `rotateHookToken`.
    pub hook_token: Option<String>,
    pub user_errors: Vec<UserError>,
}

impl Payload for ConfigureCrmPayload {
    type Value = ops::ConfiguredCrm;
    fn new(configured: Option<ops::ConfiguredCrm>, user_errors: Vec<UserError>) -> Self {
        let (connection, hook_token) =
            configured.map_or((None, None), |c| (Some(c.connection.into()), c.hook_token));
        ConfigureCrmPayload {
            crm_connection: connection,
            hook_token,
            user_errors,
        }
    }
}

#[derive(Default)]
pub struct CrmQuery;

#[Object]
impl CrmQuery {
    /// The tenant's CRM connection, if one is configured.
    #[graphql(guard = "Access::Read")]
    async fn crm_connection(&self, ctx: &Context<'_>) -> AppResult<Option<CrmConnection>> {
        let connection = request_context(ctx)?
            .db
            .query(|conn, scope| ops::connection(conn, scope).scope_boxed())
            .await?;
        Ok(connection.map(CrmConnection::from))
    }
}

#[derive(Default)]
pub struct CrmMutation;

#[Object]
impl CrmMutation {
    /// Connects the tenant's CRM, or changes its connection (admins). Enrollments whose
    /// sync ended `NOT_CONFIGURED` are queued again.
    #[graphql(guard = "Access::Admin")]
    async fn configure_crm(
        &self,
        ctx: &Context<'_>,
        input: ConfigureCrmInput,
    ) -> AppResult<ConfigureCrmPayload> {
        let crm = ops::CrmInput {
            platform: input.provider,
            shop: input.shop,
            credentials: input.credentials.map(|c| c.0),
            enabled: input.enabled,
            rotate_hook_token: input.rotate_hook_token,
        };
        let key = ctx.data_opt::<SecretKey>();
        write_payload(ctx, |conn, scope| {
            ops::configure_crm(conn, scope, crm, key).scope_boxed()
        })
        .await
    }
}
