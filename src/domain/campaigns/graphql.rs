use std::collections::HashMap;

use async_graphql::connection::Connection;
use async_graphql::dataloader::Loader;
use async_graphql::{ComplexObject, Context, InputObject, Json, Object, SimpleObject, ID};
use chrono::{DateTime, Utc};
use scoped_futures::ScopedFutureExt;
use uuid::Uuid;

use super::analytics::Recipients;
use super::metrics::{CampaignMetrics, FunnelCounts};
use super::model::{self, CampaignChannel, CampaignStatus, ExecutionStatus, RecipientStatus};
use super::ops;
use crate::auth::Access;
use crate::db::children::ChildRelation;
use crate::domain::write_payload;
use crate::domain::{write_and_load, OpResult};
use crate::error::{AppError, AppResult};
use crate::graphql::aggregate::Aggregate;
use crate::graphql::connection::IntoConnection;
use crate::graphql::connection::{Cursor, PageRequest};
use crate::graphql::context::{request_context, RequestContext};
use crate::graphql::loaders::{load_child_pages, ChildPage, TenantLoader};
use crate::graphql::scalars::{parse_id, parse_required_id};

#[derive(SimpleObject, Clone)]
pub struct CampaignSummary {
    pub id: ID,
    pub name: String,
    pub status: CampaignStatus,
    pub channel: CampaignChannel,
    pub started_at: Option<DateTime<Utc>>,
}

impl From<model::Campaign> for CampaignSummary {
    fn from(c: model::Campaign) -> Self {
        CampaignSummary {
            id: ID(c.id.to_string()),
            name: c.name,
            status: c.status,
            channel: c.channel,
            started_at: c.started_at,
        }
    }
}

/// A customer's place in one campaign: the delivery funnel of one recipient row.
#[derive(SimpleObject, Clone)]
#[graphql(complex)]
pub struct CampaignRecipient {
    pub id: ID,
    pub customer_id: Option<ID>,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub channel: CampaignChannel,
    pub status: RecipientStatus,
    pub sent_at: Option<DateTime<Utc>>,
    pub delivered_at: Option<DateTime<Utc>>,
    pub opened_at: Option<DateTime<Utc>>,
    pub clicked_at: Option<DateTime<Utc>>,
    pub failed_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    #[graphql(skip)]
    pub campaign_id: Uuid,
}

impl From<model::Recipient> for CampaignRecipient {
    fn from(r: model::Recipient) -> Self {
        CampaignRecipient {
            id: ID(r.id.to_string()),
            customer_id: r.customer_id.map(|c| ID(c.to_string())),
            email: r.email,
            phone: r.phone,
            channel: r.channel,
            status: r.status,
            sent_at: r.sent_at,
            delivered_at: r.delivered_at,
            opened_at: r.opened_at,
            clicked_at: r.clicked_at,
            failed_at: r.failed_at,
            created_at: r.created_at,
            campaign_id: r.campaign_id,
        }
    }
}

#[ComplexObject]
impl CampaignRecipient {
    async fn campaign(&self, ctx: &Context<'_>) -> AppResult<Option<CampaignSummary>> {
        let request = request_context(ctx)?;
        Ok(request
            .load_one(CampaignKey(self.campaign_id))
            .await?
            .map(CampaignSummary::from))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CampaignKey(pub Uuid);

/// What `campaign(id:)` reads with the campaign: its counters, when `metrics` is asked for
/// (filed for the `metrics` resolver, which then runs no statement).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct CampaignRead {
    metrics: bool,
}

/// A campaign to read by id, and where its request files the counters.
type CampaignById = (
    Uuid,
    Option<std::sync::Arc<crate::db::prefetch::Prefetched>>,
);

/// Reads the campaigns of `items` (with their counters when `read` says), files the
/// counters for each item's request while the connection is held, and answers each item
/// in order.
fn campaigns_together<'r>(
    conn: &'r mut diesel_async::AsyncPgConnection,
    scope: crate::db::Tenant,
    read: &'r CampaignRead,
    items: Vec<CampaignById>,
) -> futures_util::future::BoxFuture<'r, diesel::QueryResult<Vec<Option<model::Campaign>>>> {
    use futures_util::FutureExt;
    async move {
        let ids: Vec<Uuid> = items.iter().map(|(id, _)| *id).collect();
        let rows = match read.metrics {
            true => ops::campaigns_with_counters(conn, scope, &ids).await?,
            false => ops::campaigns_by_ids(conn, scope, &ids)
                .await?
                .into_iter()
                .map(|campaign| (campaign, None))
                .collect(),
        };
        let rows: HashMap<Uuid, (model::Campaign, Option<model::Counters>)> =
            rows.into_iter().map(|row| (row.0.id, row)).collect();
        let answers = items.into_iter().map(|(id, filed)| {
            let (campaign, counters) = rows.get(&id)?.clone();
            if let (true, Some(filed)) = (read.metrics, filed) {
                filed.put([(CountersKey(id), counters)]);
            }
            Some(campaign)
        });
        Ok(answers.collect())
    }
    .boxed()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CampaignHistoryOf;

