//! Per-request data: the caller, the tenant-scoped database handle built for it, and the
//! request's DataLoader (so batching never mixes tenants or requests).

use std::hash::Hash;

use async_graphql::dataloader::{DataLoader, Loader};
use std::time::Duration;

use async_graphql::Context;

use crate::auth::{Access, Authenticated, Principal, Proof};
use crate::db::group::ReadGroups;
use crate::db::tenant::RequestStart;
use crate::db::{PgPool, TenantDb};
use crate::error::{AppError, AppResult};
use crate::events::EventHub;
use crate::graphql::loaders::TenantLoader;

#[derive(Clone)]
pub struct RequestContext {
    pub principal: Principal,
    pub db: TenantDb,
    pub loader: std::sync::Arc<DataLoader<TenantLoader>>,
    /// Live subscriptions on this connection (WebSocket limit).
    pub subscriptions: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    /// The speed mechanisms in use (`--speed-off`).
    pub speed: crate::speed::Speed,
}

impl RequestContext {
    /// One HTTP request, on the connection its key was looked up on, or (a known key)
    /// on one it takes when first needed; with `groups`, a read-only request of a known
    /// key shares its caller's read group instead (see [`crate::db::group`]). Its reads
    /// share one connection and one snapshot (the handler calls `db.finish()` when done).
    pub fn for_request(
        pool: PgPool,
        caller: Authenticated,
        groups: Option<&ReadGroups>,
        hub: &EventHub,
        batch_window: Duration,
    ) -> Self {
        let Authenticated { principal, proof } = caller;
        let tenant_id = principal.tenant_id();
        let start = match (proof, groups.zip(principal.read_group())) {
            (Proof::LookedUp(conn), _) => RequestStart::LookedUp(*conn),
            (Proof::Known(statement), Some((groups, group))) => RequestStart::Grouped {
                groups,
                group,
                statement,
            },
            (Proof::Known(statement), None) => RequestStart::Unconfirmed {
                conn: None,
                statement,
            },
        };
        let db = TenantDb::for_request(pool, tenant_id, start);
        Self::new(db, principal, hub, batch_window)
    }

    /// One WebSocket: long-lived, so every unit of work takes a connection and gives it
    /// back.
    pub fn for_socket(
        pool: PgPool,
        principal: Principal,
        hub: &EventHub,
        batch_window: Duration,
    ) -> Self {
        let db = TenantDb::new(pool, principal.tenant_id());
        Self::new(db, principal, hub, batch_window)
    }

    /// Writes wake the hub's sequencer as they commit.
    fn new(db: TenantDb, principal: Principal, hub: &EventHub, batch_window: Duration) -> Self {
        let db = db.signalling_commits(hub.commit_signal());
        let loader =
            DataLoader::new(TenantLoader::new(db.clone()), tokio::spawn).delay(batch_window);
        Self {
            principal,
            db,
            loader: std::sync::Arc::new(loader),
            subscriptions: Default::default(),
            speed: crate::speed::Speed::default(),
        }
    }
}

impl RequestContext {
    /// One value through the request's loader, unless a resolver above already read it
    /// in this snapshot (see [`crate::db::prefetch`]).
    pub async fn load_one<K>(&self, key: K) -> AppResult<Option<<TenantLoader as Loader<K>>::Value>>
    where
        K: Send + Sync + Hash + Eq + Clone + 'static,
        TenantLoader: Loader<K, Error = AppError>,
    {
        if let Some(found) = self.db.prefetched().and_then(|p| p.get(&key)) {
            return Ok(found);
        }
        self.loader.load_one(key).await
    }
}

pub fn request_context<'a>(ctx: &'a Context<'_>) -> AppResult<&'a RequestContext> {
    ctx.data_opt::<RequestContext>()
        .ok_or(AppError::Unauthenticated("missing or invalid API key"))
}

/// The role guard every root field declares (`#[graphql(guard = "Access::…")]`): the
/// request's principal must be one the access allows ([`Access::allows`]).
impl async_graphql::Guard for Access {
    async fn check(&self, ctx: &async_graphql::Context<'_>) -> async_graphql::Result<()> {
        let request = request_context(ctx)?;
        if self.allows(&request.principal) {
            Ok(())
        } else {
            Err(AppError::Forbidden("this API key's role may not do this").into())
        }
    }
}
