use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use scoped_futures::ScopedFutureExt;
use uuid::Uuid;

use super::model::{ApiKey, Job, JobStatus, NewApiKey, NewTenant, Tenant};
use crate::auth::{generate_api_key, Role};
use crate::db::page::PageRequest;
use crate::db::schema::{api_keys, queue_jobs, tenants};
use crate::db::{self, Tenant as TenantScope};
use crate::domain::{OpResult, UserError, UserErrorCode};
use crate::error::{AppError, AppResult};

/// `Acme Wines & Co` → `acme-wines-co`.
pub fn slugify(name: &str) -> String {
    let mut slug = String::new();
    for c in name.to_lowercase().chars() {
        if c.is_ascii_alphanumeric() {
            slug.push(c);
        } else if !slug.ends_with('-') && !slug.is_empty() {
            slug.push('-');
        }
    }
    slug.trim_end_matches('-').chars().take(63).collect()
}

fn validate_slug(slug: &str) -> Result<(), UserError> {
    let valid = !slug.is_empty()
        && slug.len() <= 63
        && slug
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !slug.starts_with('-');
    if valid {
        Ok(())
    } else {
        Err(UserError::new(
            UserErrorCode::Invalid,
            &["slug"],
            "slug must be 1-63 lowercase letters, digits or dashes, not starting with a dash",
        ))
    }
}

fn validate_name(field: &str, name: &str) -> Result<(), UserError> {
    if name.trim().is_empty() || name.chars().count() > 200 || name.contains('\0') {
        return Err(UserError::new(
            UserErrorCode::Invalid,
            &[field],
            "name must be 1-200 characters",
        ));
    }
    Ok(())
}

/// Creates a tenant and its first admin key, in one transaction scoped to the new tenant.
/// Runs on an owner connection (administrative commands).
pub async fn create_tenant(
    conn: &mut AsyncPgConnection,
    name: &str,
    slug: Option<&str>,
) -> OpResult<(Tenant, String)> {
    let id = Uuid::new_v4();
    db::tenant::in_tenant_transaction(conn, id, |conn, scope| {
        async move { insert_tenant(conn, scope, name, slug).await }.scope_boxed()
    })
    .await
}

/// The body of [`create_tenant`], for callers already inside the new tenant's unit of work.
pub async fn insert_tenant(
    conn: &mut AsyncPgConnection,
    scope: TenantScope,
    name: &str,
    slug: Option<&str>,
) -> OpResult<(Tenant, String)> {
    validate_name("name", name)?;
    let slug = slug.map(str::to_owned).unwrap_or_else(|| slugify(name));
    validate_slug(&slug)?;
    let tenant = diesel::insert_into(tenants::table)
        .values(NewTenant {
            id: scope.id(),
            slug: &slug,
            name: name.trim(),
        })
        .on_conflict_do_nothing()
        .returning(Tenant::as_returning())
        .get_result(conn)
        .await
        .optional()?
        .ok_or_else(|| {
            UserError::new(
                UserErrorCode::Conflict,
                &["slug"],
                "a tenant with this slug already exists",
            )
        })?;
    let (_, secret) = create_api_key(conn, scope, "initial admin key", Role::Admin).await?;
    Ok((tenant, secret))
}

/// Resolves a slug to its tenant (administrative commands, owner connection).
pub async fn find_tenant_by_slug(
    conn: &mut AsyncPgConnection,
    slug: &str,
) -> AppResult<Option<Tenant>> {
    Ok(tenants::table
        .filter(tenants::slug.eq(slug))
        .select(Tenant::as_select())
        .first(conn)
        .await
        .optional()?)
}

pub async fn find_tenant(conn: &mut AsyncPgConnection, scope: TenantScope) -> AppResult<Tenant> {
    tenants::table
        .find(scope.id())
        .select(Tenant::as_select())
        .first(conn)
        .await
        .optional()?
        .ok_or_else(|| AppError::internal(&"authenticated tenant row not visible"))
}

/// Creates a key; the secret is returned once and only its hash is stored.
pub async fn create_api_key(
    conn: &mut AsyncPgConnection,
    scope: TenantScope,
    name: &str,
    role: Role,
) -> OpResult<(ApiKey, String)> {
    validate_name("name", name)?;
    let generated = generate_api_key(role);
    let key = diesel::insert_into(api_keys::table)
        .values(NewApiKey {
            tenant_id: scope.id(),
            name: name.trim(),
            role: role.as_str(),
            key_hash: &generated.hash,
            key_prefix: &generated.prefix,
        })
        .returning(ApiKey::as_returning())
        .get_result(conn)
        .await?;
    Ok((key, generated.secret))
}

pub async fn revoke_api_key(
    conn: &mut AsyncPgConnection,
    scope: TenantScope,
    id: Uuid,
) -> OpResult<ApiKey> {
    let key = crate::tenant_row!(
        locked conn,
        scope,
        api_keys,
        id,
        ApiKey::as_select(),
        &["input", "id"],
        "no such API key"
    )?;
    if key.revoked_at.is_some() {
        return Err(UserError::new(
            UserErrorCode::InvalidTransition,
            &["input", "id"],
            "this API key is already revoked",
        )
        .into());
    }
    Ok(diesel::update(
        api_keys::table
            .filter(api_keys::tenant_id.eq(scope.id()))
            .filter(api_keys::id.eq(id)),
    )
    .set(api_keys::revoked_at.eq(diesel::dsl::now))
    .returning(ApiKey::as_returning())
    .get_result(conn)
    .await?)
}