crate::load_by_ids!(CampaignKey => model::Campaign, ops::campaigns_by_ids, |row: &model::Campaign| row.id);

pub(crate) const RECIPIENTS_OF_CUSTOMER: ChildRelation = ChildRelation {
    table: "campaign_recipients",
    parent_column: "customer_id",
    sort_column: "created_at",
    kind_column: None,
};

impl Loader<ChildPage<CampaignHistoryOf>> for TenantLoader {
    type Value = Vec<model::Recipient>;
    type Error = AppError;

    async fn load(
        &self,
        keys: &[ChildPage<CampaignHistoryOf>],
    ) -> Result<HashMap<ChildPage<CampaignHistoryOf>, Self::Value>, AppError> {
        load_child_pages(
            self,
            keys,
            &RECIPIENTS_OF_CUSTOMER,
            |_| None,
            |r: &model::Recipient| r.customer_id.unwrap_or_default(),
        )
        .await
    }
}

// ---- campaigns -------------------------------------------------------------------------

/// A CRM campaign (seed 003) with its ReactFlow workflow and delivery metrics.
#[derive(SimpleObject, Clone)]
#[graphql(complex)]
pub struct Campaign {
    pub id: ID,
    pub name: String,
    pub description: Option<String>,
    pub status: CampaignStatus,
    pub channel: CampaignChannel,
    /// ReactFlow nodes and edges.
    pub workflow: Json<serde_json::Value>,
    pub target_segment: Option<String>,
    pub target_group_id: Option<ID>,
    pub scheduled_at: Option<DateTime<Utc>>,
    pub started_at: Option<DateTime<Utc>>,
    pub completed_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    #[graphql(skip)]
    pub campaign_id: Uuid,
}

impl From<model::Campaign> for Campaign {
    fn from(c: model::Campaign) -> Self {
        Campaign {
            id: ID(c.id.to_string()),
            name: c.name,
            description: c.description,
            status: c.status,
            channel: c.channel,
            workflow: Json(c.workflow_data),
            target_segment: c.target_segment,
            target_group_id: c.target_group_id.map(|g| ID(g.to_string())),
            scheduled_at: c.scheduled_at,
            started_at: c.started_at,
            completed_at: c.completed_at,
            created_at: c.created_at,
            campaign_id: c.id,
        }
    }
}

#[derive(SimpleObject, Clone)]
pub struct CampaignExecution {
    pub id: ID,
    pub execution_type: String,
    pub status: ExecutionStatus,
    pub execution_data: Json<serde_json::Value>,
    /// The campaign's funnel when the execution completed (every recipient's workflow
    /// ended); `{}` before.
    pub metrics: Json<serde_json::Value>,
    pub started_at: DateTime<Utc>,
    pub completed_at: Option<DateTime<Utc>>,
}

impl From<model::Execution> for CampaignExecution {
    fn from(e: model::Execution) -> Self {
        CampaignExecution {
            id: ID(e.id.to_string()),
            execution_type: e.execution_type,
            status: e.status,
            execution_data: Json(e.execution_data),
            metrics: Json(e.metrics),
            started_at: e.started_at,
            completed_at: e.completed_at,
        }
    }
}

#[derive(InputObject, Default)]
pub struct RecipientFilter {
    pub status: Option<RecipientStatus>,
    pub channel: Option<CampaignChannel>,
}

fn recipient_filter(filter: Option<RecipientFilter>) -> ops::RecipientFilter {
    let filter = filter.unwrap_or_default();
    ops::RecipientFilter {
        status: filter.status,
        channel: filter.channel,
    }
}

