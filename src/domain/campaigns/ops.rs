//! Campaign rules (seed 003): status `draft → active ⇄ paused → completed`; the workflow
//! is a ReactFlow graph (nodes with ids, edges between existing nodes); launching creates
//! an execution and its recipients (skipping customers who opted out of the channel);
//! delivery events move a recipient forward only, and the campaign's counters move with
//! it in the same transaction, so metrics are exact and never need a recipient scan.

use chrono::{DateTime, Utc};
use diesel::dsl::{AsSelect, SqlTypeOf};
use diesel::pg::Pg;
use diesel::prelude::*;
use diesel::sql_types::{Text, Uuid as SqlUuid};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use serde_json::json;
use uuid::Uuid;

use super::model::*;
use crate::db::filter::FilterSome;
use crate::db::page::PageRequest;
use crate::db::schema::{
    campaign_delivery_counters, campaign_executions, campaign_recipients, campaigns,
    recipient_rollups, target_group_mappings,
};
use crate::db::sql::contains_pattern;
use crate::db::Tenant;
use crate::domain::{events, user_error, OpResult, UserError, UserErrorCode};
use crate::error::AppResult;

// ---- reads ------------------------------------------------------------------------------

pub async fn campaigns_by_ids(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
    ids: &[Uuid],
) -> QueryResult<Vec<Campaign>> {
    campaigns::table
        .filter(campaigns::tenant_id.eq(scope.id()))
        .filter(campaigns::id.eq_any(ids))
        .select(Campaign::as_select())
        .load(conn)
        .await
}

#[derive(Debug, Clone, Default)]
pub struct CampaignFilter {
    pub status: Option<CampaignStatus>,
    pub scheduled_from: Option<DateTime<Utc>>,
    pub scheduled_to: Option<DateTime<Utc>>,
    pub search: Option<String>,
}

/// Campaigns, newest first.
pub async fn list(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
    filter: &CampaignFilter,
    page: &PageRequest<DateTime<Utc>>,
) -> AppResult<Vec<Campaign>> {
    let query = list_query(scope, filter, page);
    Ok(query.limit(page.limit()).load(conn).await?)
}

/// A page of campaigns as a query: the rows of [`list`], in its order (its limit left to
/// the caller).
pub type ListQuery = campaigns::BoxedQuery<'static, Pg, SqlTypeOf<AsSelect<Campaign, Pg>>>;

/// The statement [`list`] runs, for a statement that reads around it.
pub fn list_query(
    scope: Tenant,
    filter: &CampaignFilter,
    page: &PageRequest<DateTime<Utc>>,
) -> ListQuery {
    use campaigns as c;
    let query = c::table
        .filter(c::tenant_id.eq(scope.id()))
        .select(Campaign::as_select())
        .into_boxed()
        .filter_some(filter.status, |v| c::status.eq(v))
        .filter_some(filter.scheduled_from, |v| c::scheduled_at.ge(v))
        .filter_some(filter.scheduled_to, |v| c::scheduled_at.lt(v))
        .filter_some(filter.search.as_deref().map(contains_pattern), |p| {
            c::name.ilike(p.clone()).or(c::description.ilike(p))
        });
    crate::keyset!(query, page, c::created_at, c::id, desc)
}

/// The campaigns `ids` with their delivery counters (`None`: none recorded yet), in one
/// statement.
pub async fn campaigns_with_counters(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
    ids: &[Uuid],
) -> QueryResult<Vec<(Campaign, Option<Counters>)>> {
    campaigns::table
        .left_join(
            campaign_delivery_counters::table.on(campaign_delivery_counters::tenant_id
                .eq(campaigns::tenant_id)
                .and(campaign_delivery_counters::campaign_id.eq(campaigns::id))),
        )
        .filter(campaigns::tenant_id.eq(scope.id()))
        .filter(campaigns::id.eq_any(ids))
        .select((Campaign::as_select(), Option::<Counters>::as_select()))
        .load(conn)
        .await
}

