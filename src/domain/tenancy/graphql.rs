use std::sync::Arc;

use async_graphql::connection::Connection;
use async_graphql::{Context, InputObject, Object, SimpleObject, ID};
use chrono::{DateTime, Utc};
use scoped_futures::ScopedFutureExt;

use super::model::JobStatus;
use super::{model, ops};
use crate::auth::{Access, Principal, Role};
use crate::domain::{payload, write_payload};
use crate::error::{AppError, AppResult};
use crate::events::EventHub;
use crate::graphql::connection::{created_page, Cursor, PageRequest};
use crate::graphql::context::request_context;
use crate::graphql::scalars::parse_id;

pub struct Tenant(pub model::Tenant);

impl From<model::Tenant> for Tenant {
    fn from(tenant: model::Tenant) -> Self {
        Tenant(tenant)
    }
}

#[Object]
impl Tenant {
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    async fn slug(&self) -> &str {
        &self.0.slug
    }
    async fn name(&self) -> &str {
        &self.0.name
    }
    async fn language(&self) -> &str {
        &self.0.language
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    /// Which emails the tenant itself receives (seed 000).
    async fn email_preferences(&self) -> EmailPreferences {
        EmailPreferences::of(&self.0.email_preferences)
    }
    /// The tenant's last activity (re-engagement).
    async fn last_active_at(&self) -> Option<DateTime<Utc>> {
        self.0.last_active_at
    }
}

/// Which emails a tenant receives (each on unless turned off).
#[derive(SimpleObject, Clone, Copy)]
pub struct EmailPreferences {
    pub marketing: bool,
    pub sequences: bool,
    pub weekly_digest: bool,
}

impl EmailPreferences {
    fn of(stored: &serde_json::Value) -> Self {
        let on = |key: &str| stored[key].as_bool().unwrap_or(true);
        EmailPreferences {
            marketing: on("marketing"),
            sequences: on("sequences"),
            weekly_digest: on("weekly_digest"),
        }
    }
}

/// Email preferences to change (what is left out keeps its value).
#[derive(InputObject)]
pub struct EmailPreferencesInput {
    pub marketing: Option<bool>,
    pub sequences: Option<bool>,
    pub weekly_digest: Option<bool>,
}

#[derive(InputObject)]
pub struct UpdateTenantSettingsInput {
    pub email_preferences: Option<EmailPreferencesInput>,
    /// The tenant's last activity, when an outside system knows it.
    pub last_active_at: Option<DateTime<Utc>>,
}

crate::payload!(TenantPayload { tenant: Tenant } from model::Tenant);

pub struct ApiKey(pub model::ApiKey);

impl From<model::ApiKey> for ApiKey {
    fn from(key: model::ApiKey) -> Self {
        ApiKey(key)
    }
}

#[Object]
impl ApiKey {
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    async fn name(&self) -> &str {
        &self.0.name
    }
    async fn role(&self) -> Option<Role> {
        Role::parse(&self.0.role)
    }
    /// The key's first characters, enough to recognise it; the secret is never stored.
    async fn prefix(&self) -> &str {
        &self.0.key_prefix
    }
    async fn last_used_at(&self) -> Option<DateTime<Utc>> {
        self.0.last_used_at
    }
    async fn revoked_at(&self) -> Option<DateTime<Utc>> {
        self.0.revoked_at
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
}

/// The caller: its tenant and, for API keys, the key itself.
pub struct Viewer;

#[Object]
impl Viewer {
    /// The caller's tenant (not to widget keys: they are public, embedded in web pages,
    /// and see published testimonials only).
    async fn tenant(&self, ctx: &Context<'_>) -> AppResult<Tenant> {
        let request = request_context(ctx)?;
        if matches!(request.principal, Principal::Widget { .. }) {
            return Err(AppError::Forbidden("a widget key does not see its tenant"));
        }
        let tenant = request
            .db
            .query(|conn, scope| async move { ops::find_tenant(conn, scope).await }.scope_boxed())
            .await?;
        Ok(Tenant(tenant))
    }

    async fn api_key(&self, ctx: &Context<'_>) -> AppResult<Option<ApiKey>> {
        let request = request_context(ctx)?;
        let Principal::ApiKey { key_id, .. } = request.principal else {
            return Ok(None);
        };
        let key = request
            .db
            .query(|conn, scope| {
                async move { ops::find_api_key(conn, scope, key_id).await }.scope_boxed()
            })
            .await?;
        Ok(key.map(ApiKey))
    }
}

#[derive(Default)]
pub struct TenancyQuery;

#[Object]
impl TenancyQuery {
    /// Who is calling.
    #[graphql(guard = "Access::Widget")]
    async fn viewer(&self) -> Viewer {
        Viewer
    }

    /// The tenant's API keys (admins only).
    #[graphql(guard = "Access::Admin")]
    async fn api_keys(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
    ) -> AppResult<Connection<Cursor<DateTime<Utc>>, ApiKey>> {
        created_page(
            ctx,
            PageRequest::either(first, after, last, before)?,
            |conn, scope, page| {
                async move { ops::list_api_keys(conn, scope, &page).await }.scope_boxed()
            },
            ApiKey,
        )
        .await
    }