#[ComplexObject]
impl Campaign {
    /// Exact counts and rates, read from counters (no recipient scan).
    async fn metrics(&self, ctx: &Context<'_>) -> AppResult<CampaignMetrics> {
        let request = request_context(ctx)?;
        let counters = request.load_one(CountersKey(self.campaign_id)).await?;
        Ok(counters
            .map(|c| FunnelCounts::from(&c))
            .unwrap_or_default()
            .into())
    }
    async fn executions(&self, ctx: &Context<'_>) -> AppResult<Vec<CampaignExecution>> {
        let request = request_context(ctx)?;
        let rows = request
            .load_one(ExecutionsOf(self.campaign_id))
            .await?
            .unwrap_or_default();
        Ok(crate::graphql::connection::bounded(rows)
            .into_iter()
            .map(CampaignExecution::from)
            .collect())
    }
    /// Counts, funnel rates, groups and time series of the recipients `filter` selects
    /// (the filter of `recipients`).
    async fn recipients_aggregate(
        &self,
        ctx: &Context<'_>,
        filter: Option<RecipientFilter>,
    ) -> Aggregate<Recipients> {
        let filter = recipient_filter(filter);
        Aggregate::new(ctx, (self.campaign_id, filter))
    }
    /// Recipients in the order they were added.
    async fn recipients(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        filter: Option<RecipientFilter>,
    ) -> AppResult<Connection<Cursor<DateTime<Utc>>, CampaignRecipient>> {
        let request = request_context(ctx)?;
        let page = PageRequest::new(first, after)?;
        let filter = recipient_filter(filter);
        let campaign = self.campaign_id;
        let rows = request
            .db
            .query(|conn, scope| {
                let (filter, page) = (&filter, &page);
                async move { ops::recipients(conn, scope, campaign, filter, page).await }
                    .scope_boxed()
            })
            .await?;
        Ok(page.into_connection(
            rows,
            |r| Cursor {
                key: r.created_at,
                id: r.id,
            },
            CampaignRecipient::from,
        ))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CountersKey(pub Uuid);
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ExecutionsOf(pub Uuid);

crate::load_by_ids!(CountersKey => model::Counters, ops::counters_of, |row: &model::Counters| row.campaign_id);

crate::load_groups!(ExecutionsOf => model::Execution, ops::executions_of, |row: &model::Execution| Some(row.campaign_id));

/// One row of the seed's `campaign_metrics` view.
#[derive(SimpleObject)]
pub struct CampaignMetricsRow {
    pub campaign: Campaign,
    pub metrics: CampaignMetrics,
}

// ---- queries ---------------------------------------------------------------------------

#[derive(InputObject, Default)]
pub struct CampaignFilter {
    pub status: Option<CampaignStatus>,
    pub scheduled_from: Option<DateTime<Utc>>,
    pub scheduled_to: Option<DateTime<Utc>>,
    /// Case-insensitive substring of the name or description.
    pub search: Option<String>,
}

fn campaign_filter(filter: Option<CampaignFilter>) -> AppResult<ops::CampaignFilter> {
    let f = filter.unwrap_or_default();
    crate::graphql::connection::check_search(&f.search)?;
    Ok(ops::CampaignFilter {
        status: f.status,
        scheduled_from: f.scheduled_from,
        scheduled_to: f.scheduled_to,
        search: f.search,
    })
}

async fn campaign_page(
    request: &RequestContext,
    page: PageRequest<DateTime<Utc>>,
    filter: ops::CampaignFilter,
) -> AppResult<(PageRequest<DateTime<Utc>>, Vec<model::Campaign>)> {
    let rows = request
        .db
        .query(|conn, scope| {
            let (filter, page) = (&filter, &page);
            async move { ops::list(conn, scope, filter, page).await }.scope_boxed()
        })
        .await?;
    Ok((page, rows))
}

#[derive(Default)]
pub struct CampaignsQuery;

/// Where one recipient stands in its campaign's workflow, and the path it took.
#[derive(SimpleObject)]
pub struct CampaignRun {
    pub recipient_id: ID,
    pub campaign_id: ID,
    pub execution_id: ID,
    /// The node it is at (waiting) or ended at.
    pub node_id: String,
    /// waiting or ended.
    pub status: String,
    /// When it moves on (waiting).
    pub due_at: Option<DateTime<Utc>>,
    /// Each step: `{ node, at, sent | condition | waitUntil | ended }`.
    pub path: Json<serde_json::Value>,
}

#[Object]
impl CampaignsQuery {
    /// One recipient's path through its campaign's workflow (support).
    #[graphql(guard = "Access::Read")]
    async fn campaign_run(
        &self,
        ctx: &Context<'_>,
        recipient_id: ID,
    ) -> AppResult<Option<CampaignRun>> {
        let recipient = parse_id(&recipient_id, &["recipientId"])?;
        let run = request_context(ctx)?
            .db
            .query(move |conn, scope| super::workflow::run_of(conn, scope, recipient).scope_boxed())
            .await?;
        Ok(run.map(|r| CampaignRun {
            recipient_id: ID(r.recipient_id.to_string()),
            campaign_id: ID(r.campaign_id.to_string()),
            execution_id: ID(r.execution_id.to_string()),
            node_id: r.node_id,
            status: r.status,
            due_at: r.due_at,
            path: Json(r.path),
        }))
    }

    /// One campaign. Read with its counters when `metrics` is asked for, in one statement
    /// shared by the queries of the caller's read group that arrive together.
    #[graphql(guard = "Access::Read")]
    async fn campaign(&self, ctx: &Context<'_>, id: ID) -> AppResult<Option<Campaign>> {
        let request = request_context(ctx)?;
        let id = parse_id(&id, &["id"])?;
        let read = CampaignRead {
            metrics: ctx.look_ahead().field("metrics").exists(),
        };
        let filed = request.db.prefetched().cloned();
        let found = request
            .db
            .query_together(read, (id, filed), campaigns_together);
        Ok(found.await?.map(Campaign::from))
    }

    /// Campaigns, newest first.
    #[graphql(guard = "Access::Read")]
    async fn campaigns(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
        filter: Option<CampaignFilter>,
    ) -> AppResult<Connection<Cursor<DateTime<Utc>>, Campaign>> {
        let request = request_context(ctx)?;
        let page = PageRequest::either(first, after, last, before)?;
        let filter = campaign_filter(filter)?;
        let list = |scope| Ok(ops::list_query(scope, &filter, &page));
        let rows = super::prefetch::campaigns_page(ctx, request, (list, page.limit())).await?;
        Ok(page.into_connection(
            rows,
            |c| Cursor {
                key: c.created_at,
                id: c.id,
            },
            Campaign::from,
        ))
    }

    /// The seed's `campaign_metrics` view: every campaign with its metrics.
    #[graphql(guard = "Access::Read")]
    async fn campaign_metrics(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
        filter: Option<CampaignFilter>,
    ) -> AppResult<Connection<Cursor<DateTime<Utc>>, CampaignMetricsRow>> {
        let request = request_context(ctx)?;
        let (page, rows) = campaign_page(
            request,
            PageRequest::either(first, after, last, before)?,
            campaign_filter(filter)?,
        )
        .await?;
        let ids: Vec<Uuid> = rows.iter().map(|c| c.id).collect();
        let counters = request
            .loader
            .load_many(ids.into_iter().map(CountersKey))
            .await?;
        Ok(page.into_connection(
            rows,
            |c| Cursor {
                key: c.created_at,
                id: c.id,
            },
            |c| CampaignMetricsRow {
                metrics: counters
                    .get(&CountersKey(c.id))
                    .map(FunnelCounts::from)
                    .unwrap_or_default()
                    .into(),
                campaign: Campaign::from(c),
            },
        ))
    }

    /// The seed's `active_campaigns` view.
    #[graphql(guard = "Access::Read")]
    async fn active_campaigns(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
    ) -> AppResult<Connection<Cursor<DateTime<Utc>>, Campaign>> {
        let request = request_context(ctx)?;
        let filter = ops::CampaignFilter {
            status: Some(CampaignStatus::Active),
            ..Default::default()
        };
        let (page, rows) = campaign_page(
            request,
            PageRequest::either(first, after, last, before)?,
            filter,
        )
        .await?;
        Ok(page.into_connection(
            rows,
            |c| Cursor {
                key: c.created_at,
                id: c.id,
            },
            Campaign::from,
        ))
    }
}

// ---- mutations -------------------------------------------------------------------------

#[derive(InputObject)]
pub struct CampaignInput {
    /// Required by updateCampaign; ignored by createCampaign.
    pub id: Option<ID>,
    pub name: Option<String>,
    pub description: Option<String>,
    pub channel: Option<CampaignChannel>,
    /// ReactFlow `{nodes, edges}`.
    pub workflow: Option<Json<serde_json::Value>>,
    pub target_group_id: Option<ID>,
    pub target_segment: Option<String>,
    pub scheduled_at: Option<DateTime<Utc>>,
}

#[derive(InputObject)]
pub struct CampaignIdInput {
    pub id: ID,
}

#[derive(InputObject)]
pub struct RecordDeliveryEventInput {
    pub recipient_id: ID,
    pub status: RecipientStatus,
    /// When the provider saw it (default: now).
    pub occurred_at: Option<DateTime<Utc>>,
    pub error: Option<String>,
}

crate::payload!(CampaignPayload { campaign: Campaign } from Option<model::Campaign>);

crate::payload!(RecordDeliveryEventPayload { recipient: CampaignRecipient } from model::Recipient);

fn campaign_fields(input: &CampaignInput) -> AppResult<ops::CampaignFields> {
    Ok(ops::CampaignFields {
        name: input.name.clone(),
        description: input.description.clone(),
        channel: input.channel,
        workflow: input.workflow.as_ref().map(|w| w.0.clone()),
        target_group_id: input
            .target_group_id
            .as_ref()
            .map(|g| parse_id(g, &["input", "targetGroupId"]))
            .transpose()?,
        target_segment: input.target_segment.clone(),
        scheduled_at: input.scheduled_at,
    })
}

async fn campaign_payload<'a, F>(ctx: &Context<'_>, work: F) -> AppResult<CampaignPayload>
where
    F: crate::db::tenant::Work<'a, OpResult<Uuid>>,
{
    write_and_load(ctx, work, |conn, scope, id| {
        async move { Ok(ops::campaigns_by_ids(conn, scope, &[id]).await?.pop()) }.scope_boxed()
    })
    .await
}

#[derive(Default)]
pub struct CampaignsMutation;

#[Object]
impl CampaignsMutation {
    #[graphql(guard = "Access::Admin")]
    async fn create_campaign(
        &self,
        ctx: &Context<'_>,
        input: CampaignInput,
    ) -> AppResult<CampaignPayload> {
        let fields = campaign_fields(&input)?;
        campaign_payload(ctx, |conn, scope| {
            async move { ops::create(conn, scope, fields).await }.scope_boxed()
        })
        .await
    }

