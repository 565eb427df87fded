//! Aggregates of a campaign's recipients (see [`crate::graphql::aggregate`]): recipients
//! by status or channel, opens per hour. The numeric fields are the funnel's steps, 1
//! when the recipient reached the step and 0 when not: their sums count the step and
//! their averages are its rate.

use async_graphql::SimpleObject;
use diesel::pg::Pg;
use diesel::query_builder::QueryFragment;
use serde::Deserialize;
use uuid::Uuid;

use super::model::{CampaignChannel, RecipientStatus};
use super::ops;
use crate::db::aggregate::{Rollup, RollupSpec};
use crate::db::Tenant;
use crate::graphql::aggregate::Aggregated;
use crate::graphql::scalars::Decimal;

crate::aggregate_fields!(pub RecipientGroupField {
    Status => ("status", "t.status"),
    Channel => ("channel", "t.channel"),
});

crate::aggregate_fields!(pub RecipientNumericField {
    Sent => ("sent", "(t.sent_at IS NOT NULL)::int"),
    Delivered => ("delivered", "(t.delivered_at IS NOT NULL)::int"),
    Opened => ("opened", "(t.opened_at IS NOT NULL)::int"),
    Clicked => ("clicked", "(t.clicked_at IS NOT NULL)::int"),
    Failed => ("failed", "(t.failed_at IS NOT NULL)::int"),
});

crate::aggregate_fields!(pub RecipientTimeField {
    CreatedAt => ("created_at", "t.created_at"),
    SentAt => ("sent_at", "t.sent_at"),
    DeliveredAt => ("delivered_at", "t.delivered_at"),
    OpenedAt => ("opened_at", "t.opened_at"),
    ClickedAt => ("clicked_at", "t.clicked_at"),
});

crate::group_order_by!(CampaignRecipientGroupOrderBy, RecipientNumericField);

/// One aggregate per funnel step of recipients (sum: how many reached it; avg: the rate).
#[derive(SimpleObject, Deserialize, Default)]
pub struct CampaignRecipientNumbers {
    pub sent: Option<Decimal>,
    pub delivered: Option<Decimal>,
    pub opened: Option<Decimal>,
    pub clicked: Option<Decimal>,
    pub failed: Option<Decimal>,
}

/// The values a recipient group shares (fields not grouped by are null).
#[derive(SimpleObject, Deserialize)]
pub struct CampaignRecipientKey {
    #[serde(default, deserialize_with = "RecipientStatus::from_db")]
    pub status: Option<RecipientStatus>,
    #[serde(default, deserialize_with = "CampaignChannel::from_db")]
    pub channel: Option<CampaignChannel>,
}

pub struct Recipients;

impl Aggregated for Recipients {
    const NAME: &'static str = "CampaignRecipient";
    /// The campaign and the filter of its `recipients`.
    type Filter = (Uuid, ops::RecipientFilter);
    type Numbers = CampaignRecipientNumbers;
    type Key = CampaignRecipientKey;
    type GroupField = RecipientGroupField;
    type NumericField = RecipientNumericField;
    type TimeField = RecipientTimeField;
    type GroupOrderBy = CampaignRecipientGroupOrderBy;

    fn rows(scope: Tenant, (campaign, filter): &Self::Filter) -> Box<dyn QueryFragment<Pg> + Send> {
        Box::new(ops::recipients_filtered(scope, *campaign, filter))
    }

    fn rollup(scope: Tenant, (campaign, filter): &Self::Filter) -> Option<Rollup> {
        Some(Rollup {
            spec: &RECIPIENT_ROLLUP,
            rows: Box::new(ops::recipient_rollup_rows(scope, *campaign, filter)),
            range: (None, None),
        })
    }
}

/// What `recipient_rollups` keeps.
static RECIPIENT_ROLLUP: RollupSpec = RollupSpec {
    keys: &["status", "channel"],
    sums: &["sent", "delivered", "opened", "clicked", "failed"],
    time: None,
};
