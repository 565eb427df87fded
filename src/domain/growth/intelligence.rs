//! The AI layer's own records (seed 001): the feedback trail
//! (prediction against outcome) and the translation cache, read-only and newest first;
//! and the reference data shared by every tenant (EN ↔ FR): the intent vocabulary and the
//! translation dictionary.

use async_graphql::connection::Connection;
use async_graphql::{Context, Json, Object, SimpleObject, ID};
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use scoped_futures::ScopedFutureExt;
use uuid::Uuid;

use crate::auth::Access;
use crate::db::filter::FilterSome;
use crate::db::schema::{
    feedback_tracking, intent_translations, translation_cache, translation_dictionary,
};
use crate::db::Tenant;
use crate::domain::leads::model::Language;
use crate::error::AppResult;
use crate::graphql::connection::{created_page, Cursor, PageRequest};
use crate::graphql::context::request_context;
use crate::graphql::scalars::{parse_id, Decimal};

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

async fn list_feedback(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
    lead: Option<Uuid>,
    page: &PageRequest<DateTime<Utc>>,
) -> QueryResult<Vec<FeedbackRow>> {
    use feedback_tracking as f;
    let query = f::table
        .filter(f::tenant_id.eq(scope.id()))
        .select(FeedbackRow::as_select())
        .limit(page.limit())
        .into_boxed()
        .filter_some(lead, |v| f::lead_id.eq(v));
    crate::keyset!(query, page, f::created_at, f::id, desc)
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

text_enum!(
    /// What a cached translation was made for.
    pub TranslationContext {
        LeadSummary => "lead_summary",
        Intent => "intent",
        Tone => "tone",
        UiText => "ui_text",
    }
);

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = translation_cache, check_for_backend(diesel::pg::Pg))]
pub(crate) struct CachedTranslationRow {
    id: Uuid,
    source_text: String,
    source_language: Language,
    target_language: Language,
    translated_text: String,
    context_type: TranslationContext,
    quality_score: Option<bigdecimal::BigDecimal>,
    verified: bool,
    created_at: DateTime<Utc>,
    last_used_at: DateTime<Utc>,
    expires_at: DateTime<Utc>,
}

/// A machine translation the tenant's lead analysis made and kept for reuse.
#[derive(SimpleObject)]
pub struct CachedTranslation {
    pub id: ID,
    pub source_text: String,
    pub source_language: Language,
    pub target_language: Language,
    pub translated_text: String,
    pub context_type: TranslationContext,
    /// 0 to 1.
    pub quality_score: Option<Decimal>,
    /// Checked by a person.
    pub verified: bool,
    pub created_at: DateTime<Utc>,
    pub last_used_at: DateTime<Utc>,
    /// Entries are kept 90 days (listed until they are removed).
    pub expires_at: DateTime<Utc>,
}

impl From<CachedTranslationRow> for CachedTranslation {
    fn from(t: CachedTranslationRow) -> Self {
        CachedTranslation {
            id: ID(t.id.to_string()),
            source_text: t.source_text,
            source_language: t.source_language,
            target_language: t.target_language,
            translated_text: t.translated_text,
            context_type: t.context_type,
            quality_score: t.quality_score.map(Decimal),
            verified: t.verified,
            created_at: t.created_at,
            last_used_at: t.last_used_at,
            expires_at: t.expires_at,
        }
    }
}

/// Which cached translations to list (every one when empty).
#[derive(async_graphql::InputObject, Default)]
pub struct TranslationFilter {
    pub source_language: Option<Language>,
    pub target_language: Option<Language>,
    pub context_type: Option<TranslationContext>,
}

async fn list_translations(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
    filter: TranslationFilter,
    page: &PageRequest<DateTime<Utc>>,
) -> QueryResult<Vec<CachedTranslationRow>> {
    use translation_cache as t;
    let query = t::table
        .filter(t::tenant_id.eq(scope.id()))
        .select(CachedTranslationRow::as_select())
        .limit(page.limit())
        .into_boxed()
        .filter_some(filter.source_language, |v| t::source_language.eq(v))
        .filter_some(filter.target_language, |v| t::target_language.eq(v))
        .filter_some(filter.context_type, |v| t::context_type.eq(v));
    crate::keyset!(query, page, t::created_at, t::id, desc)
        .load(conn)
        .await
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = translation_dictionary, check_for_backend(diesel::pg::Pg))]
struct DictionaryRow {
    source_text: String,
    source_language: Language,
    target_language: Language,
    translated_text: String,
    context: Option<String>,
    category: Option<String>,
    verified: bool,
    usage_count: i32,
    confidence: Option<bigdecimal::BigDecimal>,
}

