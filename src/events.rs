//! Publishing: each server instance keeps one listening connection (LISTEN, reconnecting
//! with backoff), runs the sequencer every `TICK`, and fans the tenants' newly sequenced
//! events out to its local subscribers through bounded broadcast channels. A
//! subscriber that falls more than `BUFFER` events behind is cut off (its stream ends
//! with a SLOW_CONSUMER error) instead of growing memory.
//!
//! The same connection hears of API keys that stop being what they were (migration
//! `2026-11-23-000018_api_key_changes`): the instance forgets them (see [`KnownKeys`]), so
//! a revoked key's next request is looked up on the primary, never confirmed on a replica
//! that has not replayed the revocation yet. Reconnecting forgets every key (changes made
//! meanwhile went unheard).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl, SimpleAsyncConnection};
use futures_util::{Stream, StreamExt};
use scoped_futures::ScopedFutureExt;
use tokio::sync::broadcast;
use uuid::Uuid;

use crate::auth::KnownKeys;
use crate::db::sql::Prepared;
use crate::db::{PgPool, TenantDb};
use crate::domain::events::{self, StoredEvent};
use crate::error::{AppError, AppResult};

/// Events buffered per tenant channel; a subscriber further behind is disconnected.
pub const BUFFER: usize = 1024;
/// How often each instance runs the sequencer (a cheap no-op when nothing is new).
const TICK: Duration = Duration::from_millis(20);
/// Where committed events are announced (migration `2026-11-22-000012_event_sequencing`).
const EVENTS_CHANNEL: &str = "gg_events_sequenced";
/// Where changed API keys are announced, by id.
const KEYS_CHANNEL: &str = "gg_api_keys_changed";

struct TenantChannel {
    sender: broadcast::Sender<Arc<StoredEvent>>,
    last: i64,
}

pub struct EventHub {
    pool: PgPool,
    tenants: Mutex<HashMap<Uuid, TenantChannel>>,
    /// Woken when this instance commits a write: the sequencer runs without waiting for
    /// its tick (several wake-ups before it runs count as one).
    commits: Arc<tokio::sync::Notify>,
    /// What the database said about recently used API keys (see [`KnownKeys`]); the
    /// listener forgets the ones it hears have changed.
    pub known_keys: Arc<KnownKeys>,
    /// Whether the listening connection is up (and has forgotten the keys remembered
    /// before it was).
    listening: AtomicBool,
}

#[derive(Debug, Clone)]
pub enum SubscriptionEnd {
    /// The subscriber fell too far behind.
    SlowConsumer,
}

impl EventHub {
    pub fn new(pool: PgPool) -> Arc<Self> {
        Arc::new(EventHub {
            pool,
            tenants: Mutex::new(HashMap::new()),
            commits: Arc::default(),
            known_keys: Arc::default(),
            listening: Default::default(),
        })
    }

    /// The signal a [`TenantDb`] wakes after each committed write (see
    /// [`TenantDb::signalling_commits`]).
    pub fn commit_signal(&self) -> Arc<tokio::sync::Notify> {
        self.commits.clone()
    }

