use async_graphql::connection::Connection;
use async_graphql::{ComplexObject, Context, InputObject, Object, SimpleObject, ID};
use chrono::{DateTime, Utc};
use scoped_futures::ScopedFutureExt;
use uuid::Uuid;

use super::model::{self, Language, LeadActionType, Urgency};
use super::ops;
use crate::auth::Access;
use crate::domain::customers::graphql::{Customer, CustomerKey};
use crate::domain::write_payload;
use crate::domain::{write_and_load, OpResult};
use crate::error::AppResult;
use crate::graphql::connection::IntoConnection;
use crate::graphql::connection::{Cursor, OrderDirection, PageRequest};
use crate::graphql::context::request_context;
use crate::graphql::scalars::{parse_id, Decimal};

/// An inbound lead with its AI analysis (seed 001 `lead_memory`).
#[derive(SimpleObject, Clone)]
#[graphql(complex)]
pub struct Lead {
    pub id: ID,
    pub name: String,
    pub email: String,
    pub message: String,
    pub ai_summary: Option<String>,
    pub intent: Option<String>,
    pub tone: Option<String>,
    pub urgency: Option<Urgency>,
    /// The AI's confidence, 0 to 1.
    pub confidence_score: Option<Decimal>,
    pub archived: bool,
    pub deleted: bool,
    pub current_tag: Option<String>,
    pub language: Language,
    pub created_at: DateTime<Utc>,
    #[graphql(skip)]
    pub lead_id: Uuid,
    #[graphql(skip)]
    pub customer_id: Option<Uuid>,
}

impl From<model::Lead> for Lead {
    fn from(l: model::Lead) -> Self {
        Lead {
            id: ID(l.id.to_string()),
            name: l.name,
            email: l.email,
            message: l.message,
            ai_summary: l.ai_summary,
            intent: l.intent,
            tone: l.tone,
            urgency: l.urgency,
            confidence_score: l.confidence_score.map(Decimal),
            archived: l.archived,
            deleted: l.deleted,
            current_tag: l.current_tag,
            language: l.language,
            created_at: l.created_at,
            lead_id: l.id,
            customer_id: l.customer_id,
        }
    }
}

#[derive(SimpleObject, Clone)]
pub struct LeadAction {
    pub id: ID,
    pub action: LeadActionType,
    pub tag: Option<String>,
    pub timestamp: DateTime<Utc>,
    pub conversion_outcome: Option<bool>,
    pub reversion_reason: Option<String>,
    pub performed_by: Option<String>,
}

impl From<model::LeadAction> for LeadAction {
    fn from(a: model::LeadAction) -> Self {
        LeadAction {
            id: ID(a.id.to_string()),
            action: a.action_type,
            tag: a.tag,
            timestamp: a.timestamp,
            conversion_outcome: a.conversion_outcome,
            reversion_reason: a.reversion_reason,
            performed_by: a.performed_by,
        }
    }
}

