//! The demo tenant: a winery, Domaine des Coteaux, that touches every domain so GraphiQL
//! is worth opening. Idempotent: nothing happens when the tenant already exists.

use diesel_async::{AsyncPgConnection, SimpleAsyncConnection};
use scoped_futures::ScopedFutureExt;
use uuid::Uuid;

use crate::db::tenant::in_tenant_transaction;
use crate::db::Tenant;
use crate::domain::tenancy::ops as tenancy;
use crate::domain::OpError;
use crate::error::AppError;

pub const DEMO_SLUG: &str = "domaine-des-coteaux";
pub const DEMO_NAME: &str = "Domaine des Coteaux";

/// Rows of every domain, written with `tenant_id = current_tenant_id()`.
const DEMO_SQL: &str = include_str!("demo.sql");

/// Loads the demo tenant; returns its admin key when it was created now.
pub async fn seed_demo(conn: &mut AsyncPgConnection) -> Result<Option<String>, String> {
    if tenancy::find_tenant_by_slug(conn, DEMO_SLUG)
        .await
        .map_err(|e| format!("{e:?}"))?
        .is_some()
    {
        return Ok(None);
    }
    let key = in_tenant_transaction(conn, Uuid::new_v4(), |conn, scope| {
        async move {
            let (_, key) = tenancy::insert_tenant(conn, scope, DEMO_NAME, Some(DEMO_SLUG)).await?;
            load_demo_rows(conn, scope).await?;
            Ok::<_, OpError>(key)
        }
        .scope_boxed()
    })
    .await
    .map_err(|e| match e {
        OpError::User(u) | OpError::Answered(u) => u.message,
        OpError::App(a) => format!("demo data failed to load: {a:?}"),
    })?;
    Ok(Some(key))
}

/// Writes the demo rows for `scope` (whose tenants row must exist). Tests use it to give
/// several tenants the same believable data.
pub async fn load_demo_rows(conn: &mut AsyncPgConnection, scope: Tenant) -> Result<(), AppError> {
    debug_assert!(scope.id() != Uuid::nil());
    conn.batch_execute(DEMO_SQL).await.map_err(AppError::from)
}