pub async fn counters_of(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
    ids: &[Uuid],
) -> QueryResult<Vec<Counters>> {
    campaign_delivery_counters::table
        .filter(campaign_delivery_counters::tenant_id.eq(scope.id()))
        .filter(campaign_delivery_counters::campaign_id.eq_any(ids))
        .select(Counters::as_select())
        .load(conn)
        .await
}

pub async fn executions_of(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
    ids: &[Uuid],
) -> QueryResult<Vec<Execution>> {
    campaign_executions::table
        .filter(campaign_executions::tenant_id.eq(scope.id()))
        .filter(campaign_executions::campaign_id.eq_any(ids))
        .select(Execution::as_select())
        .order((campaign_executions::started_at, campaign_executions::id))
        .load(conn)
        .await
}

#[derive(Debug, Clone, Default)]
pub struct RecipientFilter {
    pub status: Option<RecipientStatus>,
    pub channel: Option<CampaignChannel>,
}

/// The recipients of `campaign` that `filter` selects, every column: the rows of the
/// list and of its aggregates.
pub fn recipients_filtered(
    scope: Tenant,
    campaign: Uuid,
    filter: &RecipientFilter,
) -> campaign_recipients::BoxedQuery<'static, Pg> {
    use campaign_recipients as r;
    r::table
        .filter(r::tenant_id.eq(scope.id()))
        .filter(r::campaign_id.eq(campaign))
        .into_boxed()
        .filter_some(filter.status, |v| r::status.eq(v))
        .filter_some(filter.channel, |v| r::channel.eq(v))
}

/// The recipient rollup rows of `campaign` under `filter` (the rollup keeps status and
/// channel).
pub fn recipient_rollup_rows(
    scope: Tenant,
    campaign: Uuid,
    filter: &RecipientFilter,
) -> recipient_rollups::BoxedQuery<'static, Pg> {
    use recipient_rollups as r;
    r::table
        .filter(r::tenant_id.eq(scope.id()))
        .filter(r::campaign_id.eq(campaign))
        .into_boxed()
        .filter_some(filter.status, |v| r::status.eq(v))
        .filter_some(filter.channel, |v| r::channel.eq(v))
}

/// One campaign's recipients in creation order.
pub async fn recipients(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
    campaign: Uuid,
    filter: &RecipientFilter,
    page: &PageRequest<DateTime<Utc>>,
) -> AppResult<Vec<Recipient>> {
    use campaign_recipients as r;
    let mut query = recipients_filtered(scope, campaign, filter)
        .select(Recipient::as_select())
        .limit(page.limit());
    query = crate::keyset!(query, page, r::created_at, r::id, asc);
    Ok(query.load(conn).await?)
}

// ---- workflow ---------------------------------------------------------------------------

/// A ReactFlow graph: `{"nodes": [{"id": …}, …], "edges": [{"source": …, "target": …}, …]}`
/// with unique, non-empty node ids and edges between existing nodes.
pub fn validate_workflow(workflow: &serde_json::Value) -> Result<(), UserError> {
    let invalid = |path: &[&str], message: &str| {
        let mut field = vec!["input", "workflow"];
        field.extend_from_slice(path);
        UserError::new(UserErrorCode::Invalid, &field, message)
    };
    let nodes = workflow
        .get("nodes")
        .and_then(|n| n.as_array())
        .ok_or_else(|| invalid(&["nodes"], "nodes must be a list"))?;
    let edges = workflow
        .get("edges")
        .and_then(|e| e.as_array())
        .ok_or_else(|| invalid(&["edges"], "edges must be a list"))?;
    if nodes.len() > 500 || edges.len() > 2000 {
        return Err(invalid(&[], "at most 500 nodes and 2000 edges"));
    }
    let mut ids = std::collections::HashSet::new();
    for (i, node) in nodes.iter().enumerate() {
        let index = i.to_string();
        let id = node
            .get("id")
            .and_then(|v| v.as_str())
            .filter(|s| !s.is_empty() && s.len() <= 200);
        let Some(id) = id else {
            return Err(invalid(
                &["nodes", &index, "id"],
                "every node needs a non-empty id",
            ));
        };
        if !ids.insert(id) {
            return Err(invalid(&["nodes", &index, "id"], "node ids must be unique"));
        }
    }
    for (i, edge) in edges.iter().enumerate() {
        let index = i.to_string();
        for end in ["source", "target"] {
            match edge.get(end).and_then(|v| v.as_str()) {
                Some(node) if ids.contains(node) => {}
                Some(_) => {
                    return Err(invalid(
                        &["edges", &index, end],
                        "the edge points to a node that does not exist",
                    ))
                }
                None => {
                    return Err(invalid(
                        &["edges", &index, end],
                        "every edge needs a source and a target",
                    ))
                }
            }
        }
    }
    super::workflow::Graph::parse(workflow).map(|_| ())
}

