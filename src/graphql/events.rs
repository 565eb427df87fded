//! Events for partners: the `events` polling connection and the subscriptions (raw
//! `events` with replay, and the typed ones), all fed by the outbox.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use async_graphql::connection::{Connection, Edge};
use async_graphql::parser::types::Selection;
use async_graphql::{Context, Json, Object, Subscription, ID};
use async_graphql::{PathSegment, Response};
use chrono::{DateTime, Utc};
use futures_util::future::ready;
use futures_util::stream::BoxStream;
use futures_util::{Stream, StreamExt};
use scoped_futures::ScopedFutureExt;
use uuid::Uuid;

use crate::auth::Access;
use crate::domain::campaigns::metrics::{CampaignMetrics, FunnelCounts};
use crate::domain::customers::graphql::Activity;
use crate::domain::events::{self as outbox, StoredEvent};
use crate::domain::leads::graphql::Lead;
use crate::domain::loyalty::graphql::{Enrollment, Redemption};
use crate::error::{AppError, AppResult};
use crate::events::{parse_position, EventHub, SubscriptionEnd};
use crate::graphql::connection::{DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE};
use crate::graphql::context::request_context;
use crate::graphql::guard::RequestGuard;
use crate::graphql::lane::{DirectLane, Payload};
use crate::graphql::scalars::parse_id;

/// Subscriptions one WebSocket connection may hold at once.
pub const MAX_SUBSCRIPTIONS_PER_SOCKET: usize = 20;

/// An outbox row as GraphQL sees it. Shares the published row: a live event goes to
/// every subscriber of the tenant, so fields are resolved on demand instead of copied
/// per subscriber.
#[derive(Clone)]
pub struct Event(Arc<StoredEvent>);

/// Something that happened in the tenant (a row of the outbox).
#[Object]
impl Event {
    /// The event's position: pass it as `after` to resume right after it.
    async fn id(&self) -> ID {
        ID(self.0.position().to_string())
    }

    #[graphql(name = "type")]
    async fn event_type(&self) -> &str {
        &self.0.event_type
    }

    async fn occurred_at(&self) -> DateTime<Utc> {
        self.0.occurred_at
    }

    async fn subject_id(&self) -> ID {
        ID(self.0.subject_id.to_string())
    }

    async fn payload(&self) -> Json<&serde_json::Value> {
        Json(&self.0.payload)
    }
}

fn check_types(types: &Option<Vec<String>>) -> AppResult<()> {
    if types
        .as_ref()
        .is_some_and(|t| t.len() > 50 || t.iter().any(|s| s.len() > 100))
    {
        return Err(AppError::bad_input(&["types"], "at most 50 event types"));
    }
    Ok(())
}

#[derive(Default)]
pub struct EventsQuery;

#[Object]
impl EventsQuery {
    /// Published events in order, for partners that poll: resume with `after`.
    #[graphql(guard = "Access::Read")]
    async fn events(
        &self,
        ctx: &Context<'_>,
        after: Option<String>,
        first: Option<i32>,
        types: Option<Vec<String>>,
    ) -> AppResult<Connection<String, Event>> {
        let request = request_context(ctx)?;
        let first = first.unwrap_or(DEFAULT_PAGE_SIZE);
        if !(0..=MAX_PAGE_SIZE).contains(&first) {
            return Err(AppError::bad_input(
                &["first"],
                format!("first must be between 0 and {MAX_PAGE_SIZE}"),
            ));
        }
        check_types(&types)?;
        let from = after
            .as_deref()
            .map(|a| parse_position(a, &["after"]))
            .transpose()?
            .unwrap_or(0);
        let rows = request
            .db
            .query(|conn, scope| {
                let types = types.as_deref();
                async move {
                    outbox::events_after(conn, scope, from, None, i64::from(first) + 1, types).await
                }
                .scope_boxed()
            })
            .await?;
        let has_next = rows.len() > first as usize;
        let mut connection = Connection::new(from > 0, has_next);
        connection.edges = rows
            .into_iter()
            .take(first as usize)
            .map(|e| Edge::new(e.position().to_string(), Event(Arc::new(e))))
            .collect();
        Ok(connection)
    }
}