pub async fn find_api_key(
    conn: &mut AsyncPgConnection,
    scope: TenantScope,
    id: Uuid,
) -> AppResult<Option<ApiKey>> {
    Ok(api_keys::table
        .filter(api_keys::tenant_id.eq(scope.id()))
        .filter(api_keys::id.eq(id))
        .select(ApiKey::as_select())
        .first(conn)
        .await
        .optional()?)
}

/// Keys in creation order, one keyset page.
pub async fn list_api_keys(
    conn: &mut AsyncPgConnection,
    scope: TenantScope,
    page: &PageRequest<DateTime<Utc>>,
) -> AppResult<Vec<ApiKey>> {
    let mut query = api_keys::table
        .filter(api_keys::tenant_id.eq(scope.id()))
        .select(ApiKey::as_select())
        .limit(page.limit())
        .into_boxed();
    query = crate::keyset!(query, page, api_keys::created_at, api_keys::id, asc);
    Ok(query.load(conn).await?)
}

/// The tenant's background jobs, optionally in one status, newest first.
pub async fn list_jobs(
    conn: &mut AsyncPgConnection,
    scope: TenantScope,
    status: Option<JobStatus>,
    job_type: Option<&str>,
    page: &PageRequest<DateTime<Utc>>,
) -> QueryResult<Vec<Job>> {
    crate::newest_first!(
        conn,
        scope,
        queue_jobs,
        Job,
        page,
        status = status,
        job_type = job_type
    )
}

/// What an admin does to a job: run a failed or cancelled one again now, or cancel one
/// that has not run (pending, or failed). A message delivery follows its job: retried,
/// a failed message is queued again; cancelled, a queued one fails as `cancelled`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobAction {
    Retry,
    Cancel,
}

pub async fn act_on_job(
    conn: &mut AsyncPgConnection,
    scope: TenantScope,
    id: Uuid,
    action: JobAction,
) -> OpResult<Job> {
    use queue_jobs as j;
    let (status, payload): (JobStatus, serde_json::Value) = crate::tenant_row!(
        locked conn,
        scope,
        queue_jobs,
        id,
        (table::status, table::payload),
        &["input", "id"],
        "no such job"
    )?;
    let allowed = match action {
        JobAction::Retry => matches!(status, JobStatus::Failed | JobStatus::Cancelled),
        JobAction::Cancel => matches!(status, JobStatus::Pending | JobStatus::Failed),
    };
    if !allowed {
        return Err(UserError::new(
            UserErrorCode::InvalidTransition,
            &["input", "id"],
            format!(
                "a {} job cannot be {}",
                status.as_str(),
                match action {
                    JobAction::Retry => "retried",
                    JobAction::Cancel => "cancelled",
                }
            ),
        )
        .into());
    }
    let target = j::table
        .filter(j::tenant_id.eq(scope.id()))
        .filter(j::id.eq(id));
    let job = match action {
        JobAction::Retry => {
            diesel::update(target)
                .set((
                    j::status.eq(JobStatus::Pending),
                    j::attempts.eq(0),
                    j::run_at.eq(diesel::dsl::now),
                    j::started_at.eq(None::<DateTime<Utc>>),
                    j::completed_at.eq(None::<DateTime<Utc>>),
                ))
                .returning(Job::as_returning())
                .get_result(conn)
                .await?
        }
        JobAction::Cancel => {
            diesel::update(target)
                .set((
                    j::status.eq(JobStatus::Cancelled),
                    j::completed_at.eq(diesel::dsl::now),
                ))
                .returning(Job::as_returning())
                .get_result(conn)
                .await?
        }
    };
    if let Some(message) = payload["messageId"].as_str().and_then(|m| m.parse().ok()) {
        crate::domain::messages::ops::follow_job(conn, scope, message, action == JobAction::Retry)
            .await?;
    }
    crate::domain::events::record(
        conn,
        scope,
        match action {
            JobAction::Retry => "job.retried",
            JobAction::Cancel => "job.cancelled",
        },
        id,
        serde_json::json!({ "jobType": job.job_type }),
    )
    .await?;
    Ok(job)
}

/// Merges `preferences` into the tenant's email preferences and sets its last activity;
/// the tenant as it then stands.
pub async fn update_tenant_settings(
    conn: &mut AsyncPgConnection,
    scope: TenantScope,
    preferences: Option<serde_json::Value>,
    last_active_at: Option<DateTime<Utc>>,
) -> OpResult<Tenant> {
    let target = tenants::table.filter(tenants::id.eq(scope.id()));
    if preferences.is_some() || last_active_at.is_some() {
        let merged = preferences.map(|p| {
            let merge = diesel::dsl::sql::<diesel::sql_types::Jsonb>("email_preferences || ");
            tenants::email_preferences.eq(merge.bind::<diesel::sql_types::Jsonb, _>(p))
        });
        let changes = (
            merged,
            last_active_at.map(|at| tenants::last_active_at.eq(Some(at))),
        );
        diesel::update(target).set(changes).execute(conn).await?;
    }
    let tenant: Tenant = target.select(Tenant::as_select()).first(conn).await?;
    crate::domain::events::record(
        conn,
        scope,
        "tenant.settings_changed",
        tenant.id,
        serde_json::json!({ "emailPreferences": tenant.email_preferences, "lastActiveAt": tenant.last_active_at }),
    )
    .await?;
    Ok(tenant)
}

/// The tenant's own email preferences (seed 000: `marketing`, `sequences`,
/// `weekly_digest`), `null` when its row is not visible.
pub async fn email_preferences(
    conn: &mut AsyncPgConnection,
    scope: TenantScope,
) -> QueryResult<serde_json::Value> {
    Ok(tenants::table
        .filter(tenants::id.eq(scope.id()))
        .select(tenants::email_preferences)
        .first(conn)
        .await
        .optional()?
        .unwrap_or(serde_json::Value::Null))
}
