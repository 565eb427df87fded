//! Read groups: the read-only requests of one tenant and role that arrive together share
//! one pooled connection and one read snapshot, and their reads of the same kind run as
//! one statement ([`TenantDb::query_together`](super::TenantDb::query_together)). Under
//! load, requests wait for the pool anyway; waiting as a group turns, say, eight customer
//! 360s into one `= ANY($ids)` statement, one `BEGIN`, one message confirming the keys
//! and one `COMMIT`.
//!
//! Who joins: a request whose API key the server already knows and whose one operation
//! is a query, in the group of its key's tenant and role (a dashboard whose clients use
//! several keys of the tenant shares one group). Each member's key is confirmed in the
//! group's snapshot: the distinct confirmation statements of the members go as one
//! message ahead of the first read. Nothing in a group writes, and no group mixes tenants
//! (row-level security is per transaction: the confirmations all set the same tenant).
//!
//! When: a group takes newcomers until its session takes a connection from the pool,
//! which is before any statement of its snapshot is sent. Every member therefore arrived
//! before the snapshot began and sees every write committed before it sent its request
//! (its own earlier writes included). A lone request makes a group of one and runs as it
//! would alone: nothing waits for company.
//!
//! How many: one caller's groups hold at most `max_connections` pool connections at once
//! (by default, as many as the machine has cores); a group waits for one of those slots,
//! then for a connection, taking members all the while. Under load a caller's queries
//! queue as a few large groups instead of many small ones competing for the CPU: on this
//! 2-core machine, 64 clients' `customer(id)` ran at ≈ 9 000 req/s with 2 slots against
//! ≈ 6 000–8 000 with 8 (p99 13–14 ms against 20–40). The rest of the pool stays free for
//! writes and for other callers.
//!
//! The connection goes back to the pool when the last member finishes; the database
//! confirms each key once for all of them, and if it refuses one, the snapshot ends and
//! every member is answered from a fresh lookup of its own key, as a lone request would
//! be: the revoked key's request gets 401, the others their answers.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use tokio::sync::{oneshot, OwnedSemaphorePermit, Semaphore};

use super::session::Session;
use crate::db::prefetch::TypeMap;

/// The groups of each tenant and role.
pub struct ReadGroups {
    callers: Mutex<HashMap<String, CallerGroups>>,
    max_members: usize,
    max_connections: usize,
    /// Requests that joined a group another request opened.
    joins: AtomicU64,
}

/// One caller's open group (if any), and its slots for connections.
struct CallerGroups {
    open: Weak<ReadGroup>,
    slots: Arc<Semaphore>,
}

/// One group: its shared session, who is in it, and the reads its members wait on.
pub struct ReadGroup {
    pub(super) session: Arc<tokio::sync::Mutex<Session>>,
    pub(super) gate: Arc<Gate>,
    /// One `HashMap<K, Waiting<I, R>>` per kind, item and answer type.
    waiting: Mutex<TypeMap>,
}

/// Whether a group still takes members, how many have not finished, and its caller's
/// connection slots.
pub struct Gate {
    members: Mutex<Members>,
    slots: Arc<Semaphore>,
}

#[derive(Default)]
struct Members {
    closed: bool,
    count: usize,
    /// The distinct confirmation statements of the members (one per key).
    confirmations: Vec<String>,
}

/// Items waiting for one read of kind `K`, each with where its answer goes.
pub(super) type Waiting<I, R> = Vec<(I, oneshot::Sender<R>)>;

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

impl ReadGroups {
    /// Groups of at most `max_members` requests (1: every request alone), holding at most
    /// `max_connections` connections per caller.
    pub fn new(max_members: usize, max_connections: usize) -> Self {
        Self {
            callers: Mutex::default(),
            max_members: max_members.max(1),
            max_connections: max_connections.max(1),
            joins: AtomicU64::new(0),
        }
    }

    /// How many requests joined a group another request opened (`/metrics`).
    pub fn joins(&self) -> u64 {
        self.joins.load(Ordering::Relaxed)
    }

