use async_graphql::{Context, Enum, InputObject, Object, SimpleObject};
use bigdecimal::ToPrimitive;
use chrono::{DateTime, NaiveDate, Utc};
use scoped_futures::ScopedFutureExt;

use super::ops::{self, StoredInsights};
use crate::auth::Access;
use crate::domain::write_payload;
use crate::error::AppResult;
use crate::graphql::context::request_context;

#[derive(SimpleObject)]
pub struct IntentCount {
    pub intent: String,
    pub count: i64,
    /// Fraction of the period's leads, 0 to 1.
    pub share: f64,
}

#[derive(SimpleObject)]
pub struct ToneCount {
    pub tone: String,
    pub count: i64,
    pub share: f64,
}

#[derive(SimpleObject)]
pub struct UrgencyDistribution {
    pub high: i64,
    pub medium: i64,
    pub low: i64,
}

#[derive(SimpleObject)]
pub struct ConfidencePoint {
    pub date: NaiveDate,
    pub avg_confidence: f64,
}

#[derive(SimpleObject)]
pub struct LanguageRatio {
    pub en: f64,
    pub fr: f64,
}

#[derive(SimpleObject)]
pub struct PredictiveInsights {
    pub summary: String,
    pub recommendations: Vec<String>,
}

#[derive(Enum, Clone, Copy, PartialEq, Eq)]
pub enum InsightLanguage {
    En,
    Fr,
}

/// Weekly growth insights over the tenant's live leads (seed 001 `growth_brain`).
pub struct GrowthInsights(StoredInsights);

impl From<StoredInsights> for GrowthInsights {
    fn from(insights: StoredInsights) -> Self {
        GrowthInsights(insights)
    }
}

fn f(v: &Option<bigdecimal::BigDecimal>) -> Option<f64> {
    v.as_ref().and_then(|d| d.to_f64())
}

fn counted(value: &serde_json::Value, key: &str) -> Vec<(String, i64, f64)> {
    value
        .as_array()
        .map(|items| {
            items
                .iter()
                .filter_map(|i| {
                    Some((
                        i[key].as_str()?.to_owned(),
                        i["count"].as_i64()?,
                        i["share"].as_f64()?,
                    ))
                })
                .collect()
        })
        .unwrap_or_default()
}

#[Object]
impl GrowthInsights {
    async fn analysis_period_start(&self) -> DateTime<Utc> {
        self.0.analysis_period_start
    }
    async fn analysis_period_end(&self) -> DateTime<Utc> {
        self.0.analysis_period_end
    }
    async fn total_leads(&self) -> i32 {
        self.0.total_leads
    }
    /// The five most frequent intents (ties alphabetical).
    async fn top_intents(&self) -> Vec<IntentCount> {
        crate::graphql::connection::bounded(counted(&self.0.top_intents, "intent"))
            .into_iter()
            .map(|(intent, count, share)| IntentCount {
                intent,
                count,
                share,
            })
            .collect()
    }
    async fn urgency_distribution(&self) -> UrgencyDistribution {
        let u = &self.0.urgency_distribution;
        UrgencyDistribution {
            high: u["high"].as_i64().unwrap_or(0),
            medium: u["medium"].as_i64().unwrap_or(0),
            low: u["low"].as_i64().unwrap_or(0),
        }
    }
    /// Week-over-week change of high-urgency leads, in percent.
    async fn urgency_trend_percentage(&self) -> Option<f64> {
        f(&self.0.urgency_trend_percentage)
    }
    async fn tone_distribution(&self) -> Vec<ToneCount> {
        crate::graphql::connection::bounded(counted(&self.0.tone_distribution, "tone"))
            .into_iter()
            .map(|(tone, count, share)| ToneCount { tone, count, share })
            .collect()
    }
    /// 0 to 100: the share of professional tones.
    async fn tone_sentiment_score(&self) -> Option<f64> {
        f(&self.0.tone_sentiment_score)
    }
    async fn avg_confidence(&self) -> Option<f64> {
        f(&self.0.avg_confidence)
    }
    async fn confidence_trajectory(&self) -> Vec<ConfidencePoint> {
        let days = serde_json::from_value::<Vec<ops::DailyConfidence>>(
            self.0.confidence_trajectory.clone(),
        );
        crate::graphql::connection::bounded(days.unwrap_or_default())
            .into_iter()
            .map(|d| ConfidencePoint {
                date: d.date,
                avg_confidence: d.avg_confidence,
            })
            .collect()
    }
    async fn language_ratio(&self) -> LanguageRatio {
        let r = &self.0.language_ratio;
        LanguageRatio {
            en: r["en"].as_f64().unwrap_or(0.0),
            fr: r["fr"].as_f64().unwrap_or(0.0),
        }
    }
    /// 0 to 100 (formula in docs/domains.md).
    async fn engagement_score(&self) -> Option<f64> {
        f(&self.0.engagement_score)
    }
    async fn predictive_insights(
        &self,
        #[graphql(default_with = "InsightLanguage::En")] language: InsightLanguage,
    ) -> PredictiveInsights {
        let key = match language {
            InsightLanguage::En => "en",
            InsightLanguage::Fr => "fr",
        };
        let texts: ops::Texts =
            serde_json::from_value(self.0.predictive_insights[key].clone()).unwrap_or_default();
        PredictiveInsights {
            summary: texts.summary,
            recommendations: texts.recommendations,
        }
    }
    async fn analyzed_at(&self) -> DateTime<Utc> {
        self.0.analyzed_at
    }
}

#[derive(Default)]
pub struct GrowthQuery;

#[Object]
impl GrowthQuery {
    /// The latest insights (null until the first refresh).
    #[graphql(guard = "Access::Read")]
    async fn growth_insights(&self, ctx: &Context<'_>) -> AppResult<Option<GrowthInsights>> {
        let request = request_context(ctx)?;
        Ok(request
            .db
            .query(|conn, scope| ops::stored(conn, scope).scope_boxed())
            .await?
            .map(GrowthInsights))
    }
}

#[derive(InputObject, Default)]
pub struct RefreshGrowthInsightsInput {
    /// Default: 30 days before periodEnd.
    pub period_start: Option<DateTime<Utc>>,
    /// Default: now.
    pub period_end: Option<DateTime<Utc>>,
}

crate::payload!(RefreshGrowthInsightsPayload {
    growth_insights: GrowthInsights
} from Option<StoredInsights>);

#[derive(Default)]
pub struct GrowthMutation;

#[Object]
impl GrowthMutation {
    /// Recomputes the insights now (the scheduler also does it weekly).
    #[graphql(guard = "Access::Admin")]
    async fn refresh_growth_insights(
        &self,
        ctx: &Context<'_>,
        input: Option<RefreshGrowthInsightsInput>,
    ) -> AppResult<RefreshGrowthInsightsPayload> {
        let input = input.unwrap_or_default();
        write_payload(ctx, |conn, scope| {
            async move {
                ops::refresh(conn, scope, input.period_start, input.period_end).await?;
                Ok(ops::stored(conn, scope).await?)
            }
            .scope_boxed()
        })
        .await
    }
}