/// Releases a socket's subscription slot when the stream is dropped.
struct Slot(Arc<AtomicUsize>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The tenant's live events (after replaying everything after `after`, when given),
/// restricted by `keep`; ends after a SLOW_CONSUMER error when the subscriber lags. Taken
/// by the WebSocket transport's direct lane when the selection is plain `Event` fields,
/// otherwise executed by the schema.
async fn event_stream(
    ctx: &Context<'_>,
    after: Option<String>,
    keep: impl Fn(&StoredEvent) -> bool + Send + Sync + 'static,
) -> AppResult<BoxStream<'static, async_graphql::Result<Event>>> {
    let events = subscriber_events(ctx, after, keep).await?;
    if let (Some(lane), Some(selection)) = (ctx.data_opt::<DirectLane>(), PlainSelection::of(ctx)) {
        let cost = lane.cost();
        let pos = ctx.item.pos;
        lane.take(
            events
                .map(move |item| match item {
                    Ok(event) => Payload::Rendered(selection.render(&event, cost)),
                    Err(end) => {
                        let error = async_graphql::Error::from(end_error(end))
                            .into_server_error(pos)
                            .with_path(vec![PathSegment::Field(selection.root.clone())]);
                        let mut response = Response::from_errors(vec![error]);
                        RequestGuard::finish(&mut response, Some(cost), None, None);
                        Payload::Rendered(
                            serde_json::to_string(&response).expect("an error response serialises"),
                        )
                    }
                })
                .boxed(),
        );
        return Ok(futures_util::stream::empty().boxed());
    }
    Ok(events
        .map(|item| item.map(Event).map_err(|end| end_error(end).into()))
        .boxed())
}

fn end_error(end: SubscriptionEnd) -> AppError {
    match end {
        SubscriptionEnd::SlowConsumer => {
            AppError::RateLimited("slow consumer: too far behind, disconnected")
        }
    }
}

/// The subscriber's share of the tenant's events: holds one of the socket's subscription
/// slots while it lives, and ends after the first error.
async fn subscriber_events(
    ctx: &Context<'_>,
    after: Option<String>,
    keep: impl Fn(&StoredEvent) -> bool + Send + Sync + 'static,
) -> AppResult<impl Stream<Item = Result<Arc<StoredEvent>, SubscriptionEnd>> + Send + 'static> {
    let request = request_context(ctx)?;
    let hub = ctx
        .data_opt::<Arc<EventHub>>()
        .ok_or(AppError::Unavailable)?;
    let after = after
        .as_deref()
        .map(|a| parse_position(a, &["after"]))
        .transpose()?;
    if request.subscriptions.fetch_add(1, Ordering::Relaxed) >= MAX_SUBSCRIPTIONS_PER_SOCKET {
        request.subscriptions.fetch_sub(1, Ordering::Relaxed);
        return Err(AppError::RateLimited(
            "too many subscriptions on this connection",
        ));
    }
    let slot = Slot(request.subscriptions.clone());
    let stream = hub.subscribe(request.principal.tenant_id(), after).await?;
    Ok(stream
        .filter(move |item| ready(item.as_ref().map_or(true, |event| keep(event))))
        .scan((false, slot), |(ended, _slot), item| {
            if *ended {
                return ready(None);
            }
            *ended = item.is_err();
            ready(Some(item))
        }))
}

/// A selection of `Event` made only of its own fields, possibly aliased (no fragments,
/// directives or arguments), on the operation's only root field: what the direct lane
/// renders without the schema.
struct PlainSelection {
    /// The root field's response key.
    root: String,
    fields: Vec<(String, EventField)>,
}

#[derive(Clone, Copy)]
enum EventField {
    Id,
    Type,
    OccurredAt,
    SubjectId,
    Payload,
    Typename,
}