    #[graphql(guard = "Access::Admin")]
    async fn update_campaign(
        &self,
        ctx: &Context<'_>,
        input: CampaignInput,
    ) -> AppResult<CampaignPayload> {
        let id = parse_required_id(&input.id, &["input", "id"])?;
        let fields = campaign_fields(&input)?;
        campaign_payload(ctx, |conn, scope| {
            async move { ops::update(conn, scope, id, fields).await }.scope_boxed()
        })
        .await
    }

    /// `draft → active`: creates the execution and its recipients.
    #[graphql(guard = "Access::Admin")]
    async fn launch_campaign(
        &self,
        ctx: &Context<'_>,
        input: CampaignIdInput,
    ) -> AppResult<CampaignPayload> {
        let id = parse_id(&input.id, &["input", "id"])?;
        campaign_payload(ctx, |conn, scope| {
            async move { ops::launch(conn, scope, id).await }.scope_boxed()
        })
        .await
    }

    #[graphql(guard = "Access::Admin")]
    async fn pause_campaign(
        &self,
        ctx: &Context<'_>,
        input: CampaignIdInput,
    ) -> AppResult<CampaignPayload> {
        self.change(ctx, input, ops::StatusChange::Pause).await
    }

    #[graphql(guard = "Access::Admin")]
    async fn resume_campaign(
        &self,
        ctx: &Context<'_>,
        input: CampaignIdInput,
    ) -> AppResult<CampaignPayload> {
        self.change(ctx, input, ops::StatusChange::Resume).await
    }