#[derive(SimpleObject, Clone)]
pub struct LeadNote {
    pub id: ID,
    pub note: String,
    pub performed_by: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<model::LeadNote> for LeadNote {
    fn from(n: model::LeadNote) -> Self {
        LeadNote {
            id: ID(n.id.to_string()),
            note: n.note,
            performed_by: n.performed_by,
            created_at: n.created_at,
            updated_at: n.updated_at,
        }
    }
}

#[derive(SimpleObject, Clone)]
pub struct HistoryEntry {
    pub value: String,
    pub at: Option<DateTime<Utc>>,
}

/// How the AI's reading of the lead changed over time.
#[derive(SimpleObject, Clone)]
pub struct LeadHistory {
    pub tone: Vec<HistoryEntry>,
    pub confidence: Vec<HistoryEntry>,
    pub urgency: Vec<HistoryEntry>,
}

/// A history's entries, oldest first: the latest [`UNPAGED_LIST_BOUND`] of them.
///
/// [`UNPAGED_LIST_BOUND`]: crate::graphql::connection::UNPAGED_LIST_BOUND
fn entries(value: &serde_json::Value) -> Vec<HistoryEntry> {
    use crate::graphql::connection::UNPAGED_LIST_BOUND;
    value
        .as_array()
        .map(|items| {
            items[items.len().saturating_sub(UNPAGED_LIST_BOUND)..]
                .iter()
                .map(|i| HistoryEntry {
                    value: match &i["value"] {
                        serde_json::Value::String(s) => s.clone(),
                        other => other.to_string(),
                    },
                    at: i["at"].as_str().and_then(|s| s.parse().ok()),
                })
                .collect()
        })
        .unwrap_or_default()
}

#[ComplexObject]
impl Lead {
    /// The audit trail, oldest first.
    async fn actions(&self, ctx: &Context<'_>) -> AppResult<Vec<LeadAction>> {
        let request = request_context(ctx)?;
        let rows = request
            .load_one(ActionsOf(self.lead_id))
            .await?
            .unwrap_or_default();
        Ok(crate::graphql::connection::bounded(rows)
            .into_iter()
            .map(LeadAction::from)
            .collect())
    }
    async fn notes(&self, ctx: &Context<'_>) -> AppResult<Vec<LeadNote>> {
        let request = request_context(ctx)?;
        let rows = request
            .load_one(NotesOf(self.lead_id))
            .await?
            .unwrap_or_default();
        Ok(crate::graphql::connection::bounded(rows)
            .into_iter()
            .map(LeadNote::from)
            .collect())
    }
    async fn history(&self, ctx: &Context<'_>) -> AppResult<Option<LeadHistory>> {
        let request = request_context(ctx)?;
        Ok(request
            .load_one(DetailOf(self.lead_id))
            .await?
            .map(|d| LeadHistory {
                tone: entries(&d.tone_history),
                confidence: entries(&d.confidence_history),
                urgency: entries(&d.urgency_history),
            }))
    }
    /// The customer this lead converted into.
    async fn customer(&self, ctx: &Context<'_>) -> AppResult<Option<Customer>> {
        let Some(id) = self.customer_id else {
            return Ok(None);
        };
        let request = request_context(ctx)?;
        Ok(request.load_one(CustomerKey(id)).await?.map(Customer))
    }
}

// ---- loaders ---------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LeadsOfCustomer(pub Uuid);
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LeadKey(pub Uuid);
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ActionsOf(pub Uuid);
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct NotesOf(pub Uuid);
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DetailOf(pub Uuid);

crate::load_groups!(LeadsOfCustomer => model::Lead, ops::leads_of_customers, |row: &model::Lead| row.customer_id);

crate::load_by_ids!(LeadKey => model::Lead, ops::by_ids, |row: &model::Lead| row.id);

crate::load_groups!(ActionsOf => model::LeadAction, ops::actions_of, |row: &model::LeadAction| Some(row.lead_id));

crate::load_groups!(NotesOf => model::LeadNote, ops::notes_of, |row: &model::LeadNote| Some(row.lead_id));

crate::load_by_ids!(DetailOf => model::LeadDetail, ops::details, |row: &model::LeadDetail| row.id);

// ---- queries ---------------------------------------------------------------------------

#[derive(InputObject, Default)]
pub struct LeadFilter {
    pub tag: Option<String>,
    pub urgency: Option<Urgency>,
    pub intent: Option<String>,
    pub tone: Option<String>,
    pub language: Option<Language>,
    /// Default false: archived leads are hidden unless asked for.
    pub archived: Option<bool>,
    /// Default false: deleted leads are hidden unless asked for.
    pub deleted: Option<bool>,
    pub confidence_min: Option<Decimal>,
    pub confidence_max: Option<Decimal>,
    pub created_from: Option<DateTime<Utc>>,
    pub created_to: Option<DateTime<Utc>>,
    /// Case-insensitive substring of name, email or message.
    pub search: Option<String>,
}

/// The operations' filter of the list's (and its aggregate's) `filter` argument.
pub(super) fn lead_filter(filter: Option<LeadFilter>) -> AppResult<ops::LeadFilter> {
    let f = filter.unwrap_or_default();
    crate::graphql::connection::check_search(&f.search)?;
    Ok(ops::LeadFilter {
        tag: f.tag,
        urgency: f.urgency,
        intent: f.intent,
        tone: f.tone,
        language: f.language,
        archived: f.archived,
        deleted: f.deleted,
        confidence_min: f.confidence_min.map(|d| d.0),
        confidence_max: f.confidence_max.map(|d| d.0),
        created_from: f.created_from,
        created_to: f.created_to,
        search: f.search,
    })
}

#[derive(async_graphql::Enum, Clone, Copy, PartialEq, Eq, Default)]
pub enum LeadOrderByField {
    #[default]
    CreatedAt,
}

#[derive(InputObject, Default)]
pub struct LeadOrderBy {
    #[graphql(default)]
    pub field: LeadOrderByField,
    /// Default DESC (newest first).
    pub direction: Option<OrderDirection>,
}

#[derive(Default)]
pub struct LeadsQuery;

#[Object]
impl LeadsQuery {
    #[graphql(guard = "Access::Read")]
    async fn lead(&self, ctx: &Context<'_>, id: ID) -> AppResult<Option<Lead>> {
        let request = request_context(ctx)?;
        let id = parse_id(&id, &["id"])?;
        Ok(request.load_one(LeadKey(id)).await?.map(Lead::from))
    }