impl PlainSelection {
    fn of(ctx: &Context<'_>) -> Option<Self> {
        let root = ctx.item;
        let only_root = match ctx
            .query_env
            .operation
            .node
            .selection_set
            .node
            .items
            .as_slice()
        {
            [only] => matches!(&only.node, Selection::Field(field) if std::ptr::eq(field, root)),
            _ => false,
        };
        if !only_root || !root.node.directives.is_empty() {
            return None;
        }
        let mut fields: Vec<(String, EventField)> = Vec::new();
        for selection in &root.node.selection_set.node.items {
            let Selection::Field(field) = &selection.node else {
                return None;
            };
            let field = &field.node;
            if !field.directives.is_empty()
                || !field.arguments.is_empty()
                || !field.selection_set.node.items.is_empty()
            {
                return None;
            }
            let which = match field.name.node.as_str() {
                "id" => EventField::Id,
                "type" => EventField::Type,
                "occurredAt" => EventField::OccurredAt,
                "subjectId" => EventField::SubjectId,
                "payload" => EventField::Payload,
                "__typename" => EventField::Typename,
                _ => return None,
            };
            // Validation only lets a repeated response key name the same field.
            let key = field.response_key().node.to_string();
            if !fields.iter().any(|(k, _)| *k == key) {
                fields.push((key, which));
            }
        }
        Some(PlainSelection {
            root: root.node.response_key().node.to_string(),
            fields,
        })
    }

    /// The response the schema would give for `event`, as JSON.
    fn render(&self, event: &StoredEvent, cost: usize) -> String {
        fn json(out: &mut Vec<u8>, value: &(impl serde::Serialize + ?Sized)) {
            serde_json::to_writer(out, value).expect("strings and JSON values serialise");
        }
        let mut out = Vec::with_capacity(256);
        out.extend_from_slice(br#"{"data":{"#);
        json(&mut out, &self.root);
        out.extend_from_slice(b":{");
        for (i, (key, field)) in self.fields.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            json(&mut out, key);
            out.push(b':');
            match field {
                EventField::Id => json(&mut out, &event.position().to_string()),
                EventField::Type => json(&mut out, &event.event_type),
                EventField::OccurredAt => json(&mut out, &event.occurred_at.to_rfc3339()),
                EventField::SubjectId => json(&mut out, &event.subject_id.to_string()),
                EventField::Payload => json(&mut out, &event.payload),
                EventField::Typename => json(&mut out, "Event"),
            }
        }
        out.extend_from_slice(
            format!(r#"}}}},"extensions":{{"cost":{{"requestedQueryCost":{cost}}}}}}}"#).as_bytes(),
        );
        String::from_utf8(out).expect("serde_json writes UTF-8")
    }
}

/// The objects the kept events name, each read when its event arrives, in the
/// subscriber's tenant under row-level security (one that is gone by then, or was never
/// the tenant's, is skipped): what typed subscriptions yield.
async fn object_stream<T, R>(
    ctx: &Context<'_>,
    after: Option<String>,
    keep: impl Fn(&StoredEvent) -> bool + Send + Sync + 'static,
    read: R,
) -> AppResult<BoxStream<'static, async_graphql::Result<T>>>
where
    T: Send + 'static,
    R: for<'r> Fn(
            &'r mut diesel_async::AsyncPgConnection,
            crate::db::Tenant,
            Arc<StoredEvent>,
        ) -> scoped_futures::ScopedBoxFuture<'static, 'r, AppResult<Option<T>>>
        + Send
        + Sync
        + Clone
        + 'static,
{
    let db = request_context(ctx)?.db.clone();
    let events = subscriber_events(ctx, after, keep).await?;
    Ok(events
        .then(move |item| {
            let (db, read) = (db.clone(), read.clone());
            async move {
                let event = item.map_err(end_error)?;
                let object = db
                    .query(move |conn, scope| read(conn, scope, event))
                    .await?;
                Ok::<_, async_graphql::Error>(object)
            }
        })
        .filter_map(|item| ready(item.transpose()))
        .boxed())
}

fn of_type(types: Option<Vec<String>>) -> impl Fn(&StoredEvent) -> bool + Send + Sync + 'static {
    move |e| {
        types
            .as_ref()
            .is_none_or(|t| t.iter().any(|x| x == &e.event_type))
    }
}

#[derive(Default)]
pub struct Subscription;

#[Subscription]
impl Subscription {
    /// Every event of the tenant, optionally only some types. With `after`, first replays
    /// every later event from the outbox, then continues live (no gap, no duplicate).
    #[graphql(guard = "Access::Subscribe")]
    async fn events(
        &self,
        ctx: &Context<'_>,
        types: Option<Vec<String>>,
        after: Option<String>,
    ) -> Result<impl Stream<Item = async_graphql::Result<Event>>, AppError> {
        check_types(&types)?;
        event_stream(ctx, after, of_type(types)).await
    }

