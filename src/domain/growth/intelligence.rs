//! The AI layer's own records (seed 001): the prompt registry and the feedback trail
//! (prediction against outcome), read-only and newest first; and the intent vocabulary
//! shared by every tenant (EN ↔ FR).

use async_graphql::connection::Connection;
use async_graphql::{Context, Json, Object, SimpleObject, ID};
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use scoped_futures::ScopedFutureExt;
use uuid::Uuid;

use crate::auth::Access;
use crate::db::schema::{feedback_tracking, intent_translations, prompt_registry};
use crate::db::Tenant;
use crate::error::AppResult;
use crate::graphql::connection::{created_page, Cursor, PageRequest};
use crate::graphql::context::request_context;
use crate::graphql::scalars::{parse_id, Decimal};

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = prompt_registry, check_for_backend(diesel::pg::Pg))]
struct PromptRow {
    id: Uuid,
    prompt_name: String,
    variant_version: i32,
    variant_id: String,
    prompt_text: String,
    language: String,
    score: Option<bigdecimal::BigDecimal>,
    usage_count: i32,
    is_active: bool,
    created_at: DateTime<Utc>,
}

/// One variant of a prompt the lead analysis uses.
#[derive(SimpleObject)]
pub struct Prompt {
    pub id: ID,
    pub name: String,
    pub variant_version: i32,
    pub variant_id: String,
    pub text: String,
    /// en or fr.
    pub language: String,
    /// 0 to 1.
    pub score: Option<Decimal>,
    pub usage_count: i32,
    pub is_active: bool,
    pub created_at: DateTime<Utc>,
}

impl From<PromptRow> for Prompt {
    fn from(p: PromptRow) -> Self {
        Prompt {
            id: ID(p.id.to_string()),
            name: p.prompt_name,
            variant_version: p.variant_version,
            variant_id: p.variant_id,
            text: p.prompt_text,
            language: p.language,
            score: p.score.map(Decimal),
            usage_count: p.usage_count,
            is_active: p.is_active,
            created_at: p.created_at,
        }
    }
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = feedback_tracking, check_for_backend(diesel::pg::Pg))]
struct FeedbackRow {
    id: Uuid,
    lead_id: Option<Uuid>,
    action_type: String,
    outcome: String,
    confidence_score: Option<bigdecimal::BigDecimal>,
    impact_score: Option<i32>,
    context_data: serde_json::Value,
    notes_en: Option<String>,
    notes_fr: Option<String>,
    learning_applied: bool,
    expires_at: DateTime<Utc>,
    created_at: DateTime<Utc>,
}

/// A prediction checked against what happened (a lead converted or reverted, a reply…).
#[derive(SimpleObject)]
pub struct Feedback {
    pub id: ID,
    pub lead_id: Option<ID>,
    /// lead_conversion, email_response, user_action or system_performance.
    pub action_type: String,
    /// positive, negative or neutral.
    pub outcome: String,
    /// 0 to 1.
    pub confidence_score: Option<Decimal>,
    /// -100 to 100.
    pub impact_score: Option<i32>,
    pub context: Json<serde_json::Value>,
    pub notes_en: Option<String>,
    pub notes_fr: Option<String>,
    pub learning_applied: bool,
    /// Feedback is kept one year.
    pub expires_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
}

impl From<FeedbackRow> for Feedback {
    fn from(f: FeedbackRow) -> Self {
        Feedback {
            id: ID(f.id.to_string()),
            lead_id: f.lead_id.map(|l| ID(l.to_string())),
            action_type: f.action_type,
            outcome: f.outcome,
            confidence_score: f.confidence_score.map(Decimal),
            impact_score: f.impact_score,
            context: Json(f.context_data),
            notes_en: f.notes_en,
            notes_fr: f.notes_fr,
            learning_applied: f.learning_applied,
            expires_at: f.expires_at,
            created_at: f.created_at,
        }
    }
}