/// A verified translation of a common term (reference data shared by every tenant).
#[derive(SimpleObject)]
pub struct DictionaryEntry {
    pub source_text: String,
    pub source_language: Language,
    pub target_language: Language,
    pub translated_text: String,
    /// Where the term is used.
    pub context: Option<String>,
    pub category: Option<String>,
    pub verified: bool,
    pub usage_count: i32,
    /// 0 to 1.
    pub confidence: Option<Decimal>,
}

impl From<DictionaryRow> for DictionaryEntry {
    fn from(d: DictionaryRow) -> Self {
        DictionaryEntry {
            source_text: d.source_text,
            source_language: d.source_language,
            target_language: d.target_language,
            translated_text: d.translated_text,
            context: d.context,
            category: d.category,
            verified: d.verified,
            usage_count: d.usage_count,
            confidence: d.confidence.map(Decimal),
        }
    }
}

crate::created_row!(FeedbackRow, CachedTranslationRow);

type Page<N> = Connection<Cursor<DateTime<Utc>>, N>;

#[derive(Default)]
pub struct IntelligenceQuery;

#[Object]
impl IntelligenceQuery {
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
                    .limit(crate::graphql::connection::UNPAGED_LIST_BOUND as i64)
                    .load(conn)
                    .scope_boxed()
            })
            .await?;
        Ok(rows)
    }

    /// The tenant's translation cache, newest first.
    #[graphql(guard = "Access::Read")]
    async fn translations(
        &self,
        ctx: &Context<'_>,
        filter: Option<TranslationFilter>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
    ) -> AppResult<Page<CachedTranslation>> {
        created_page(
            ctx,
            PageRequest::either(first, after, last, before)?,
            |conn, scope, page| {
                let filter = filter.unwrap_or_default();
                async move { list_translations(conn, scope, filter, &page).await }.scope_boxed()
            },
            CachedTranslation::from,
        )
        .await
    }

    /// The translation dictionary (shared by every tenant; a few hundred terms at most),
    /// by source term, then languages; optionally of one language pair or category.
    #[graphql(guard = "Access::Read")]
    async fn translation_dictionary(
        &self,
        ctx: &Context<'_>,
        source_language: Option<Language>,
        target_language: Option<Language>,
        category: Option<String>,
    ) -> AppResult<Vec<DictionaryEntry>> {
        use translation_dictionary as d;
        let rows = request_context(ctx)?
            .db
            .query(|conn, _| {
                d::table
                    .select(DictionaryRow::as_select())
                    .order((d::source_text, d::source_language, d::target_language))
                    .into_boxed()
                    .filter_some(source_language, |v| d::source_language.eq(v))
                    .filter_some(target_language, |v| d::target_language.eq(v))
                    .filter_some(category, |v| d::category.eq(v))
                    .limit(crate::graphql::connection::UNPAGED_LIST_BOUND as i64)
                    .load(conn)
                    .scope_boxed()
            })
            .await?;
        Ok(rows.into_iter().map(DictionaryEntry::from).collect())
    }

    /// The feedback trail, optionally of one lead, newest first.
    #[graphql(guard = "Access::Read")]
    async fn feedback(
        &self,
        ctx: &Context<'_>,
        lead_id: Option<ID>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
    ) -> AppResult<Page<Feedback>> {
        let lead = lead_id
            .as_ref()
            .map(|l| parse_id(l, &["leadId"]))
            .transpose()?;
        created_page(
            ctx,
            PageRequest::either(first, after, last, before)?,
            |conn, scope, page| {
                async move { list_feedback(conn, scope, lead, &page).await }.scope_boxed()
            },
            Feedback::from,
        )
        .await
    }
}