    /// Joins the open group named `caller` (a tenant and role) with the key `statement`
    /// confirms, or opens one with a session `new` builds around the group's gate.
    pub(super) fn join(
        &self,
        caller: &str,
        statement: &str,
        new: impl FnOnce(Arc<Gate>) -> Session,
    ) -> Arc<ReadGroup> {
        let mut callers = lock(&self.callers);
        if let Some(group) = callers.get(caller).and_then(|c| c.open.upgrade()) {
            if group.gate.enter(self.max_members, statement) {
                self.joins.fetch_add(1, Ordering::Relaxed);
                return group;
            }
        }
        if callers.len() >= 1024 {
            let all = self.max_connections;
            callers.retain(|_, c| c.open.strong_count() > 0 || c.slots.available_permits() < all);
        }
        let slots = match callers.get(caller) {
            Some(known) => known.slots.clone(),
            None => Arc::new(Semaphore::new(self.max_connections)),
        };
        let gate = Arc::new(Gate {
            members: Mutex::default(),
            slots: slots.clone(),
        });
        gate.enter(1, statement);
        let group = Arc::new(ReadGroup {
            session: Arc::new(tokio::sync::Mutex::new(new(gate.clone()))),
            gate,
            waiting: Mutex::default(),
        });
        let open = Arc::downgrade(&group);
        callers.insert(caller.to_owned(), CallerGroups { open, slots });
        group
    }
}

impl Gate {
    /// Adds a member whose key `statement` confirms, unless the group is closed or full.
    fn enter(&self, max_members: usize, statement: &str) -> bool {
        let mut members = lock(&self.members);
        let admitted = !members.closed && members.count < max_members;
        if admitted {
            members.count += 1;
            if !members.confirmations.iter().any(|s| s == statement) {
                members.confirmations.push(statement.to_owned());
            }
        }
        admitted
    }

    /// The statements confirming every member's key, as one message (once the group is
    /// closed, no member adds one).
    pub(super) fn confirmations(&self) -> String {
        lock(&self.members).confirmations.join("; ")
    }

    /// Takes no more members: the group's snapshot is about to begin.
    pub(super) fn close(&self) {
        lock(&self.members).closed = true;
    }

    /// One of the caller's connection slots, for as long as the group holds a connection
    /// (waits while the caller's other groups hold them all).
    pub(super) async fn slot(&self) -> OwnedSemaphorePermit {
        // The semaphore is never closed.
        self.slots
            .clone()
            .acquire_owned()
            .await
            .expect("connection slots stay open")
    }

    /// A member finished; `true` when it was the last.
    pub(super) fn leave(&self) -> bool {
        let mut members = lock(&self.members);
        members.closed = true;
        members.count = members.count.saturating_sub(1);
        members.count == 0
    }
}

impl ReadGroup {
    /// Adds `item` to the reads of `kind` waiting for the group's connection.
    pub(super) fn wait<K, I, R>(&self, kind: K, item: I, answer: oneshot::Sender<R>)
    where
        K: Hash + Eq + Send + 'static,
        I: Send + 'static,
        R: Send + 'static,
    {
        lock(&self.waiting)
            .entry::<HashMap<K, Waiting<I, R>>>()
            .entry(kind)
            .or_default()
            .push((item, answer));
    }

    /// Every item waiting for a read of `kind`, taken.
    pub(super) fn take<K, I, R>(&self, kind: &K) -> Waiting<I, R>
    where
        K: Hash + Eq + Send + 'static,
        I: Send + 'static,
        R: Send + 'static,
    {
        lock(&self.waiting)
            .get_mut::<HashMap<K, Waiting<I, R>>>()
            .and_then(|typed| typed.remove(kind))
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn new_gate() -> Gate {
        Gate {
            members: Mutex::default(),
            slots: Arc::new(Semaphore::new(1)),
        }
    }

    #[test]
    fn a_gate_takes_members_until_full_or_closed_and_counts_them_out() {
        let gate = new_gate();
        assert!(gate.enter(2, "a") && gate.enter(2, "b"));
        assert!(!gate.enter(2, "c"), "full");
        assert!(!gate.leave(), "one member left");
        assert!(
            !gate.enter(3, "c"),
            "a member left: the snapshot may have begun"
        );
        assert!(gate.leave(), "the last member");
        assert_eq!(gate.confirmations(), "a; b", "the admitted members' keys");

        let gate = new_gate();
        assert!(gate.enter(8, "a") && gate.enter(8, "a") && gate.enter(8, "b"));
        gate.close();
        assert!(!gate.enter(8, "c"), "closed");
        assert_eq!(gate.confirmations(), "a; b", "each key confirmed once");
    }
}