    /// Leads, newest first by default; archived and deleted ones only when asked for.
    #[graphql(guard = "Access::Read")]
    #[allow(clippy::too_many_arguments)]
    async fn leads(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
        filter: Option<LeadFilter>,
        order_by: Option<LeadOrderBy>,
    ) -> AppResult<Connection<Cursor<DateTime<Utc>>, Lead>> {
        let request = request_context(ctx)?;
        let page = PageRequest::either(first, after, last, before)?;
        let filter = lead_filter(filter)?;
        let ascending = order_by.and_then(|o| o.direction) == Some(OrderDirection::Asc);
        let list = |scope| Ok(ops::list_query(scope, &filter, ascending, &page));
        let rows = super::prefetch::leads_page(ctx, request, (list, page.limit())).await?;
        Ok(page.into_connection(
            rows,
            |l| Cursor {
                key: l.created_at,
                id: l.id,
            },
            Lead::from,
        ))
    }
}

// ---- mutations -------------------------------------------------------------------------

#[derive(InputObject)]
pub struct IngestLeadInput {
    pub name: String,
    pub email: String,
    #[graphql(default)]
    pub message: String,
    #[graphql(default_with = "Language::En")]
    pub language: Language,
    pub ai_summary: Option<String>,
    pub intent: Option<String>,
    pub tone: Option<String>,
    pub urgency: Option<Urgency>,
    pub confidence_score: Option<Decimal>,
    pub idempotency_key: Option<String>,
}

#[derive(InputObject)]
pub struct TagLeadInput {
    pub lead_id: ID,
    pub tag: String,
}

#[derive(InputObject)]
pub struct LeadIdInput {
    pub lead_id: ID,
}

#[derive(InputObject)]
pub struct ConvertLeadInput {
    pub lead_id: ID,
    /// The customer it became; default: the customer with the lead's email (created if none).
    pub customer_id: Option<ID>,
}

#[derive(InputObject)]
pub struct RevertLeadConversionInput {
    pub lead_id: ID,
    pub reason: String,
}

#[derive(InputObject)]
pub struct UpdateLeadAnalysisInput {
    pub lead_id: ID,
    pub ai_summary: Option<String>,
    pub intent: Option<String>,
    pub tone: Option<String>,
    pub urgency: Option<Urgency>,
    pub confidence_score: Option<Decimal>,
}

#[derive(InputObject)]
pub struct AddLeadNoteInput {
    pub lead_id: ID,
    pub note: String,
}

#[derive(InputObject)]
pub struct UpdateLeadNoteInput {
    pub note_id: ID,
    pub note: String,
}

crate::payload!(LeadPayload { lead: Lead } from Option<model::Lead>);

crate::payload!(LeadNotePayload { note: LeadNote } from model::LeadNote);

async fn lead_payload<'a, F>(ctx: &Context<'_>, work: F) -> AppResult<LeadPayload>
where
    F: crate::db::tenant::Work<'a, OpResult<Uuid>>,
{
    write_and_load(ctx, work, |conn, scope, id| {
        async move { Ok(ops::by_ids(conn, scope, &[id]).await?.pop()) }.scope_boxed()
    })
    .await
}

fn lead_id(id: &ID) -> AppResult<Uuid> {
    parse_id(id, &["input", "leadId"])
}

#[derive(Default)]
pub struct LeadsMutation;

#[Object]
impl LeadsMutation {
    /// Captures an inbound lead (the form capture of seed 001), with its `created` action.
    #[graphql(guard = "Access::Ingest")]
    async fn ingest_lead(
        &self,
        ctx: &Context<'_>,
        input: IngestLeadInput,
    ) -> AppResult<LeadPayload> {
        let key = input.idempotency_key.clone();
        let ingest = ops::IngestLead {
            name: input.name,
            email: input.email,
            message: input.message,
            language: input.language,
            ai_summary: input.ai_summary,
            intent: input.intent,
            tone: input.tone,
            urgency: input.urgency,
            confidence_score: input.confidence_score.map(|d| d.0),
        };
        lead_payload(ctx, |conn, scope| {
            async move { ops::ingest(conn, scope, ingest, key.as_deref()).await }.scope_boxed()
        })
        .await
    }

