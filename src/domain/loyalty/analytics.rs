//! Aggregates of the points ledger and of redemptions (see
//! [`crate::graphql::aggregate`]): points earned and spent per week, redemptions by
//! status or reward.

use async_graphql::{Context, InputObject, Object, SimpleObject, ID};
use chrono::{DateTime, Utc};
use diesel::pg::Pg;
use diesel::query_builder::QueryFragment;
use serde::Deserialize;

use super::graphql::{redemption_filter, RedemptionFilter};
use super::model::{PointTransactionType, RedemptionStatus};
use super::ops;
use crate::auth::Access;
use crate::db::Tenant;
use crate::error::AppResult;
use crate::graphql::aggregate::{Aggregate, Aggregated};
use crate::graphql::scalars::{parse_optional_id, Decimal};

crate::aggregate_fields!(pub PointTransactionGroupField {
    TransactionType => ("transaction_type", "t.transaction_type"),
    CustomerId => ("customer_id", "t.customer_id"),
});

crate::aggregate_fields!(pub PointTransactionNumericField {
    Points => ("points", "t.points"),
    BalanceAfter => ("balance_after", "t.balance_after"),
});

crate::aggregate_fields!(pub PointTransactionTimeField {
    CreatedAt => ("created_at", "t.created_at"),
});

crate::group_order_by!(PointTransactionGroupOrderBy, PointTransactionNumericField);

/// One aggregate per numeric field of ledger entries.
#[derive(SimpleObject, Deserialize, Default)]
pub struct PointTransactionNumbers {
    pub points: Option<Decimal>,
    pub balance_after: Option<Decimal>,
}

/// The values a ledger group shares (fields not grouped by are null).
#[derive(SimpleObject, Deserialize)]
pub struct PointTransactionKey {
    #[serde(default, deserialize_with = "PointTransactionType::from_db")]
    pub transaction_type: Option<PointTransactionType>,
    pub customer_id: Option<ID>,
}

/// Which ledger entries an aggregate reads.
#[derive(InputObject, Default)]
pub struct PointTransactionFilter {
    pub customer_id: Option<ID>,
    pub transaction_type: Option<PointTransactionType>,
    /// Created at or after this time.
    pub created_from: Option<DateTime<Utc>>,
    /// Created before this time.
    pub created_to: Option<DateTime<Utc>>,
}

pub struct PointTransactions;

impl Aggregated for PointTransactions {
    const NAME: &'static str = "PointTransaction";
    type Filter = ops::PointTransactionFilter;
    type Numbers = PointTransactionNumbers;
    type Key = PointTransactionKey;
    type GroupField = PointTransactionGroupField;
    type NumericField = PointTransactionNumericField;
    type TimeField = PointTransactionTimeField;
    type GroupOrderBy = PointTransactionGroupOrderBy;

    fn rows(scope: Tenant, filter: &Self::Filter) -> Box<dyn QueryFragment<Pg> + Send> {
        Box::new(ops::point_transactions_filtered(scope, filter))
    }
}

crate::aggregate_fields!(pub RedemptionGroupField {
    Status => ("status", "t.status"),
    RewardId => ("reward_id", "t.reward_id"),
    CustomerId => ("customer_id", "t.customer_id"),
});

crate::aggregate_fields!(pub RedemptionNumericField {
    Quantity => ("quantity", "t.quantity"),
    PointsSpent => ("points_spent", "t.points_spent"),
});

crate::aggregate_fields!(pub RedemptionTimeField {
    CreatedAt => ("created_at", "t.created_at"),
    FulfilledAt => ("fulfilled_at", "t.fulfilled_at"),
});

crate::group_order_by!(RedemptionGroupOrderBy, RedemptionNumericField);

/// One aggregate per numeric field of redemptions.
#[derive(SimpleObject, Deserialize, Default)]
pub struct RedemptionNumbers {
    pub quantity: Option<Decimal>,
    pub points_spent: Option<Decimal>,
}

/// The values a redemption group shares (fields not grouped by are null).
#[derive(SimpleObject, Deserialize)]
pub struct RedemptionKey {
    #[serde(default, deserialize_with = "RedemptionStatus::from_db")]
    pub status: Option<RedemptionStatus>,
    pub reward_id: Option<ID>,
    pub customer_id: Option<ID>,
}

pub struct Redemptions;

impl Aggregated for Redemptions {
    const NAME: &'static str = "Redemption";
    type Filter = ops::RedemptionFilter;
    type Numbers = RedemptionNumbers;
    type Key = RedemptionKey;
    type GroupField = RedemptionGroupField;
    type NumericField = RedemptionNumericField;
    type TimeField = RedemptionTimeField;
    type GroupOrderBy = RedemptionGroupOrderBy;

    fn rows(scope: Tenant, filter: &Self::Filter) -> Box<dyn QueryFragment<Pg> + Send> {
        Box::new(ops::redemptions_filtered(scope, filter))
    }
}

#[derive(Default)]
pub struct LoyaltyAnalyticsQuery;

#[Object]
impl LoyaltyAnalyticsQuery {
    /// Counts, sums, groups and time series of the points ledger.
    #[graphql(guard = "Access::Read")]
    async fn point_transactions_aggregate(
        &self,
        ctx: &Context<'_>,
        filter: Option<PointTransactionFilter>,
    ) -> AppResult<Aggregate<PointTransactions>> {
        let filter = filter.unwrap_or_default();
        let filter = ops::PointTransactionFilter {
            customer_id: parse_optional_id(&filter.customer_id, &["filter", "customerId"])?,
            transaction_type: filter.transaction_type,
            created_from: filter.created_from,
            created_to: filter.created_to,
        };
        Ok(Aggregate::new(ctx, filter))
    }

    /// Counts, sums, groups and time series of the redemptions `filter` selects (the
    /// filter of `redemptions`).
    #[graphql(guard = "Access::Read")]
    async fn redemptions_aggregate(
        &self,
        ctx: &Context<'_>,
        filter: Option<RedemptionFilter>,
    ) -> AppResult<Aggregate<Redemptions>> {
        Ok(Aggregate::new(ctx, redemption_filter(filter)?))
    }
}
