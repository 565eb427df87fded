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
//! Identical queries: members that ask the same thing (same key, document, operation and
//! variables: [`Runs`]) while one of them runs it wait for its answer instead of running
//! it again. They share its snapshot anyway, so the answer is the one they would have
//! computed; a dashboard whose clients poll one page costs one page per group.
//!
//! The connection goes back to the pool when the last member finishes; the database
//! confirms each key once for all of them, and if it refuses one, the snapshot ends and
//! every member is answered from a fresh lookup of its own key, as a lone request would
//! be: the revoked key's request gets 401, the others their answers.

use std::collections::HashMap;
use std::future::Future;
use std::hash::Hash;
use std::marker::PhantomData;
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
    /// Requests answered by an identical query another member ran.
    shared: Arc<AtomicU64>,
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
    /// The identical queries running for its members.
    pub(super) runs: Runs,
}

/// Runs that members asking the same thing share ([`Runs::once`]).
pub struct Runs {
    /// One `Followers<R>` per answer type.
    followers: Mutex<TypeMap>,
    /// Counts the members answered by another's run.
    shared: Arc<AtomicU64>,
}

/// The members waiting for each running identity's answer.
type Followers<R> = HashMap<String, Vec<oneshot::Sender<R>>>;

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
            shared: Arc::default(),
        }
    }

    /// How many requests joined a group another request opened (`/metrics`).
    pub fn joins(&self) -> u64 {
        self.joins.load(Ordering::Relaxed)
    }

    /// How many requests were answered by an identical query another member of their
    /// group ran (`/metrics`).
    pub fn shared(&self) -> u64 {
        self.shared.load(Ordering::Relaxed)
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
            runs: Runs::new(self.shared.clone()),
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

impl Runs {
    fn new(shared: Arc<AtomicU64>) -> Self {
        Runs {
            followers: Mutex::default(),
            shared,
        }
    }

    /// `run`'s answer, run once for every caller that asks with the same `identity`
    /// while it runs: the first runs it, the others wait and get a clone of its answer.
    /// A caller that comes after the answer runs it again (nothing is kept). If the one
    /// running it goes away first, each waiting caller runs `run` itself.
    pub(super) async fn once<R, F>(&self, identity: String, run: F) -> R
    where
        R: Clone + Send + 'static,
        F: Future<Output = R>,
    {
        let waiting = {
            let mut followers = lock(&self.followers);
            let running = followers.entry::<Followers<R>>();
            match running.get_mut(&identity) {
                Some(waiting) => {
                    let (answer, answered) = oneshot::channel();
                    waiting.push(answer);
                    Some(answered)
                }
                None => {
                    running.insert(identity.clone(), Vec::new());
                    None
                }
            }
        };
        if let Some(answered) = waiting {
            return match answered.await {
                Ok(answer) => {
                    self.shared.fetch_add(1, Ordering::Relaxed);
                    answer
                }
                Err(_) => run.await,
            };
        }
        let mut lead = Lead::<R> {
            runs: self,
            identity: Some(identity),
            answer: PhantomData,
        };
        let answer = run.await;
        for follower in lead.take() {
            let _ = follower.send(answer.clone());
        }
        answer
    }
}

/// The first caller of an identity in [`Runs::once`]: its entry goes when it answers or
/// goes away (the waiting callers' channels close then).
struct Lead<'r, R: Send + 'static> {
    runs: &'r Runs,
    /// Until the entry is taken.
    identity: Option<String>,
    answer: PhantomData<fn() -> R>,
}

impl<R: Send + 'static> Lead<'_, R> {
    /// The callers waiting for the answer, taken with the entry: later ones run it again.
    fn take(&mut self) -> Vec<oneshot::Sender<R>> {
        let Some(identity) = self.identity.take() else {
            return Vec::new();
        };
        lock(&self.runs.followers)
            .get_mut::<Followers<R>>()
            .and_then(|running| running.remove(&identity))
            .unwrap_or_default()
    }
}

impl<R: Send + 'static> Drop for Lead<'_, R> {
    fn drop(&mut self) {
        drop(self.take());
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

    /// A run that counts its calls and answers once `go` says so.
    async fn counted(calls: &AtomicU64, go: &tokio::sync::Notify, answer: u32) -> u32 {
        calls.fetch_add(1, Ordering::SeqCst);
        go.notified().await;
        answer
    }

    #[tokio::test]
    async fn callers_asking_the_same_while_it_runs_share_one_run() {
        let runs = Runs::new(Arc::default());
        let (calls, go) = (AtomicU64::new(0), tokio::sync::Notify::new());
        let same = || runs.once("page".to_owned(), counted(&calls, &go, 1));
        let other = runs.once("other page".to_owned(), counted(&calls, &go, 2));
        let release = async {
            while calls.load(Ordering::SeqCst) < 2 {
                tokio::task::yield_now().await;
            }
            go.notify_waiters();
        };
        let (a, b, c, d, ()) = tokio::join!(same(), same(), same(), other, release);
        assert_eq!((a, b, c, d), (1, 1, 1, 2));
        assert_eq!(calls.load(Ordering::SeqCst), 2, "one run per identity");
        assert_eq!(runs.shared.load(Ordering::SeqCst), 2, "two callers shared");

        // After the answer, the same identity runs again: answers are not kept.
        go.notify_one();
        assert_eq!(same().await, 1);
        assert_eq!(calls.load(Ordering::SeqCst), 3);
        assert_eq!(
            lock(&runs.followers)
                .get::<Followers<u32>>()
                .map(HashMap::len),
            Some(0)
        );
    }

    #[tokio::test]
    async fn when_the_running_caller_goes_away_the_waiting_ones_run_it_themselves() {
        let runs = Runs::new(Arc::default());
        let (calls, go) = (AtomicU64::new(0), tokio::sync::Notify::new());
        let mut first = Box::pin(runs.once("page".to_owned(), counted(&calls, &go, 1)));
        // The first caller starts its run, then is dropped half-way (its client left).
        assert!(futures_util::poll!(first.as_mut()).is_pending());
        let second = runs.once("page".to_owned(), async { 7 });
        let leave = async {
            tokio::task::yield_now().await;
            drop(first);
        };
        let (second, ()) = tokio::join!(second, leave);
        assert_eq!(second, 7, "its own run");
        assert_eq!(runs.shared.load(Ordering::SeqCst), 0);
        assert_eq!(runs.once("page".to_owned(), async { 8 }).await, 8);
    }
}