    #[graphql(guard = "Access::Admin")]
    async fn tag_lead(&self, ctx: &Context<'_>, input: TagLeadInput) -> AppResult<LeadPayload> {
        let id = lead_id(&input.lead_id)?;
        let tag = input.tag;
        lead_payload(ctx, |conn, scope| {
            async move { ops::tag(conn, scope, id, &tag).await }.scope_boxed()
        })
        .await
    }

    #[graphql(guard = "Access::Admin")]
    async fn archive_lead(&self, ctx: &Context<'_>, input: LeadIdInput) -> AppResult<LeadPayload> {
        let id = lead_id(&input.lead_id)?;
        lead_payload(ctx, |conn, scope| {
            async move { ops::archive(conn, scope, id).await }.scope_boxed()
        })
        .await
    }

    #[graphql(guard = "Access::Admin")]
    async fn reactivate_lead(
        &self,
        ctx: &Context<'_>,
        input: LeadIdInput,
    ) -> AppResult<LeadPayload> {
        let id = lead_id(&input.lead_id)?;
        lead_payload(ctx, |conn, scope| {
            async move { ops::reactivate(conn, scope, id).await }.scope_boxed()
        })
        .await
    }

    /// Soft delete: hidden by default, kept for the audit trail.
    #[graphql(guard = "Access::Admin")]
    async fn delete_lead(&self, ctx: &Context<'_>, input: LeadIdInput) -> AppResult<LeadPayload> {
        let id = lead_id(&input.lead_id)?;
        lead_payload(ctx, |conn, scope| {
            async move { ops::delete(conn, scope, id).await }.scope_boxed()
        })
        .await
    }

    #[graphql(guard = "Access::Admin")]
    async fn convert_lead(
        &self,
        ctx: &Context<'_>,
        input: ConvertLeadInput,
    ) -> AppResult<LeadPayload> {
        let id = lead_id(&input.lead_id)?;
        let customer = input
            .customer_id
            .as_ref()
            .map(|c| parse_id(c, &["input", "customerId"]))
            .transpose()?;
        lead_payload(ctx, |conn, scope| {
            async move { ops::convert(conn, scope, id, customer).await }.scope_boxed()
        })
        .await
    }

    #[graphql(guard = "Access::Admin")]
    async fn revert_lead_conversion(
        &self,
        ctx: &Context<'_>,
        input: RevertLeadConversionInput,
    ) -> AppResult<LeadPayload> {
        let id = lead_id(&input.lead_id)?;
        let reason = input.reason;
        lead_payload(ctx, |conn, scope| {
            async move { ops::revert_conversion(conn, scope, id, &reason).await }.scope_boxed()
        })
        .await
    }

    /// A new AI analysis; changed tone, confidence or urgency append to the history.
    #[graphql(guard = "Access::Ingest")]
    async fn update_lead_analysis(
        &self,
        ctx: &Context<'_>,
        input: UpdateLeadAnalysisInput,
    ) -> AppResult<LeadPayload> {
        let id = lead_id(&input.lead_id)?;
        let analysis = ops::Analysis {
            ai_summary: input.ai_summary,
            intent: input.intent,
            tone: input.tone,
            urgency: input.urgency,
            confidence_score: input.confidence_score.map(|d| d.0),
        };
        lead_payload(ctx, |conn, scope| {
            async move { ops::update_analysis(conn, scope, id, analysis).await }.scope_boxed()
        })
        .await
    }

    #[graphql(guard = "Access::Admin")]
    async fn add_lead_note(
        &self,
        ctx: &Context<'_>,
        input: AddLeadNoteInput,
    ) -> AppResult<LeadNotePayload> {
        let id = lead_id(&input.lead_id)?;
        let note = input.note;
        write_payload(ctx, |conn, scope| {
            async move { ops::add_note(conn, scope, id, &note).await }.scope_boxed()
        })
        .await
    }

    #[graphql(guard = "Access::Admin")]
    async fn update_lead_note(
        &self,
        ctx: &Context<'_>,
        input: UpdateLeadNoteInput,
    ) -> AppResult<LeadNotePayload> {
        let id = parse_id(&input.note_id, &["input", "noteId"])?;
        let note = input.note;
        write_payload(ctx, |conn, scope| {
            async move { ops::update_note(conn, scope, id, &note).await }.scope_boxed()
        })
        .await
    }
}