// ---- campaign writes ---------------------------------------------------------------------

#[derive(Debug, Clone, Default)]
pub struct CampaignFields {
    pub name: Option<String>,
    pub description: Option<String>,
    pub channel: Option<CampaignChannel>,
    pub workflow: Option<serde_json::Value>,
    pub target_group_id: Option<Uuid>,
    pub target_segment: Option<String>,
    pub scheduled_at: Option<DateTime<Utc>>,
}

async fn check_fields(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
    fields: &CampaignFields,
) -> OpResult<()> {
    if let Some(name) = &fields.name {
        if name.trim().is_empty() || name.chars().count() > 200 || name.contains('\0') {
            return Err(user_error(
                UserErrorCode::Invalid,
                &["input", "name"],
                "name must be 1-200 characters",
            ));
        }
    }
    if fields
        .description
        .as_ref()
        .is_some_and(|d| d.chars().count() > 5000 || d.contains('\0'))
    {
        return Err(user_error(
            UserErrorCode::Invalid,
            &["input", "description"],
            "description must be at most 5000 characters",
        ));
    }
    if let Some(workflow) = &fields.workflow {
        validate_workflow(workflow)?;
    }
    if let Some(group) = fields.target_group_id {
        let found: i64 = target_group_mappings::table
            .filter(target_group_mappings::tenant_id.eq(scope.id()))
            .filter(target_group_mappings::id.eq(group))
            .count()
            .get_result(conn)
            .await?;
        if found == 0 {
            return Err(user_error(
                UserErrorCode::NotFound,
                &["input", "targetGroupId"],
                "no such target group",
            ));
        }
    }
    Ok(())
}

pub async fn create(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
    fields: CampaignFields,
) -> OpResult<Uuid> {
    if fields.name.is_none() {
        return Err(user_error(
            UserErrorCode::Invalid,
            &["input", "name"],
            "name is required",
        ));
    }
    check_fields(conn, scope, &fields).await?;
    use campaigns as c;
    let id: Uuid = diesel::insert_into(c::table)
        .values((
            c::tenant_id.eq(scope.id()),
            c::name.eq(fields.name.as_deref().unwrap_or_default().trim()),
            c::description.eq(&fields.description),
            c::channel.eq(fields.channel.unwrap_or(CampaignChannel::Email)),
            c::workflow_data.eq(fields
                .workflow
                .clone()
                .unwrap_or_else(|| json!({ "nodes": [], "edges": [] }))),
            c::target_group_id.eq(fields.target_group_id),
            c::target_segment.eq(&fields.target_segment),
            c::scheduled_at.eq(fields.scheduled_at),
        ))
        .returning(c::id)
        .get_result(conn)
        .await?;
    diesel::insert_into(campaign_delivery_counters::table)
        .values((
            campaign_delivery_counters::tenant_id.eq(scope.id()),
            campaign_delivery_counters::campaign_id.eq(id),
        ))
        .execute(conn)
        .await?;
    events::record(conn, scope, "campaign.created", id, json!({})).await?;
    Ok(id)
}

async fn lock(conn: &mut AsyncPgConnection, scope: Tenant, id: Uuid) -> OpResult<Campaign> {
    crate::tenant_row!(
        locked conn,
        scope,
        campaigns,
        id,
        Campaign::as_select(),
        &["input", "id"],
        "no such campaign"
    )
}

