//! Each tenant's share of the connection pool. A request's connection is taken under a
//! permit of its tenant: one tenant holds at most `per_tenant` of the pool's connections
//! at once (by default a quarter of the pool stays for the others), so a tenant whose
//! queries hold connections long (searches, large pages) queues behind its own requests
//! while another tenant's find a free connection at once. A request that waits longer
//! than `wait` for its tenant's share is refused with `RATE_LIMITED`, never left to time
//! out as `UNAVAILABLE`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use uuid::Uuid;

use crate::error::AppError;

pub struct TenantShares {
    per_tenant: usize,
    wait: Duration,
    semaphores: Mutex<HashMap<Uuid, Arc<Semaphore>>>,
}

impl TenantShares {
    /// Semaphores kept before idle ones are forgotten.
    const MAX_KEPT: usize = 10_000;

    pub fn new(per_tenant: usize, wait: Duration) -> Self {
        Self {
            per_tenant: per_tenant.max(1),
            wait,
            semaphores: Mutex::default(),
        }
    }

    /// The share of a pool of `pool_size`: all but a quarter of it (at least one
    /// connection left for the other tenants when the pool has two or more).
    pub fn default_per_tenant(pool_size: usize) -> usize {
        pool_size.saturating_sub((pool_size / 4).max(1)).max(1)
    }

    fn semaphore(&self, tenant: Uuid) -> Arc<Semaphore> {
        let mut semaphores = self.semaphores.lock().unwrap_or_else(|e| e.into_inner());
        if semaphores.len() >= Self::MAX_KEPT && !semaphores.contains_key(&tenant) {
            let idle = self.per_tenant;
            semaphores.retain(|_, s| s.available_permits() < idle);
        }
        semaphores
            .entry(tenant)
            .or_insert_with(|| Arc::new(Semaphore::new(self.per_tenant)))
            .clone()
    }

    /// A permit to hold one of `tenant`'s connections, if one is free now.
    pub fn try_acquire(&self, tenant: Uuid) -> Option<OwnedSemaphorePermit> {
        self.semaphore(tenant).try_acquire_owned().ok()
    }

    /// A permit to hold one of `tenant`'s connections.
    pub async fn acquire(&self, tenant: Uuid) -> Result<OwnedSemaphorePermit, AppError> {
        let semaphore = self.semaphore(tenant);
        match tokio::time::timeout(self.wait, semaphore.acquire_owned()).await {
            Ok(Ok(permit)) => Ok(permit),
            _ => Err(AppError::RateLimited(
                "this tenant's share of the database is busy: retry shortly",
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_tenant_waits_for_its_own_share_and_is_refused_after_the_wait() {
        assert_eq!(TenantShares::default_per_tenant(8), 6);
        assert_eq!(TenantShares::default_per_tenant(2), 1);
        assert_eq!(TenantShares::default_per_tenant(1), 1);
        let shares = TenantShares::new(2, Duration::from_millis(50));
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        let first = shares.acquire(a).await.unwrap();
        let _second = shares.try_acquire(a).expect("a second permit");
        assert!(shares.try_acquire(a).is_none(), "the share is full");
        assert!(matches!(
            shares.acquire(a).await,
            Err(AppError::RateLimited(_))
        ));
        // Another tenant is not held back by the first one's.
        let _other = shares.acquire(b).await.unwrap();
        drop(first);
        assert!(
            shares.acquire(a).await.is_ok(),
            "a returned permit serves the next"
        );
    }
}