    #[graphql(guard = "Access::Admin")]
    async fn complete_campaign(
        &self,
        ctx: &Context<'_>,
        input: CampaignIdInput,
    ) -> AppResult<CampaignPayload> {
        self.change(ctx, input, ops::StatusChange::Complete).await
    }

    /// A provider's delivery report: moves the recipient forward, never backwards.
    #[graphql(guard = "Access::Ingest")]
    async fn record_delivery_event(
        &self,
        ctx: &Context<'_>,
        input: RecordDeliveryEventInput,
    ) -> AppResult<RecordDeliveryEventPayload> {
        let id = parse_id(&input.recipient_id, &["input", "recipientId"])?;
        let at = input.occurred_at.unwrap_or_else(Utc::now);
        let (status, error) = (input.status, input.error);
        write_payload(ctx, |conn, scope| {
            async move {
                ops::record_delivery_event(conn, scope, id, status, at, error.as_deref()).await
            }
            .scope_boxed()
        })
        .await
    }
}

impl CampaignsMutation {
    async fn change(
        &self,
        ctx: &Context<'_>,
        input: CampaignIdInput,
        change: ops::StatusChange,
    ) -> AppResult<CampaignPayload> {
        let id = parse_id(&input.id, &["input", "id"])?;
        campaign_payload(ctx, |conn, scope| {
            async move { ops::change_status(conn, scope, id, change).await }.scope_boxed()
        })
        .await
    }
}