pub async fn update(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
    id: Uuid,
    fields: CampaignFields,
) -> OpResult<Uuid> {
    let campaign = lock(conn, scope, id).await?;
    if campaign.status == CampaignStatus::Completed {
        return Err(user_error(
            UserErrorCode::InvalidTransition,
            &["input", "id"],
            "a completed campaign cannot change",
        ));
    }
    check_fields(conn, scope, &fields).await?;
    let changes = CampaignChanges {
        name: fields.name.as_deref().map(str::trim),
        description: fields.description.as_deref(),
        channel: fields.channel,
        workflow_data: fields.workflow.as_ref(),
        target_group_id: fields.target_group_id,
        target_segment: fields.target_segment.as_deref(),
        scheduled_at: fields.scheduled_at,
    };
    crate::tenant_row!(change conn, scope, campaigns, id, changes);
    events::record(conn, scope, "campaign.updated", id, json!({})).await?;
    Ok(id)
}

/// The audience: the target group's filter (segment, churnRisk, isClubMember) or the
/// campaign's segment; customers who opted out of the channel are skipped.
const LAUNCH_SQL: &str = r#"
WITH audience AS (
    SELECT c.id, c.email, c.phone
    FROM customers c
    WHERE c.tenant_id = $1
      AND ($3::text IS NULL OR c.segment = $3)
      AND ($4::text IS NULL OR c.churn_risk = $4)
      AND ($5::boolean IS NULL OR c.is_club_member = $5)
      AND NOT EXISTS (
          SELECT 1 FROM communication_preferences p
          WHERE p.tenant_id = c.tenant_id AND p.customer_id = c.id AND p.channel = $6
            AND p.communication_type = 'marketing' AND NOT p.opted_in)
), inserted AS (
    INSERT INTO campaign_recipients (tenant_id, campaign_id, execution_id, customer_id, email, phone, channel)
    SELECT $1, $2, $7, a.id, a.email, a.phone, $8 FROM audience a
    RETURNING 1
)
UPDATE campaign_delivery_counters SET recipients = recipients + (SELECT count(*) FROM inserted)
WHERE tenant_id = $1 AND campaign_id = $2
RETURNING recipients
"#;

#[derive(QueryableByName)]
struct Recipients {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    recipients: i64,
}

