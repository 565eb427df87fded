//! The growth insights computation. One SQL pass aggregates the period's live leads; the
//! figures are then derived here by the formulas documented in `docs/domains.md`:
//!
//! - `share` = count / total leads; rates are fractions in [0, 1] rounded to 4 decimals.
//! - top intents: the 5 most frequent intents (ties broken alphabetically).
//! - urgency trend = week-over-week change of high-urgency leads, in percent:
//!   (last 7 days − the 7 days before) / the 7 days before × 100; 100 when only the last
//!   week has any, 0 when neither has.
//! - tone sentiment score (0–100) = 100 × share of professional tones (Professional,
//!   Formal, Professionnel, Formel, case-insensitive).
//! - engagement score (0–100) = 50 × average confidence + 30 × (high + ½ medium urgency)
//!   / total + 20 × min(total, 100) / 100.
//! - confidence trajectory: average confidence per UTC day.
//! - predictive insights: EN and FR texts from the rules in `predictive_insights`.

use bigdecimal::{BigDecimal, ToPrimitive};
use chrono::{DateTime, NaiveDate, Utc};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Jsonb, Nullable, Numeric, Timestamptz, Uuid as SqlUuid};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::db::schema::growth_brain;
use crate::db::Tenant;
use crate::domain::{events, user_error, OpResult, UserErrorCode};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Counted {
    pub name: String,
    pub count: i64,
    pub share: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct DailyConfidence {
    pub date: NaiveDate,
    pub avg_confidence: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct Texts {
    pub summary: String,
    pub recommendations: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Insights {
    pub period_start: DateTime<Utc>,
    pub period_end: DateTime<Utc>,
    pub total_leads: i64,
    pub top_intents: Vec<Counted>,
    pub urgency: (i64, i64, i64),
    pub urgency_trend_percentage: f64,
    pub tone_distribution: Vec<Counted>,
    pub tone_sentiment_score: f64,
    pub avg_confidence: Option<f64>,
    pub confidence_trajectory: Vec<DailyConfidence>,
    pub language_ratio: (f64, f64),
    pub engagement_score: f64,
    pub insights_en: Texts,
    pub insights_fr: Texts,
    pub analyzed_at: DateTime<Utc>,
}

#[derive(QueryableByName)]
struct Aggregates {
    #[diesel(sql_type = BigInt)]
    total: i64,
    #[diesel(sql_type = Jsonb)]
    intents: serde_json::Value,
    #[diesel(sql_type = Jsonb)]
    tones: serde_json::Value,
    #[diesel(sql_type = BigInt)]
    high: i64,
    #[diesel(sql_type = BigInt)]
    medium: i64,
    #[diesel(sql_type = BigInt)]
    low: i64,
    #[diesel(sql_type = BigInt)]
    high_this_week: i64,
    #[diesel(sql_type = BigInt)]
    high_last_week: i64,
    #[diesel(sql_type = Nullable<Numeric>)]
    avg_confidence: Option<BigDecimal>,
    #[diesel(sql_type = Jsonb)]
    trajectory: serde_json::Value,
    #[diesel(sql_type = BigInt)]
    english: i64,
    #[diesel(sql_type = BigInt)]
    french: i64,
}

const AGGREGATES_SQL: &str = r#"
WITH live AS (
    SELECT intent, tone, urgency, confidence_score, language, created_at
    FROM lead_memory
    WHERE tenant_id = $1 AND NOT deleted AND NOT archived AND created_at >= $2 AND created_at < $3
)
SELECT
    (SELECT count(*) FROM live) AS total,
    (SELECT coalesce(jsonb_agg(jsonb_build_object('name', intent, 'count', n)), '[]')
     FROM (SELECT intent, count(*) AS n FROM live WHERE intent IS NOT NULL GROUP BY intent) i) AS intents,
    (SELECT coalesce(jsonb_agg(jsonb_build_object('name', tone, 'count', n)), '[]')
     FROM (SELECT tone, count(*) AS n FROM live WHERE tone IS NOT NULL GROUP BY tone) t) AS tones,
    (SELECT count(*) FROM live WHERE urgency = 'high') AS high,
    (SELECT count(*) FROM live WHERE urgency = 'medium') AS medium,
    (SELECT count(*) FROM live WHERE urgency = 'low') AS low,
    (SELECT count(*) FROM live WHERE urgency = 'high' AND created_at >= $3 - interval '7 days') AS high_this_week,
    (SELECT count(*) FROM live WHERE urgency = 'high' AND created_at >= $3 - interval '14 days'
                                     AND created_at < $3 - interval '7 days') AS high_last_week,
    (SELECT avg(confidence_score) FROM live) AS avg_confidence,
    (SELECT coalesce(jsonb_agg(jsonb_build_object('date', day, 'avg', avg) ORDER BY day), '[]')
     FROM (SELECT (created_at AT TIME ZONE 'UTC')::date AS day, avg(confidence_score) AS avg
           FROM live WHERE confidence_score IS NOT NULL GROUP BY 1) d) AS trajectory,
    (SELECT count(*) FROM live WHERE language = 'en') AS english,
    (SELECT count(*) FROM live WHERE language = 'fr') AS french
"#;

fn round(value: f64, decimals: i32) -> f64 {
    let factor = 10f64.powi(decimals);
    (value * factor).round() / factor
}

fn ranked(value: &serde_json::Value, total: i64, limit: usize) -> Vec<Counted> {
    let mut items: Vec<Counted> = value
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| {
                    Some(Counted {
                        name: v["name"].as_str()?.to_owned(),
                        count: v["count"].as_i64()?,
                        share: 0.0,
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    items.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.name.cmp(&b.name)));
    items.truncate(limit);
    for item in &mut items {
        item.share = if total > 0 {
            round(item.count as f64 / total as f64, 4)
        } else {
            0.0
        };
    }
    items
}

const PROFESSIONAL_TONES: &[&str] = &["professional", "formal", "professionnel", "formel"];

/// Derives every figure from the period's aggregates (pure: tested on its own too).
fn derive(a: Aggregates, start: DateTime<Utc>, end: DateTime<Utc>) -> Insights {
    let total = a.total;
    let share = |n: i64| {
        if total > 0 {
            n as f64 / total as f64
        } else {
            0.0
        }
    };
    let top_intents = ranked(&a.intents, total, 5);
    let tone_distribution = ranked(&a.tones, total, usize::MAX);
    let professional: i64 = tone_distribution
        .iter()
        .filter(|t| PROFESSIONAL_TONES.contains(&t.name.to_lowercase().as_str()))
        .map(|t| t.count)
        .sum();
    let urgency_trend_percentage = match (a.high_this_week, a.high_last_week) {
        (_, 0) if a.high_this_week > 0 => 100.0,
        (_, 0) => 0.0,
        (now, before) => round((now - before) as f64 / before as f64 * 100.0, 2),
    };
    let avg_confidence = a
        .avg_confidence
        .as_ref()
        .and_then(|c| c.to_f64())
        .map(|c| round(c, 3));
    let confidence_trajectory = a
        .trajectory
        .as_array()
        .map(|days| {
            days.iter()
                .filter_map(|d| {
                    Some(DailyConfidence {
                        date: d["date"].as_str()?.parse().ok()?,
                        avg_confidence: round(d["avg"].as_f64()?, 3),
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    let engagement = 50.0 * avg_confidence.unwrap_or(0.0)
        + 30.0 * share(a.high)
        + 15.0 * share(a.medium)
        + 20.0 * (total.min(100) as f64 / 100.0);
    let mut insights = Insights {
        period_start: start,
        period_end: end,
        total_leads: total,
        top_intents,
        urgency: (a.high, a.medium, a.low),
        urgency_trend_percentage,
        tone_distribution,
        tone_sentiment_score: round(100.0 * share(professional), 2),
        avg_confidence,
        confidence_trajectory,
        language_ratio: (round(share(a.english), 4), round(share(a.french), 4)),
        engagement_score: round(engagement.clamp(0.0, 100.0), 2),
        insights_en: Texts::default(),
        insights_fr: Texts::default(),
        analyzed_at: Utc::now(),
    };
    let (en, fr) = predictive_insights(&insights);
    insights.insights_en = en;
    insights.insights_fr = fr;
    insights
}

/// The bilingual recommendations, each from one documented rule:
/// no leads → say so; top intent → name it with its share; urgency trend beyond ±10 % →
/// react to it; average confidence below 0.6 → review prompts; the majority language →
/// answer in it first.
pub fn predictive_insights(i: &Insights) -> (Texts, Texts) {
    if i.total_leads == 0 {
        return (
            Texts {
                summary: "No live leads in this period.".into(),
                recommendations: vec![],
            },
            Texts {
                summary: "Aucun lead actif sur cette période.".into(),
                recommendations: vec![],
            },
        );
    }
    let mut en = Texts::default();
    let mut fr = Texts::default();
    match <[Counted]>::first(&i.top_intents) {
        Some(top) => {
            let pct = (top.share * 100.0).round();
            en.summary = format!(
                "{} live leads; the top intent is {} ({pct}%).",
                i.total_leads, top.name
            );
            fr.summary = format!(
                "{} leads actifs ; l'intention principale est {} ({pct} %).",
                i.total_leads, top.name
            );
        }
        None => {
            en.summary = format!("{} live leads, none with a detected intent.", i.total_leads);
            fr.summary = format!("{} leads actifs, sans intention détectée.", i.total_leads);
        }
    }
    let trend = i.urgency_trend_percentage;
    if trend > 10.0 {
        en.recommendations.push(format!(
            "High-urgency leads are up {trend}% week over week: shorten response times."
        ));
        fr.recommendations.push(format!("Les leads urgents augmentent de {trend} % sur une semaine : raccourcissez les délais de réponse."));
    } else if trend < -10.0 {
        en.recommendations.push(format!(
            "High-urgency leads are down {}% week over week: check lead sources.",
            -trend
        ));
        fr.recommendations.push(format!(
            "Les leads urgents baissent de {} % sur une semaine : vérifiez les sources de leads.",
            -trend
        ));
    }
    if i.avg_confidence.is_some_and(|c| c < 0.6) {
        en.recommendations
            .push("AI confidence is low: review the classification prompts.".into());
        fr.recommendations.push(
            "La confiance de l'IA est faible : revoyez les prompts de classification.".into(),
        );
    }
    if i.language_ratio.1 > i.language_ratio.0 {
        en.recommendations
            .push("Most leads write in French: answer in French first.".into());
        fr.recommendations.push(
            "La plupart des leads écrivent en français : répondez d'abord en français.".into(),
        );
    } else {
        en.recommendations
            .push("Most leads write in English: answer in English first.".into());
        fr.recommendations
            .push("La plupart des leads écrivent en anglais : répondez d'abord en anglais.".into());
    }
    (en, fr)
}

/// Computes the insights for a period (default: the 30 days before now) and upserts
/// the tenant's one `growth_brain` row.
pub async fn refresh(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
    start: Option<DateTime<Utc>>,
    end: Option<DateTime<Utc>>,
) -> OpResult<Insights> {
    let end = end.unwrap_or_else(Utc::now);
    let start = start.unwrap_or(end - chrono::Duration::days(30));
    if end <= start {
        return Err(user_error(
            UserErrorCode::Invalid,
            &["input", "periodEnd"],
            "periodEnd must be after periodStart",
        ));
    }
    let aggregates: Aggregates = diesel::sql_query(AGGREGATES_SQL)
        .bind::<SqlUuid, _>(scope.id())
        .bind::<Timestamptz, _>(start)
        .bind::<Timestamptz, _>(end)
        .get_result(conn)
        .await?;
    let i = derive(aggregates, start, end);
    let counted = |items: &[Counted], key: &str| {
        serde_json::Value::Array(
            items
                .iter()
                .map(|c| json!({ key: c.name, "count": c.count, "share": c.share }))
                .collect(),
        )
    };
    let to_decimal = |v: f64| v.to_string().parse::<BigDecimal>().ok();
    use growth_brain as g;
    let values = (
        g::analysis_period_start.eq(i.period_start),
        g::analysis_period_end.eq(i.period_end),
        g::total_leads.eq(i.total_leads as i32),
        g::top_intents.eq(counted(&i.top_intents, "intent")),
        g::urgency_distribution
            .eq(json!({ "high": i.urgency.0, "medium": i.urgency.1, "low": i.urgency.2 })),
        g::urgency_trend_percentage.eq(to_decimal(i.urgency_trend_percentage)),
        g::tone_distribution.eq(counted(&i.tone_distribution, "tone")),
        g::tone_sentiment_score.eq(to_decimal(i.tone_sentiment_score)),
        g::avg_confidence.eq(i.avg_confidence.and_then(to_decimal)),
        g::confidence_trajectory
            .eq(serde_json::to_value(&i.confidence_trajectory).expect("serialisable")),
        g::language_ratio.eq(json!({ "en": i.language_ratio.0, "fr": i.language_ratio.1 })),
        g::engagement_score.eq(to_decimal(i.engagement_score)),
        g::predictive_insights.eq(json!({ "en": i.insights_en, "fr": i.insights_fr })),
        g::analyzed_at.eq(i.analyzed_at),
    );
    diesel::insert_into(g::table)
        .values((g::tenant_id.eq(scope.id()), values.clone()))
        .on_conflict(g::tenant_id)
        .do_update()
        .set(values)
        .execute(conn)
        .await?;
    events::record(
        conn,
        scope,
        "growth.insights_refreshed",
        scope.id(),
        json!({ "totalLeads": i.total_leads }),
    )
    .await?;
    Ok(i)
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = growth_brain, check_for_backend(diesel::pg::Pg))]
pub struct StoredInsights {
    pub analysis_period_start: DateTime<Utc>,
    pub analysis_period_end: DateTime<Utc>,
    pub total_leads: i32,
    pub top_intents: serde_json::Value,
    pub urgency_distribution: serde_json::Value,
    pub urgency_trend_percentage: Option<BigDecimal>,
    pub tone_distribution: serde_json::Value,
    pub tone_sentiment_score: Option<BigDecimal>,
    pub avg_confidence: Option<BigDecimal>,
    pub confidence_trajectory: serde_json::Value,
    pub language_ratio: serde_json::Value,
    pub engagement_score: Option<BigDecimal>,
    pub predictive_insights: serde_json::Value,
    pub analyzed_at: DateTime<Utc>,
}

pub async fn stored(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
) -> QueryResult<Option<StoredInsights>> {
    growth_brain::table
        .filter(growth_brain::tenant_id.eq(scope.id()))
        .select(StoredInsights::as_select())
        .first(conn)
        .await
        .optional()
}

/// Whether the weekly refresh is due (never analysed, or analysed over 7 days ago).
pub async fn weekly_refresh_due(conn: &mut AsyncPgConnection, scope: Tenant) -> QueryResult<bool> {
    let last: Option<DateTime<Utc>> = growth_brain::table
        .filter(growth_brain::tenant_id.eq(scope.id()))
        .select(growth_brain::analyzed_at)
        .first(conn)
        .await
        .optional()?;
    Ok(last.is_none_or(|at| Utc::now() - at > chrono::Duration::days(7)))
}