    /// Live events of `tenant`, preceded (when `after` is given) by every published event
    /// after that position: no gap and no duplicate at the seam.
    pub async fn subscribe(
        self: &Arc<Self>,
        tenant: Uuid,
        after: Option<i64>,
    ) -> AppResult<impl Stream<Item = Result<Arc<StoredEvent>, SubscriptionEnd>> + Send + 'static>
    {
        let db = TenantDb::new(self.pool.clone(), tenant);
        let current = db
            .query(|conn, scope| events::last_position(conn, scope).scope_boxed())
            .await?;
        let (receiver, seam) = {
            let mut tenants = self.tenants.lock().expect("not poisoned");
            let channel = tenants.entry(tenant).or_insert_with(|| TenantChannel {
                sender: broadcast::channel(BUFFER).0,
                last: current,
            });
            (channel.sender.subscribe(), channel.last)
        };
        // Replay (after, seam] from the outbox in pages; everything later arrives live.
        let replay =
            futures_util::stream::unfold(after.map(|a| (a, db)), move |state| async move {
                let (from, db) = state?;
                if from >= seam {
                    return None;
                }
                let page = db
                    .query(|conn, scope| {
                        events::events_after(conn, scope, from, Some(seam), 500, None).scope_boxed()
                    })
                    .await
                    .ok()?;
                let next = page.last().map(|e| e.position())?;
                Some((
                    futures_util::stream::iter(page.into_iter().map(|e| Ok(Arc::new(e)))),
                    Some((next, db)),
                ))
            })
            .flatten();
        let live = futures_util::stream::unfold(Some(receiver), |receiver| async move {
            let mut receiver = receiver?;
            match receiver.recv().await {
                Ok(event) => Some((Ok(event), Some(receiver))),
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    Some((Err(SubscriptionEnd::SlowConsumer), None))
                }
                Err(broadcast::error::RecvError::Closed) => None,
            }
        });
        Ok(replay.chain(live))
    }

    /// Publishes the newly sequenced events of every tenant that has local subscribers.
    pub async fn fetch_new(&self) -> AppResult<()> {
        let watched: Vec<(Uuid, i64)> = {
            let mut tenants = self.tenants.lock().expect("not poisoned");
            tenants.retain(|_, c| c.sender.receiver_count() > 0);
            tenants.iter().map(|(t, c)| (*t, c.last)).collect()
        };
        for (tenant, last) in watched {
            let db = TenantDb::new(self.pool.clone(), tenant);
            let mut from = last;
            loop {
                let page = db
                    .query(|conn, scope| {
                        events::events_after(conn, scope, from, None, 1000, None).scope_boxed()
                    })
                    .await?;
                let Some(tail) = page.last().map(|e| e.position()) else {
                    break;
                };
                let mut tenants = self.tenants.lock().expect("not poisoned");
                let Some(channel) = tenants.get_mut(&tenant) else {
                    break;
                };
                for event in page {
                    if event.position() > channel.last {
                        channel.last = event.position();
                        let _ = channel.sender.send(Arc::new(event));
                    }
                }
                from = tail;
            }
        }
        Ok(())
    }

    /// Numbers committed events (one sequencer at a time across instances); returns the
    /// highest position, or None when another instance's sequencer was busy.
    pub async fn sequence(&self) -> AppResult<Option<i64>> {
        #[derive(diesel::QueryableByName)]
        struct Last {
            #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::BigInt>)]
            last: Option<i64>,
        }
        let mut conn = self.pool.get().await?;
        let last: Last = Prepared::new("SELECT sequence_domain_events() AS last")
            .get_result(&mut conn)
            .await?;
        Ok(last.last)
    }

    /// Whether the listener's connection is up (`growthgraph_event_listener_up`).
    pub fn is_listening(&self) -> bool {
        // Named: `RunQueryDsl::load` is in scope too.
        AtomicBool::load(&self.listening, Ordering::Relaxed)
    }

    /// The listener: one connection per instance, reconnecting with backoff and catching
    /// up from the last position it published.
    pub fn spawn_listener(self: &Arc<Self>, url: String) -> tokio::task::JoinHandle<()> {
        let hub = self.clone();
        tokio::spawn(async move {
            let mut backoff = Duration::from_millis(100);
            loop {
                match hub.listen(&url).await {
                    Ok(()) => backoff = Duration::from_millis(100),
                    Err(error) => {
                        hub.listening.store(false, Ordering::Relaxed);
                        tracing::warn!(
                            ?error,
                            ?backoff,
                            "event listener lost its connection; reconnecting"
                        );
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(Duration::from_secs(10));
                    }
                }
            }
        })
    }

    async fn listen(&self, url: &str) -> Result<(), String> {
        let mut conn = AsyncPgConnection::establish(url)
            .await
            .map_err(|e| e.to_string())?;
        conn.batch_execute(&format!("LISTEN {EVENTS_CHANNEL}; LISTEN {KEYS_CHANNEL}"))
            .await
            .map_err(|e| e.to_string())?;
        // Catch up on anything published while we were away, and forget keys that may
        // have changed meanwhile.
        self.known_keys.forget_all();
        self.listening.store(true, Ordering::Relaxed);
        self.fetch().await;
        let mut seen = 0i64;
        let mut since_fetch = 0u32;
        let mut notifications = std::pin::pin!(conn.notifications_stream());
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            // Sequence on every tick, and at once when a local write commits.
            tokio::select! {
                notification = notifications.next() => {
                    match notification {
                        // An API key changed (the payload is its id).
                        Some(Ok(notification)) if notification.channel == KEYS_CHANNEL => {
                            match notification.payload.parse::<Uuid>() {
                                Ok(key_id) => self.known_keys.forget_key(key_id),
                                Err(_) => self.known_keys.forget_all(),
                            }
                        }
                        // Some instance's sequencer numbered events up to the position
                        // it carries. This instance's own notification comes back too:
                        // its events were fetched right after sequencing them.
                        Some(Ok(notification)) => {
                            let last = notification.payload.parse::<i64>().ok();
                            if last.is_none_or(|last| last > seen) {
                                since_fetch = 0;
                                self.fetch().await;
                                // Sequencers run one at a time and notify on commit:
                                // everything up to `last` was visible to that fetch.
                                seen = seen.max(last.unwrap_or(seen));
                            }
                        }
                        Some(Err(e)) => return Err(e.to_string()),
                        None => return Err("notification stream ended".into()),
                    }
                    continue;
                }
                _ = tick.tick() => {}
                _ = self.commits.notified() => {}
            }
            since_fetch += 1;
            match self.sequence().await {
                Ok(Some(last)) if last > seen => {
                    seen = last;
                    since_fetch = 0;
                    self.fetch().await;
                }
                Ok(_) => {}
                Err(error) => tracing::debug!(?error, "sequencing events failed"),
            }
            // Safety net for a missed notification: fetch at least every 50 wake-ups
            // (a second at most).
            if since_fetch >= 50 {
                since_fetch = 0;
                self.fetch().await;
            }
        }
    }

    async fn fetch(&self) {
        if let Err(error) = self.fetch_new().await {
            tracing::debug!(?error, "fetching events failed");
        }
    }
}

/// Parses an event cursor (its position, as a decimal string).
pub fn parse_position(cursor: &str, field: &[&str]) -> AppResult<i64> {
    cursor
        .parse::<i64>()
        .ok()
        .filter(|p| *p >= 0)
        .ok_or_else(|| AppError::bad_input(field, "not an event cursor"))
}
