//! How the job runner reaches a tenant's CRM: [`CrmProvider`], answered in production by
//! [`Connectors`] (the tenant's connection, its sealed credentials opened, the CRM's own
//! API), or by [`NoCrm`] on a server that syncs with no CRM at all.

use std::time::Duration;

use scoped_futures::ScopedFutureExt;
use uuid::Uuid;

use super::commerce7::Commerce7;
use super::model::CrmPlatform;
use super::ops::{self, SyncTarget};
use super::shopify::Shopify;
use crate::db::{PgPool, TenantDb};
use crate::domain::loyalty::ops::CrmSync;
use crate::secrets::SecretKey;

/// The CRM that holds the stages' discounts (Commerce7, Shopify, …).
#[async_trait::async_trait]
pub trait CrmProvider: Send + Sync {
    /// Adds the customer to (or removes them from) the stage's discount.
    async fn sync_discount(&self, tenant: Uuid, sync: &CrmSync) -> Result<(), CrmError>;

    /// Refreshes the tenant's OAuth sessions that expire within ten minutes; how many were
    /// refreshed. A provider without sessions has none.
    async fn refresh_sessions(&self, _tenant: Uuid) -> crate::error::AppResult<usize> {
        Ok(0)
    }
}

/// Why a CRM sync did not happen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CrmError {
    /// The tenant has no CRM to sync with: the sync ends at once, `not_configured`.
    NotConfigured,
    /// The CRM could not be reached or failed (5xx, timeout): retried with backoff.
    Failed(String),
    /// The CRM refused the request for good (bad credentials, no such customer,
    /// validation): the sync fails at once with the CRM's message.
    Refused(String),
    /// The CRM's rate limit: the sync waits `retry_after` (an attempt not counted), and so
    /// do the tenant's other syncs of this run.
    RateLimited { retry_after: Duration },
}

/// Seed 004's CRM provider methods, each CRM speaking its own API ([`super::shopify`],
/// [`super::commerce7`]).
#[async_trait::async_trait]
pub trait Connector: Send + Sync {
    /// Whether `id` is one of this CRM's customer ids (a kept id of another CRM is not).
    fn is_customer_id(&self, id: &str) -> bool;
    /// The id of the CRM's customer with this email, if it has one.
    async fn find_customer_by_email(
        &self,
        target: &SyncTarget,
        email: &str,
    ) -> Result<Option<String>, CrmError>;
    /// Updates the CRM's customer with the target customer's email, else creates them;
    /// their id.
    async fn upsert_customer(&self, target: &SyncTarget) -> Result<String, CrmError>;
    /// The stage's tag on the customer.
    async fn add_customer_to_discount(
        &self,
        target: &SyncTarget,
        customer_id: &str,
        tag: &str,
    ) -> Result<(), CrmError>;
    /// The stage's tag off the customer.
    async fn remove_customer_from_discount(
        &self,
        target: &SyncTarget,
        customer_id: &str,
        tag: &str,
    ) -> Result<(), CrmError>;
    /// The tag of a stage that has none yet (its first sync): found or made in the CRM.
    async fn stage_tag(&self, target: &SyncTarget) -> Result<String, CrmError>;
}

/// One enrollment change through `crm`: the customer made known to the CRM once (their id
/// is kept), then the stage's tag added or removed. Returns the customer's id when it was
/// learned (first, or again after the CRM refused the kept one).
pub async fn sync_with(
    crm: &dyn Connector,
    target: &SyncTarget,
    tag: &str,
    add: bool,
) -> Result<Option<String>, CrmError> {
    let known = target
        .customer
        .crm_customer_id
        .clone()
        .filter(|id| crm.is_customer_id(id));
    let tag_customer = |id: String| async move {
        match add {
            true => crm.add_customer_to_discount(target, &id, tag).await,
            false => crm.remove_customer_from_discount(target, &id, tag).await,
        }
    };
    match known {
        None => {
            let id = crm.upsert_customer(target).await?;
            tag_customer(id.clone()).await?;
            Ok(Some(id))
        }
        // A kept id the CRM refuses (the customer was deleted or merged there since): the
        // customer is found or made again, once.
        Some(id) => match tag_customer(id).await {
            Err(CrmError::Refused(_)) => {
                let id = crm.upsert_customer(target).await?;
                tag_customer(id.clone()).await?;
                Ok(Some(id))
            }
            other => other.map(|()| None),
        },
    }
}

/// The provider of a server with no CRM connector: every sync says so.
pub struct NoCrm;