    /// Each lead as it stands after it was tagged. With `after` (an event id, as
    /// `events` gives), the tags since then first.
    #[graphql(guard = "Access::Subscribe")]
    async fn lead_tagged(
        &self,
        ctx: &Context<'_>,
        after: Option<String>,
    ) -> Result<impl Stream<Item = async_graphql::Result<Lead>>, AppError> {
        let keep = |e: &StoredEvent| e.event_type == "lead.tagged";
        object_stream(ctx, after, keep, |conn, scope, event| {
            async move {
                let leads =
                    crate::domain::leads::ops::by_ids(conn, scope, &[event.subject_id]).await?;
                Ok(leads.into_iter().next().map(Lead::from))
            }
            .scope_boxed()
        })
        .await
    }

    /// Each redemption as it stands after it was made or changed (fulfilled, cancelled,
    /// refunded). With `after`, the changes since then first.
    #[graphql(guard = "Access::Subscribe")]
    async fn redemption_changed(
        &self,
        ctx: &Context<'_>,
        after: Option<String>,
    ) -> Result<impl Stream<Item = async_graphql::Result<Redemption>>, AppError> {
        let keep = |e: &StoredEvent| e.event_type == "redemption.changed";
        object_stream(ctx, after, keep, |conn, scope, event| {
            async move {
                let found =
                    crate::domain::loyalty::ops::redemption(conn, scope, event.subject_id).await?;
                Ok(found.map(Redemption::from))
            }
            .scope_boxed()
        })
        .await
    }

    /// Each enrollment as it stands after it changed (enrolled, upgraded, renewed,
    /// cancelled, expired). With `after`, the changes since then first.
    #[graphql(guard = "Access::Subscribe")]
    async fn enrollment_changed(
        &self,
        ctx: &Context<'_>,
        after: Option<String>,
    ) -> Result<impl Stream<Item = async_graphql::Result<Enrollment>>, AppError> {
        let keep = |e: &StoredEvent| e.event_type == "enrollment.changed";
        object_stream(ctx, after, keep, |conn, scope, event| {
            async move {
                let found =
                    crate::domain::loyalty::ops::enrollment(conn, scope, event.subject_id).await?;
                Ok(found.map(Enrollment::from))
            }
            .scope_boxed()
        })
        .await
    }

    /// One customer's activities as they are recorded. With `after`, those since then
    /// first.
    #[graphql(guard = "Access::Subscribe")]
    async fn customer_activity(
        &self,
        ctx: &Context<'_>,
        customer_id: ID,
        after: Option<String>,
    ) -> Result<impl Stream<Item = async_graphql::Result<Activity>>, AppError> {
        let customer: Uuid = parse_id(&customer_id, &["customerId"])?;
        let keep = move |e: &StoredEvent| {
            e.subject_id == customer && e.event_type == "customer.activity_recorded"
        };
        object_stream(ctx, after, keep, |conn, scope, event| {
            async move {
                let Some(id) = event.payload["activityId"]
                    .as_str()
                    .and_then(|id| id.parse().ok())
                else {
                    return Ok(None);
                };
                let found = crate::domain::customers::ops::activity(conn, scope, id).await?;
                Ok(found.map(Activity::from))
            }
            .scope_boxed()
        })
        .await
    }

    /// A campaign's fresh metrics each time a delivery event or launch changes them (with
    /// `after`, once per change since then first).
    #[graphql(guard = "Access::Subscribe")]
    async fn campaign_metrics_changed(
        &self,
        ctx: &Context<'_>,
        campaign_id: ID,
        after: Option<String>,
    ) -> Result<impl Stream<Item = async_graphql::Result<CampaignMetrics>>, AppError> {
        let campaign: Uuid = parse_id(&campaign_id, &["campaignId"])?;
        let keep = move |e: &StoredEvent| {
            e.subject_id == campaign && e.event_type.starts_with("campaign.")
        };
        object_stream(ctx, after, keep, move |conn, scope, _event| {
            async move {
                let counters =
                    crate::domain::campaigns::ops::counters_of(conn, scope, &[campaign]).await?;
                let counts = counters.first().map(FunnelCounts::from).unwrap_or_default();
                Ok(Some(CampaignMetrics::from(counts)))
            }
            .scope_boxed()
        })
        .await
    }
}