async fn list_prompts(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
    name: Option<&str>,
    page: &PageRequest<DateTime<Utc>>,
) -> QueryResult<Vec<PromptRow>> {
    use prompt_registry as p;
    let mut query = p::table
        .filter(p::tenant_id.eq(scope.id()))
        .select(PromptRow::as_select())
        .order((p::created_at.desc(), p::id.desc()))
        .limit(page.limit())
        .into_boxed();
    if let Some(name) = name {
        query = query.filter(p::prompt_name.eq(name.to_owned()));
    }
    crate::after_cursor!(query, page, p::created_at, p::id, desc)
        .load(conn)
        .await
}

async fn list_feedback(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
    lead: Option<Uuid>,
    page: &PageRequest<DateTime<Utc>>,
) -> QueryResult<Vec<FeedbackRow>> {
    use feedback_tracking as f;
    let mut query = f::table
        .filter(f::tenant_id.eq(scope.id()))
        .select(FeedbackRow::as_select())
        .order((f::created_at.desc(), f::id.desc()))
        .limit(page.limit())
        .into_boxed();
    if let Some(lead) = lead {
        query = query.filter(f::lead_id.eq(lead));
    }
    crate::after_cursor!(query, page, f::created_at, f::id, desc)
        .load(conn)
        .await
}

/// An intent's English and French names (reference data shared by every tenant).
#[derive(Debug, Clone, Queryable, Selectable, SimpleObject)]
#[diesel(table_name = intent_translations, check_for_backend(diesel::pg::Pg))]
pub struct IntentTranslation {
    #[graphql(name = "en")]
    pub intent_en: String,
    #[graphql(name = "fr")]
    pub intent_fr: String,
    pub category: Option<String>,
}

crate::created_row!(PromptRow, FeedbackRow);

type Page<N> = Connection<Cursor<DateTime<Utc>>, N>;

#[derive(Default)]
pub struct IntelligenceQuery;

#[Object]
impl IntelligenceQuery {
    /// The prompt registry (every variant), optionally of one prompt name, newest first.
    #[graphql(
        guard = "Access::Read",
        complexity = "first.unwrap_or(20).max(0) as usize * child_complexity"
    )]
    async fn prompts(
        &self,
        ctx: &Context<'_>,
        name: Option<String>,
        first: Option<i32>,
        after: Option<String>,
    ) -> AppResult<Page<Prompt>> {
        created_page(
            ctx,
            first,
            after,
            |conn, scope, page| {
                async move { list_prompts(conn, scope, name.as_deref(), &page).await }.scope_boxed()
            },
            Prompt::from,
        )
        .await
    }

    /// The intent vocabulary, by English name (shared by every tenant; a few hundred rows
    /// at most).
    #[graphql(guard = "Access::Read")]
    async fn intent_translations(&self, ctx: &Context<'_>) -> AppResult<Vec<IntentTranslation>> {
        let rows = request_context(ctx)?
            .db
            .query(|conn, _| {
                intent_translations::table
                    .select(IntentTranslation::as_select())
                    .order(intent_translations::intent_en)
                    .load(conn)
                    .scope_boxed()
            })
            .await?;
        Ok(rows)
    }

    /// The feedback trail, optionally of one lead, newest first.
    #[graphql(
        guard = "Access::Read",
        complexity = "first.unwrap_or(20).max(0) as usize * child_complexity"
    )]
    async fn feedback(
        &self,
        ctx: &Context<'_>,
        lead_id: Option<ID>,
        first: Option<i32>,
        after: Option<String>,
    ) -> AppResult<Page<Feedback>> {
        let lead = lead_id
            .as_ref()
            .map(|l| parse_id(l, &["leadId"]))
            .transpose()?;
        created_page(
            ctx,
            first,
            after,
            |conn, scope, page| {
                async move { list_feedback(conn, scope, lead, &page).await }.scope_boxed()
            },
            Feedback::from,
        )
        .await
    }
}
