//! Each tenant's cost budget: a leaky bucket, as Shopify's Admin API has. A tenant's
//! bucket holds at most `maximum` points and refills at `restore_rate` points per second.
//! An operation takes its requested cost (what it could cost at most) out before it runs,
//! and one that finds too little left is refused with `RATE_LIMITED` (HTTP 429,
//! `Retry-After`) without running; once it has run, what its result did not hold goes
//! back (it is charged its actual cost). Every response reports the bucket after it
//! (`extensions.cost.throttleStatus`). A noisy tenant drains its own bucket, never
//! another's.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_graphql::{Name, Value};
use uuid::Uuid;

/// A tenant's bucket as a response reports it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Throttle {
    pub maximum: f64,
    pub available: f64,
    pub restore_rate: f64,
}

impl Throttle {
    /// `{ maximumAvailable, currentlyAvailable, restoreRate }`.
    pub fn to_value(&self) -> Value {
        let mut object = async_graphql::indexmap::IndexMap::new();
        object.insert(Name::new("maximumAvailable"), Value::from(self.maximum));
        object.insert(
            Name::new("currentlyAvailable"),
            Value::from(self.available.floor()),
        );
        object.insert(Name::new("restoreRate"), Value::from(self.restore_rate));
        Value::Object(object)
    }
}

/// An operation refused for want of budget.
#[derive(Debug, Clone, Copy)]
pub struct Throttled {
    pub throttle: Throttle,
    /// When the bucket will hold the operation's cost again.
    pub retry_after: Duration,
}

impl Throttled {
    /// [`Throttled::retry_after`] in whole seconds, at least one (`Retry-After`).
    pub fn retry_after_secs(&self) -> u64 {
        self.retry_after.as_secs_f64().ceil().max(1.0) as u64
    }
}

struct Bucket {
    available: f64,
    at: Instant,
}

pub struct TenantBudgets {
    maximum: f64,
    restore_rate: f64,
    buckets: Mutex<HashMap<Uuid, Bucket>>,
}

impl TenantBudgets {
    /// Buckets kept before full ones are forgotten (a full bucket is what a tenant not
    /// seen before gets).
    const MAX_KEPT: usize = 10_000;

    pub fn new(maximum: u64, restore_rate: u64) -> Self {
        Self {
            maximum: maximum as f64,
            restore_rate: restore_rate.max(1) as f64,
            buckets: Mutex::default(),
        }
    }

    /// Takes `cost` out of `tenant`'s bucket, or says when it can be taken.
    pub fn charge(&self, tenant: Uuid, cost: usize) -> Result<Throttle, Throttled> {
        self.charge_at(tenant, cost, Instant::now())
    }

    /// Gives `points` back to `tenant`'s bucket (an operation cost less than it could
    /// have); the bucket after.
    pub fn refund(&self, tenant: Uuid, points: usize) -> Throttle {
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        let available = match buckets.get_mut(&tenant) {
            Some(bucket) => {
                bucket.available = (bucket.available + points as f64).min(self.maximum);
                bucket.available
            }
            None => self.maximum,
        };
        Throttle {
            maximum: self.maximum,
            available,
            restore_rate: self.restore_rate,
        }
    }

    fn charge_at(&self, tenant: Uuid, cost: usize, now: Instant) -> Result<Throttle, Throttled> {
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        if buckets.len() >= Self::MAX_KEPT && !buckets.contains_key(&tenant) {
            let (maximum, rate) = (self.maximum, self.restore_rate);
            buckets.retain(|_, b| b.available + rate * (now - b.at).as_secs_f64() < maximum);
        }
        let bucket = buckets.entry(tenant).or_insert(Bucket {
            available: self.maximum,
            at: now,
        });
        let elapsed = now.saturating_duration_since(bucket.at).as_secs_f64();
        bucket.available = (bucket.available + elapsed * self.restore_rate).min(self.maximum);
        bucket.at = now;
        let cost = cost as f64;
        let status = |available| Throttle {
            maximum: self.maximum,
            available,
            restore_rate: self.restore_rate,
        };
        if cost > bucket.available {
            let wait = (cost.min(self.maximum) - bucket.available) / self.restore_rate;
            return Err(Throttled {
                throttle: status(bucket.available),
                retry_after: Duration::from_secs_f64(wait.max(0.001)),
            });
        }
        bucket.available -= cost;
        Ok(status(bucket.available))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_drains_refuses_and_refills_at_its_rate_per_tenant() {
        let budgets = TenantBudgets::new(1_000, 100);
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        let start = Instant::now();
        assert_eq!(budgets.charge_at(a, 600, start).unwrap().available, 400.0);
        let refused = budgets.charge_at(a, 600, start).unwrap_err();
        assert_eq!(refused.throttle.available, 400.0);
        assert_eq!(
            refused.retry_after,
            Duration::from_secs(2),
            "200 more at 100/s"
        );
        // Another tenant's bucket is untouched.
        assert_eq!(budgets.charge_at(b, 1_000, start).unwrap().available, 0.0);
        // Two seconds later the first bucket holds 600 again, and never more than its
        // maximum.
        let later = start + Duration::from_secs(2);
        assert_eq!(budgets.charge_at(a, 600, later).unwrap().available, 0.0);
        let much_later = start + Duration::from_secs(3600);
        assert_eq!(
            budgets.charge_at(a, 0, much_later).unwrap().available,
            1_000.0
        );
        // What an operation did not use goes back, never past the maximum.
        assert_eq!(
            budgets.charge_at(a, 700, much_later).unwrap().available,
            300.0
        );
        assert_eq!(budgets.refund(a, 650).available, 950.0);
        assert_eq!(budgets.refund(a, 650).available, 1_000.0);
    }
}