#[async_trait::async_trait]
impl CrmProvider for NoCrm {
    async fn sync_discount(&self, _tenant: Uuid, _sync: &CrmSync) -> Result<(), CrmError> {
        Err(CrmError::NotConfigured)
    }
}

/// Where the CRMs are: the operator's settings, never a tenant's.
#[derive(Debug, Clone)]
pub struct CrmSettings {
    /// Shopify's Admin API origin; `{shop}` stands for the shop's `*.myshopify.com` domain.
    pub shopify_base_url: String,
    /// Commerce7's REST API.
    pub commerce7_base_url: String,
}

impl Default for CrmSettings {
    fn default() -> Self {
        CrmSettings {
            shopify_base_url: "https://{shop}".into(),
            commerce7_base_url: "https://api.commerce7.com/v1".into(),
        }
    }
}

/// The production provider: each tenant's own CRM connection.
pub struct Connectors {
    pool: PgPool,
    key: Option<SecretKey>,
    shopify: Shopify,
    commerce7: Commerce7,
}

impl Connectors {
    pub fn new(pool: PgPool, key: Option<SecretKey>, settings: CrmSettings) -> Connectors {
        Connectors {
            pool,
            key,
            shopify: Shopify::new(settings.shopify_base_url),
            commerce7: Commerce7::new(settings.commerce7_base_url),
        }
    }
}

#[async_trait::async_trait]
impl CrmProvider for Connectors {
    async fn refresh_sessions(&self, tenant: Uuid) -> crate::error::AppResult<usize> {
        let Some(key) = self.key.clone() else {
            return Ok(0);
        };
        let db = TenantDb::new(self.pool.clone(), tenant);
        let due_key = key.clone();
        let due = db
            .query(move |conn, scope| {
                async move {
                    ops::sessions_due(conn, scope, chrono::Duration::minutes(10), &due_key).await
                }
                .scope_boxed()
            })
            .await?;
        let mut refreshed = 0;
        for session in &due {
            let outcome = match session.platform {
                CrmPlatform::Shopify => self.shopify.refresh(session).await,
                CrmPlatform::Commerce7 => continue,
            };
            refreshed += usize::from(outcome.is_ok());
            let outcome = outcome.map_err(|e| match e {
                CrmError::Refused(m) | CrmError::Failed(m) => m,
                CrmError::RateLimited { .. } => "rate limited by the CRM".into(),
                CrmError::NotConfigured => "not configured".into(),
            });
            let key = key.clone();
            db.run(|conn, scope| {
                async move {
                    Ok::<_, crate::error::AppError>(
                        ops::record_refresh(conn, scope, session, outcome, &key).await?,
                    )
                }
                .scope_boxed()
            })
            .await?;
        }
        Ok(refreshed)
    }

    async fn sync_discount(&self, tenant: Uuid, sync: &CrmSync) -> Result<(), CrmError> {
        let db = TenantDb::new(self.pool.clone(), tenant);
        let key = self.key.as_ref();
        let (customer, stage) = (sync.customer_id, sync.stage_id);
        let target = db
            .query(|conn, scope| ops::sync_target(conn, scope, customer, stage, key).scope_boxed())
            .await
            .map_err(|e| CrmError::Failed(format!("reading the connection: {e:?}")))?;
        let target = target?;
        let connector: &dyn Connector = match target.platform {
            CrmPlatform::Shopify => &self.shopify,
            CrmPlatform::Commerce7 => &self.commerce7,
        };
        // The tag the change was queued with; else the stage's own; else, for a stage's
        // first sync, one found or made in the CRM and kept on the stage.
        let tag = match sync.crm_discount_id.clone().or(target.stage_tag.clone()) {
            Some(tag) => tag,
            None => {
                let made = connector.stage_tag(&target).await?;
                db.run(|conn, scope| {
                    async move {
                        Ok::<_, crate::error::AppError>(
                            ops::remember_stage_tag(conn, scope, stage, made).await?,
                        )
                    }
                    .scope_boxed()
                })
                .await
                .map_err(|e| CrmError::Failed(format!("recording the stage's tag: {e:?}")))?
            }
        };
        let learned = sync_with(connector, &target, &tag, sync.action == "add").await?;
        if let Some(crm_id) = learned {
            db.run(|conn, scope| {
                async move {
                    Ok::<_, crate::error::AppError>(
                        ops::remember_crm_customer(conn, scope, customer, crm_id).await?,
                    )
                }
                .scope_boxed()
            })
            .await
            .map_err(|e| CrmError::Failed(format!("recording the CRM's customer id: {e:?}")))?;
        }
        Ok(())
    }
}
