//! How the job runner reaches a tenant's CRM: [`CrmProvider`], answered in production by
//! [`Connectors`] (the tenant's connection, its sealed credentials opened, the CRM's own
//! API), or by [`NoCrm`] on a server that syncs with no CRM at all.

use std::time::Duration;

use scoped_futures::ScopedFutureExt;
use uuid::Uuid;

use super::commerce7::Commerce7;
use super::model::CrmPlatform;
use super::ops;
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
        let customer = sync.customer_id;
        let target = db
            .query(|conn, scope| ops::sync_target(conn, scope, customer, key).scope_boxed())
            .await
            .map_err(|e| CrmError::Failed(format!("reading the connection: {e:?}")))?;
        let target = target?;
        let Some(tag) = sync.crm_discount_id.as_deref() else {
            return Err(CrmError::Refused(
                "the stage has no crmDiscountId: set it to the CRM's tag for the stage's discount"
                    .into(),
            ));
        };
        let learned = match target.platform {
            CrmPlatform::Shopify => {
                self.shopify
                    .sync(&target, tag, sync.action == "add")
                    .await?
            }
            CrmPlatform::Commerce7 => {
                self.commerce7
                    .sync(&target, tag, sync.action == "add")
                    .await?
            }
        };
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
