//! Translation (seed 001 §6): the shared dictionary first, then the tenant's cache, then a
//! translation provider, whose answer the cache keeps 90 days. The server's provider is
//! built in and honest about it: it knows the dictionary (whatever the case) and the intent
//! vocabulary, nothing else, and says so in `provider`; another provider is one more
//! [`Translator`].

use async_graphql::{Context, InputObject, Object, SimpleObject};
use chrono::{DateTime, Duration, Utc};
use diesel::prelude::*;
use diesel::sql_types::{Numeric, Text, Timestamptz, Uuid as SqlUuid};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use scoped_futures::ScopedFutureExt;

use super::intelligence::TranslationContext;
use crate::auth::Access;
use crate::db::schema::{intent_translations, translation_dictionary};
use crate::db::Tenant;
use crate::domain::leads::model::Language;
use crate::domain::{check_required_text, user_error, write_payload, OpResult, UserErrorCode};
use crate::error::AppResult;

/// How long a provider's translation is kept.
pub const CACHE_DAYS: i64 = 90;

/// A translation, and who made it.
#[derive(Debug, Clone, PartialEq)]
pub struct Translated {
    pub text: String,
    /// 0 to 1.
    pub quality: bigdecimal::BigDecimal,
}

/// A translation provider (the third place `translate` looks).
#[async_trait::async_trait]
pub trait Translator: Send + Sync {
    /// How `provider` names it.
    fn name(&self) -> &'static str;
    async fn translate(
        &self,
        conn: &mut AsyncPgConnection,
        text: &str,
        from: Language,
        to: Language,
        context: TranslationContext,
    ) -> QueryResult<Option<Translated>>;
}

/// The built-in provider: the shared dictionary whatever the case, and the intent
/// vocabulary (`intent_translations`) — no machine translation.
pub struct ReferenceTranslator;

#[async_trait::async_trait]
impl Translator for ReferenceTranslator {
    fn name(&self) -> &'static str {
        "builtin:reference"
    }

    async fn translate(
        &self,
        conn: &mut AsyncPgConnection,
        text: &str,
        from: Language,
        to: Language,
        _context: TranslationContext,
    ) -> QueryResult<Option<Translated>> {
        use diesel::dsl::sql;
        if let Some(entry) = dictionary(conn, text, from, to, Case::Any).await? {
            return Ok(Some(entry));
        }
        let lower = text.to_lowercase();
        let (source, target) = match from {
            Language::En => ("intent_en", "intent_fr"),
            Language::Fr => ("intent_fr", "intent_en"),
        };
        let intent: Option<String> = intent_translations::table
            .filter(
                sql::<diesel::sql_types::Bool>(&format!("lower({source}) = "))
                    .bind::<Text, _>(&lower),
            )
            .select(sql::<Text>(target))
            .first(conn)
            .await
            .optional()?;
        Ok(intent.map(|text| Translated {
            text,
            quality: 1.into(),
        }))
    }
}

/// What to translate.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    pub text: &'a str,
    pub from: Language,
    pub to: Language,
    pub context: TranslationContext,
}

/// How a text is matched with the dictionary's terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Case {
    Exact,
    Any,
}

/// The dictionary's translation of a term (its confidence, 1 when it has none).
async fn dictionary(
    conn: &mut AsyncPgConnection,
    text: &str,
    from: Language,
    to: Language,
    case: Case,
) -> QueryResult<Option<Translated>> {
    use translation_dictionary as d;
    let mut query = d::table
        .filter(d::source_language.eq(from.as_str()))
        .filter(d::target_language.eq(to.as_str()))
        .select((d::translated_text, d::confidence))
        .into_boxed();
    query = match case {
        Case::Exact => query.filter(d::source_text.eq(text.to_owned())),
        Case::Any => query.filter(
            diesel::dsl::sql::<diesel::sql_types::Bool>("lower(source_text) = ")
                .bind::<Text, _>(text.to_lowercase()),
        ),
    };
    let entry: Option<(String, Option<bigdecimal::BigDecimal>)> =
        query.first(conn).await.optional()?;
    Ok(entry.map(|(text, confidence)| Translated {
        text,
        quality: confidence.unwrap_or_else(|| 1.into()),
    }))
}

/// Where a translation came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    pub translated: Option<String>,
    /// `dictionary`, `cache`, or the provider's name.
    pub provider: &'static str,
    pub quality: Option<bigdecimal::BigDecimal>,
}