/// `draft → active`: creates the execution and its recipients.
pub async fn launch(conn: &mut AsyncPgConnection, scope: Tenant, id: Uuid) -> OpResult<Uuid> {
    let campaign = lock(conn, scope, id).await?;
    if campaign.status != CampaignStatus::Draft {
        return Err(user_error(
            UserErrorCode::InvalidTransition,
            &["input", "id"],
            "only a draft campaign can be launched",
        ));
    }
    let filter: serde_json::Value = match campaign.target_group_id {
        Some(group) => {
            target_group_mappings::table
                .filter(target_group_mappings::tenant_id.eq(scope.id()))
                .filter(target_group_mappings::id.eq(group))
                .select(target_group_mappings::filter)
                .first(conn)
                .await?
        }
        None => json!({ "segment": campaign.target_segment }),
    };
    if campaign.target_group_id.is_none() && campaign.target_segment.is_none() {
        return Err(user_error(
            UserErrorCode::Invalid,
            &["input", "id"],
            "set a target group or a segment before launching",
        ));
    }
    let preference_channel = match campaign.channel {
        CampaignChannel::Email => "email",
        CampaignChannel::Sms => "sms",
        CampaignChannel::Phone => "phone",
        CampaignChannel::Push => "push",
    };
    let execution: Uuid = diesel::insert_into(campaign_executions::table)
        .values((
            campaign_executions::tenant_id.eq(scope.id()),
            campaign_executions::campaign_id.eq(id),
            campaign_executions::execution_data.eq(json!({ "audience": filter })),
        ))
        .returning(campaign_executions::id)
        .get_result(conn)
        .await?;
    let counted: Recipients = diesel::sql_query(LAUNCH_SQL)
        .bind::<SqlUuid, _>(scope.id())
        .bind::<SqlUuid, _>(id)
        .bind::<diesel::sql_types::Nullable<Text>, _>(filter["segment"].as_str())
        .bind::<diesel::sql_types::Nullable<Text>, _>(filter["churnRisk"].as_str())
        .bind::<diesel::sql_types::Nullable<diesel::sql_types::Bool>, _>(
            filter["isClubMember"].as_bool(),
        )
        .bind::<Text, _>(preference_channel)
        .bind::<SqlUuid, _>(execution)
        .bind::<Text, _>(campaign.channel.as_str())
        .get_result(conn)
        .await?;
    diesel::update(
        campaigns::table
            .filter(campaigns::tenant_id.eq(scope.id()))
            .filter(campaigns::id.eq(id)),
    )
    .set((
        campaigns::status.eq(CampaignStatus::Active),
        campaigns::started_at.eq(Utc::now()),
    ))
    .execute(conn)
    .await?;
    // A workflow that acts per recipient runs for each of them (see `workflow`).
    if let Ok(graph) = super::workflow::Graph::parse(&campaign.workflow_data) {
        if let (true, Some(start)) = (graph.acts(), graph.start()) {
            super::workflow::start_runs(conn, scope, id, execution, start).await?;
        }
    }
    events::record(
        conn,
        scope,
        "campaign.launched",
        id,
        json!({ "executionId": execution, "recipients": counted.recipients }),
    )
    .await?;
    Ok(id)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusChange {
    Pause,
    Resume,
    Complete,
}

/// `active → paused`, `paused → active`, `active|paused → completed`.
pub async fn change_status(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
    id: Uuid,
    change: StatusChange,
) -> OpResult<Uuid> {
    use CampaignStatus::*;
    let campaign = lock(conn, scope, id).await?;
    let next = match (campaign.status, change) {
        (Active, StatusChange::Pause) => Paused,
        (Paused, StatusChange::Resume) => Active,
        (Active | Paused, StatusChange::Complete) => Completed,
        (from, _) => {
            return Err(user_error(
                UserErrorCode::InvalidTransition,
                &["input", "id"],
                &format!("not allowed from {}", from.as_str()),
            ));
        }
    };
    let target = campaigns::table
        .filter(campaigns::tenant_id.eq(scope.id()))
        .filter(campaigns::id.eq(id));
    if next == Completed {
        diesel::update(target)
            .set((
                campaigns::status.eq(next),
                campaigns::completed_at.eq(Utc::now()),
            ))
            .execute(conn)
            .await?;
        diesel::update(
            campaign_executions::table
                .filter(campaign_executions::tenant_id.eq(scope.id()))
                .filter(campaign_executions::campaign_id.eq(id))
                .filter(campaign_executions::status.eq(ExecutionStatus::Running)),
        )
        .set((
            campaign_executions::status.eq(ExecutionStatus::Completed),
            campaign_executions::completed_at.eq(Utc::now()),
        ))
        .execute(conn)
        .await?;
    } else {
        diesel::update(target)
            .set(campaigns::status.eq(next))
            .execute(conn)
            .await?;
    }
    events::record(
        conn,
        scope,
        "campaign.status_changed",
        id,
        json!({ "status": next }),
    )
    .await?;
    Ok(id)
}

/// Locks the funnel counters of the campaigns `recipients` belong to, in campaign order:
/// what a transaction does before it moves any recipient (a transaction that moves
/// several takes them all first), so that two of them never wait on each other.
pub async fn lock_funnels(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
    recipients: &[Uuid],
) -> QueryResult<()> {
    if recipients.is_empty() {
        return Ok(());
    }
    diesel::sql_query(
        "SELECT 1 FROM campaign_delivery_counters k
         WHERE k.tenant_id = $1 AND k.campaign_id IN (
             SELECT r.campaign_id FROM campaign_recipients r WHERE r.tenant_id = $1 AND r.id = ANY($2))
         ORDER BY k.campaign_id FOR UPDATE",
    )
    .bind::<SqlUuid, _>(scope.id())
    .bind::<diesel::sql_types::Array<SqlUuid>, _>(recipients)
    .execute(conn)
    .await?;
    Ok(())
}

/// Moves a recipient forward (`pending → sent → delivered → opened → clicked`, or to
/// `failed` from any state); reaching a state also reaches the ones before it. Repeats
/// and backward events change nothing. Counters move in the same transaction.
pub async fn record_delivery_event(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
    recipient_id: Uuid,
    status: RecipientStatus,
    at: DateTime<Utc>,
    error: Option<&str>,
) -> OpResult<Recipient> {
    use campaign_recipients as r;
    if status == RecipientStatus::Pending {
        return Err(user_error(
            UserErrorCode::Invalid,
            &["input", "status"],
            "pending is not a delivery event",
        ));
    }
    if error.is_some_and(|e| e.chars().count() > 1000 || e.contains('\0')) {
        return Err(user_error(
            UserErrorCode::Invalid,
            &["input", "error"],
            "error must be at most 1000 characters",
        ));
    }
    // The campaign's counters are locked before the recipient (in every transaction that
    // moves recipients: see `lock_funnels`), so movers of many recipients never deadlock.
    lock_funnels(conn, scope, &[recipient_id]).await?;
    let current: Recipient = crate::tenant_row!(
        locked conn,
        scope,
        campaign_recipients,
        recipient_id,
        Recipient::as_select(),
        &["input", "recipientId"],
        "no such recipient"
    )?;
    let from = current.status;
    let moves_forward = from != RecipientStatus::Failed && status.rank() > from.rank();
    if !moves_forward {
        return Ok(current);
    }
    let target = r::table
        .filter(r::tenant_id.eq(scope.id()))
        .filter(r::id.eq(recipient_id));
    let mut delta = [0i64; 5]; // sent, delivered, opened, clicked, failed
    let reached = |level: u8| {
        from.rank() < level && (status == RecipientStatus::Failed || status.rank() >= level)
    };
    if status == RecipientStatus::Failed {
        delta[4] = 1;
        diesel::update(target)
            .set((
                r::status.eq(status),
                r::failed_at.eq(at),
                r::error_message.eq(error),
            ))
            .execute(conn)
            .await?;
    } else {
        for (level, slot) in [(1u8, 0usize), (2, 1), (3, 2), (4, 3)] {
            if reached(level) {
                delta[slot] = 1;
            }
        }
        diesel::update(target)
            .set((
                r::status.eq(status),
                r::sent_at.eq(current.sent_at.or(Some(at))),
                r::delivered_at.eq(if status.rank() >= 2 {
                    current.delivered_at.or(Some(at))
                } else {
                    current.delivered_at
                }),
                r::opened_at.eq(if status.rank() >= 3 {
                    current.opened_at.or(Some(at))
                } else {
                    current.opened_at
                }),
                r::clicked_at.eq(if status.rank() >= 4 {
                    current.clicked_at.or(Some(at))
                } else {
                    current.clicked_at
                }),
            ))
            .execute(conn)
            .await?;
    }
    use campaign_delivery_counters as k;
    diesel::update(
        k::table
            .filter(k::tenant_id.eq(scope.id()))
            .filter(k::campaign_id.eq(current.campaign_id)),
    )
    .set((
        k::sent.eq(k::sent + delta[0]),
        k::delivered.eq(k::delivered + delta[1]),
        k::opened.eq(k::opened + delta[2]),
        k::clicked.eq(k::clicked + delta[3]),
        k::failed.eq(k::failed + delta[4]),
    ))
    .execute(conn)
    .await?;
    let updated: Recipient = r::table
        .filter(r::tenant_id.eq(scope.id()))
        .filter(r::id.eq(recipient_id))
        .select(Recipient::as_select())
        .first(conn)
        .await?;
    events::record(
        conn,
        scope,
        "campaign.delivery_recorded",
        current.campaign_id,
        json!({ "recipientId": recipient_id, "from": from, "to": status, "customerId": current.customer_id }),
    )
    .await?;
    Ok(updated)
}