    /// The tenant's background jobs, optionally in one status or of one type
    /// (`message_delivery`, `crm_sync`, …), newest first. Any key reads it; admins
    /// retry and cancel.
    #[graphql(guard = "Access::Read")]
    #[allow(clippy::too_many_arguments)]
    async fn jobs(
        &self,
        ctx: &Context<'_>,
        status: Option<JobStatus>,
        #[graphql(name = "type")] job_type: Option<String>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
    ) -> AppResult<Connection<Cursor<DateTime<Utc>>, Job>> {
        created_page(
            ctx,
            PageRequest::either(first, after, last, before)?,
            |conn, scope, page| {
                async move { ops::list_jobs(conn, scope, status, job_type.as_deref(), &page).await }
                    .scope_boxed()
            },
            Job::from,
        )
        .await
    }
}

/// A background job: CRM sync, webhook delivery, insights refresh, bulk email…
#[derive(SimpleObject)]
pub struct Job {
    pub id: ID,
    /// daily_prospect_queue, bulk_email, intelligence_analysis, crm_sync,
    /// webhook_delivery, growth_insights_refresh or message_delivery.
    pub job_type: String,
    pub status: JobStatus,
    /// The last failure, when there was one.
    pub error: Option<String>,
    pub attempts: i32,
    pub max_attempts: i32,
    /// When it runs (next, for a job waiting to be retried).
    pub run_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub completed_at: Option<DateTime<Utc>>,
}

impl From<model::Job> for Job {
    fn from(j: model::Job) -> Self {
        Job {
            id: ID(j.id.to_string()),
            job_type: j.job_type,
            status: j.status,
            error: j.error,
            attempts: j.attempts,
            max_attempts: j.max_attempts,
            run_at: j.run_at,
            created_at: j.created_at,
            started_at: j.started_at,
            completed_at: j.completed_at,
        }
    }
}

#[derive(InputObject)]
pub struct JobInput {
    pub id: ID,
}

crate::payload!(JobPayload { job: Job } from model::Job);

async fn job_action(
    ctx: &Context<'_>,
    input: JobInput,
    action: ops::JobAction,
) -> AppResult<JobPayload> {
    let id = parse_id(&input.id, &["input", "id"])?;
    crate::domain::write_payload(ctx, move |conn, scope| {
        ops::act_on_job(conn, scope, id, action).scope_boxed()
    })
    .await
}

#[derive(InputObject)]
pub struct CreateApiKeyInput {
    pub name: String,
    pub role: Role,
}

crate::payload!(CreateApiKeyPayload {
    api_key: ApiKey,
    /// The secret, shown this once.
    secret
} from (model::ApiKey, String));

#[derive(InputObject)]
pub struct RevokeApiKeyInput {
    pub id: ID,
}

crate::payload!(RevokeApiKeyPayload { api_key: ApiKey } from model::ApiKey);

#[derive(Default)]
pub struct TenancyMutation;

#[Object]
impl TenancyMutation {
    /// Changes the tenant's email preferences and last activity (admins).
    #[graphql(guard = "Access::Admin")]
    async fn update_tenant_settings(
        &self,
        ctx: &Context<'_>,
        input: UpdateTenantSettingsInput,
    ) -> AppResult<TenantPayload> {
        let preferences = input.email_preferences.map(|p| {
            let mut changed = serde_json::Map::new();
            for (key, value) in [
                ("marketing", p.marketing),
                ("sequences", p.sequences),
                ("weekly_digest", p.weekly_digest),
            ] {
                if let Some(value) = value {
                    changed.insert(key.to_owned(), serde_json::Value::Bool(value));
                }
            }
            serde_json::Value::Object(changed)
        });
        let last_active_at = input.last_active_at;
        write_payload(ctx, move |conn, scope| {
            ops::update_tenant_settings(conn, scope, preferences, last_active_at).scope_boxed()
        })
        .await
    }

    #[graphql(guard = "Access::Admin")]
    async fn create_api_key(
        &self,
        ctx: &Context<'_>,
        input: CreateApiKeyInput,
    ) -> AppResult<CreateApiKeyPayload> {
        write_payload(ctx, |conn, scope| {
            let input = &input;
            async move { ops::create_api_key(conn, scope, &input.name, input.role).await }
                .scope_boxed()
        })
        .await
    }

    /// Runs a failed or cancelled job again now (admins); a failed message delivery is
    /// queued again.
    #[graphql(guard = "Access::Admin")]
    async fn retry_job(&self, ctx: &Context<'_>, input: JobInput) -> AppResult<JobPayload> {
        job_action(ctx, input, ops::JobAction::Retry).await
    }

    /// Cancels a pending or failed job (admins); a queued message fails as `cancelled`.
    #[graphql(guard = "Access::Admin")]
    async fn cancel_job(&self, ctx: &Context<'_>, input: JobInput) -> AppResult<JobPayload> {
        job_action(ctx, input, ops::JobAction::Cancel).await
    }

    #[graphql(guard = "Access::Admin")]
    async fn revoke_api_key(
        &self,
        ctx: &Context<'_>,
        input: RevokeApiKeyInput,
    ) -> AppResult<RevokeApiKeyPayload> {
        let request = request_context(ctx)?;
        let id = parse_id(&input.id, &["input", "id"])?;
        let result = request
            .db
            .run(|conn, scope| {
                async move { ops::revoke_api_key(conn, scope, id).await }.scope_boxed()
            })
            .await;
        // Committed: this instance forgets the key now (every instance's event listener
        // hears of it too), so its next request is looked up on the primary, not confirmed
        // on a replica that may not have replayed the revocation.
        if let (Ok(_), Some(hub)) = (&result, ctx.data_opt::<Arc<EventHub>>()) {
            hub.known_keys.forget_key(id);
        }
        payload(result)
    }
}