/// Translates `text`: the shared dictionary (exactly), then the tenant's cache (entries
/// not expired; a hit is stamped `last_used_at`), then `translator`, whose answer is
/// cached for [`CACHE_DAYS`]. Nothing found: no text, and the provider that was asked.
pub async fn translate(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
    translator: &dyn Translator,
    request: Request<'_>,
    now: DateTime<Utc>,
) -> OpResult<Answer> {
    let Request {
        text,
        from,
        to,
        context,
    } = request;
    check_required_text("text", text, 10_000)?;
    if from == to {
        return Err(user_error(
            UserErrorCode::Invalid,
            &["input", "to"],
            "a translation is to another language",
        ));
    }
    if let Some(entry) = dictionary(conn, text, from, to, Case::Exact).await? {
        return Ok(Answer {
            translated: Some(entry.text),
            provider: "dictionary",
            quality: Some(entry.quality),
        });
    }
    #[derive(QueryableByName)]
    struct Hit {
        #[diesel(sql_type = Text)]
        translated_text: String,
        #[diesel(sql_type = diesel::sql_types::Nullable<Numeric>)]
        quality_score: Option<bigdecimal::BigDecimal>,
    }
    // The cache's unique key is (tenant, languages, context, md5(text)).
    let hit: Option<Hit> = diesel::sql_query(
        "UPDATE translation_cache SET last_used_at = $6
         WHERE tenant_id = $1 AND source_language = $2 AND target_language = $3
           AND context_type = $4 AND md5(source_text) = md5($5) AND source_text = $5
           AND expires_at > $6
         RETURNING translated_text, quality_score",
    )
    .bind::<SqlUuid, _>(scope.id())
    .bind::<Text, _>(from.as_str())
    .bind::<Text, _>(to.as_str())
    .bind::<Text, _>(context.as_str())
    .bind::<Text, _>(text)
    .bind::<Timestamptz, _>(now)
    .get_result(conn)
    .await
    .optional()?;
    if let Some(hit) = hit {
        return Ok(Answer {
            translated: Some(hit.translated_text),
            provider: "cache",
            quality: hit.quality_score,
        });
    }
    let Some(made) = translator.translate(conn, text, from, to, context).await? else {
        return Ok(Answer {
            translated: None,
            provider: translator.name(),
            quality: None,
        });
    };
    // Kept (an expired entry of the same key is replaced).
    diesel::sql_query(
        "INSERT INTO translation_cache (tenant_id, source_text, source_language, target_language,
             translated_text, context_type, quality_score, created_at, last_used_at, expires_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8, $9)
         ON CONFLICT (tenant_id, source_language, target_language, context_type, md5(source_text))
         DO UPDATE SET translated_text = EXCLUDED.translated_text, quality_score = EXCLUDED.quality_score,
             created_at = EXCLUDED.created_at, last_used_at = EXCLUDED.last_used_at,
             expires_at = EXCLUDED.expires_at, verified = false",
    )
    .bind::<SqlUuid, _>(scope.id())
    .bind::<Text, _>(text)
    .bind::<Text, _>(from.as_str())
    .bind::<Text, _>(to.as_str())
    .bind::<Text, _>(&made.text)
    .bind::<Text, _>(context.as_str())
    .bind::<Numeric, _>(&made.quality)
    .bind::<Timestamptz, _>(now)
    .bind::<Timestamptz, _>(now + Duration::days(CACHE_DAYS))
    .execute(conn)
    .await?;
    Ok(Answer {
        translated: Some(made.text),
        provider: translator.name(),
        quality: Some(made.quality),
    })
}

#[derive(InputObject)]
pub struct TranslateInput {
    pub text: String,
    pub from: Language,
    pub to: Language,
    #[graphql(default_with = "TranslationContext::UiText")]
    pub context: TranslationContext,
}

/// What `translate` found.
#[derive(SimpleObject)]
pub struct Translation {
    /// Null when nothing the server knows translates the text.
    pub translated_text: Option<String>,
    /// `dictionary` (the shared, verified terms), `cache` (the tenant's earlier
    /// translations) or the provider asked (`builtin:reference`: the dictionary whatever
    /// the case and the intent vocabulary, no machine translation).
    pub provider: String,
    /// 0 to 1.
    pub quality: Option<crate::graphql::scalars::Decimal>,
}

impl From<Answer> for Translation {
    fn from(answer: Answer) -> Self {
        Translation {
            translated_text: answer.translated,
            provider: answer.provider.to_owned(),
            quality: answer.quality.map(crate::graphql::scalars::Decimal),
        }
    }
}

crate::payload!(TranslatePayload { translation: Translation } from Answer);

#[derive(Default)]
pub struct TranslationMutation;

#[Object]
impl TranslationMutation {
    /// Translates a text between English and French (admins and partners): see
    /// `Translation.provider` for where the answer came from.
    #[graphql(guard = "Access::Ingest")]
    async fn translate(
        &self,
        ctx: &Context<'_>,
        input: TranslateInput,
    ) -> AppResult<TranslatePayload> {
        write_payload(ctx, |conn, scope| {
            async move {
                let request = Request {
                    text: &input.text,
                    from: input.from,
                    to: input.to,
                    context: input.context,
                };
                translate(conn, scope, &ReferenceTranslator, request, Utc::now()).await
            }
            .scope_boxed()
        })
        .await
    }
}
