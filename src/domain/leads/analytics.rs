//! Aggregates of leads (see [`crate::graphql::aggregate`]): leads by intent and urgency,
//! per day, with their confidence.

use async_graphql::{Context, Object, SimpleObject};
use diesel::pg::Pg;
use diesel::query_builder::QueryFragment;
use serde::Deserialize;

use super::graphql::{lead_filter, LeadFilter};
use super::model::{Language, Urgency};
use super::ops;
use crate::auth::Access;
use crate::db::Tenant;
use crate::error::AppResult;
use crate::graphql::aggregate::{Aggregate, Aggregated};
use crate::graphql::scalars::Decimal;

crate::aggregate_fields!(pub LeadGroupField {
    Intent => ("intent", "t.intent"),
    Urgency => ("urgency", "t.urgency"),
    Tone => ("tone", "t.tone"),
    Language => ("language", "t.language"),
    Tag => ("tag", "t.current_tag"),
    Archived => ("archived", "t.archived"),
});

crate::aggregate_fields!(pub LeadNumericField {
    ConfidenceScore => ("confidence_score", "t.confidence_score"),
});

crate::aggregate_fields!(pub LeadTimeField {
    CreatedAt => ("created_at", "t.created_at"),
    UpdatedAt => ("updated_at", "t.updated_at"),
});

crate::group_order_by!(LeadGroupOrderBy, LeadNumericField);

/// One aggregate (sum, average, minimum or maximum) per numeric field of leads.
#[derive(SimpleObject, Deserialize, Default)]
pub struct LeadNumbers {
    pub confidence_score: Option<Decimal>,
}

/// The values a lead group shares (fields not grouped by are null).
#[derive(SimpleObject, Deserialize)]
pub struct LeadKey {
    pub intent: Option<String>,
    #[serde(default, deserialize_with = "Urgency::from_db")]
    pub urgency: Option<Urgency>,
    pub tone: Option<String>,
    #[serde(default, deserialize_with = "Language::from_db")]
    pub language: Option<Language>,
    pub tag: Option<String>,
    pub archived: Option<bool>,
}

pub struct Leads;

impl Aggregated for Leads {
    const NAME: &'static str = "Lead";
    type Filter = ops::LeadFilter;
    type Numbers = LeadNumbers;
    type Key = LeadKey;
    type GroupField = LeadGroupField;
    type NumericField = LeadNumericField;
    type TimeField = LeadTimeField;
    type GroupOrderBy = LeadGroupOrderBy;

    fn rows(scope: Tenant, filter: &Self::Filter) -> Box<dyn QueryFragment<Pg> + Send> {
        Box::new(ops::filtered(scope, filter))
    }
}

#[derive(Default)]
pub struct LeadsAnalyticsQuery;

#[Object]
impl LeadsAnalyticsQuery {
    /// Counts, confidence, groups and time series of the leads `filter` selects (the
    /// filter of `leads`: archived and deleted leads only when asked for).
    #[graphql(guard = "Access::Read")]
    async fn leads_aggregate(
        &self,
        ctx: &Context<'_>,
        filter: Option<LeadFilter>,
    ) -> AppResult<Aggregate<Leads>> {
        Ok(Aggregate::new(ctx, lead_filter(filter)?))
    }
}
