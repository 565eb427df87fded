//! Aggregates of customers and of their orders (see [`crate::graphql::aggregate`]).

use async_graphql::{Context, InputObject, Object, SimpleObject, ID};
use chrono::{DateTime, Utc};
use diesel::pg::Pg;
use diesel::query_builder::QueryFragment;
use serde::Deserialize;

use super::graphql::{customer_filter, CustomerFilter};
use super::model::ChurnRisk;
use super::ops;
use crate::auth::Access;
use crate::db::aggregate::{AsField, Rollup, RollupSpec};
use crate::db::Tenant;
use crate::error::AppResult;
use crate::graphql::aggregate::{Aggregate, Aggregated};
use crate::graphql::scalars::{parse_optional_id, Decimal};

crate::aggregate_fields!(pub CustomerGroupField {
    Segment => ("segment", "t.segment"),
    ChurnRisk => ("churn_risk", "t.churn_risk"),
    IsClubMember => ("is_club_member", "t.is_club_member"),
});

crate::aggregate_fields!(pub CustomerNumericField {
    Ltv => ("ltv", "t.ltv"),
    TotalDeposit => ("total_deposit", "t.total_deposit"),
    TotalWithdraw => ("total_withdraw", "t.total_withdraw"),
    PointsBalance => ("points_balance", "t.points_balance"),
    PointsLifetime => ("points_lifetime", "t.points_lifetime"),
    CumulativeDays => ("cumulative_days", "t.cumulative_days"),
});

crate::aggregate_fields!(pub CustomerTimeField {
    CreatedAt => ("created_at", "t.created_at"),
    LastActivityAt => ("last_activity_at", "t.last_activity_at"),
});

/// One aggregate (sum, average, minimum or maximum) per numeric field of customers.
#[derive(SimpleObject, Deserialize, Default)]
pub struct CustomerNumbers {
    pub ltv: Option<Decimal>,
    pub total_deposit: Option<Decimal>,
    pub total_withdraw: Option<Decimal>,
    pub points_balance: Option<Decimal>,
    pub points_lifetime: Option<Decimal>,
    pub cumulative_days: Option<Decimal>,
}

/// The values a customer group shares (fields not grouped by are null).
#[derive(SimpleObject, Deserialize)]
pub struct CustomerKey {
    pub segment: Option<String>,
    #[serde(default, deserialize_with = "ChurnRisk::from_db")]
    pub churn_risk: Option<ChurnRisk>,
    pub is_club_member: Option<bool>,
}

crate::group_order_by!(CustomerGroupOrderBy, CustomerNumericField);

pub struct Customers;

impl Aggregated for Customers {
    const NAME: &'static str = "Customer";
    type Filter = ops::CustomerFilter;
    type Numbers = CustomerNumbers;
    type Key = CustomerKey;
    type GroupField = CustomerGroupField;
    type NumericField = CustomerNumericField;
    type TimeField = CustomerTimeField;
    type GroupOrderBy = CustomerGroupOrderBy;

    fn rows(scope: Tenant, filter: &Self::Filter) -> Box<dyn QueryFragment<Pg> + Send> {
        Box::new(ops::filtered(scope, filter))
    }

    fn rollup(scope: Tenant, filter: &Self::Filter) -> Option<Rollup> {
        Some(Rollup {
            spec: &CUSTOMER_ROLLUP,
            rows: Box::new(ops::customer_rollup_rows(scope, filter)?),
            range: (None, None),
        })
    }
}

/// What `customer_rollups` keeps.
static CUSTOMER_ROLLUP: RollupSpec = RollupSpec {
    keys: &["segment", "churn_risk", "is_club_member"],
    sums: &["ltv"],
    time: None,
};

crate::aggregate_fields!(pub OrderGroupField {
    Status => ("status", "t.status"),
    IsClubShipment => ("is_club_shipment", "t.is_club_shipment"),
    CustomerId => ("customer_id", "t.customer_id"),
});

crate::aggregate_fields!(pub OrderNumericField {
    OrderTotal => ("order_total", "t.order_total"),
    Subtotal => ("subtotal", "t.subtotal"),
    DiscountTotal => ("discount_total", "t.discount_total"),
});

crate::aggregate_fields!(pub OrderTimeField {
    OrderedAt => ("ordered_at", "t.ordered_at"),
    CreatedAt => ("created_at", "t.created_at"),
});

#[derive(SimpleObject, Deserialize, Default)]
pub struct OrderNumbers {
    pub order_total: Option<Decimal>,
    pub subtotal: Option<Decimal>,
    pub discount_total: Option<Decimal>,
}

#[derive(SimpleObject, Deserialize)]
pub struct OrderKey {
    pub status: Option<String>,
    pub is_club_shipment: Option<bool>,
    pub customer_id: Option<ID>,
}

/// Which orders an aggregate reads.
#[derive(InputObject, Default)]
pub struct OrderFilter {
    pub customer_id: Option<ID>,
    pub status: Option<String>,
    pub is_club_shipment: Option<bool>,
    /// Ordered at or after this time.
    pub ordered_from: Option<DateTime<Utc>>,
    /// Ordered before this time.
    pub ordered_to: Option<DateTime<Utc>>,
}

crate::group_order_by!(OrderGroupOrderBy, OrderNumericField);

pub struct Orders;

impl Aggregated for Orders {
    const NAME: &'static str = "Order";
    type Filter = ops::OrderFilter;
    type Numbers = OrderNumbers;
    type Key = OrderKey;
    type GroupField = OrderGroupField;
    type NumericField = OrderNumericField;
    type TimeField = OrderTimeField;
    type GroupOrderBy = OrderGroupOrderBy;

    fn rows(scope: Tenant, filter: &Self::Filter) -> Box<dyn QueryFragment<Pg> + Send> {
        Box::new(ops::orders_filtered(scope, filter))
    }

    fn rollup(scope: Tenant, filter: &Self::Filter) -> Option<Rollup> {
        Some(Rollup {
            spec: &ORDER_ROLLUP,
            rows: Box::new(ops::order_rollup_rows(scope, filter)?),
            range: (filter.ordered_from, filter.ordered_to),
        })
    }
}

/// What `order_rollups` keeps (per quarter hour of `ordered_at`).
static ORDER_ROLLUP: RollupSpec = RollupSpec {
    keys: &["status", "is_club_shipment"],
    sums: &["order_total", "subtotal", "discount_total"],
    time: Some(<OrderTimeField as AsField>::FIELDS[0]),
};

#[derive(Default)]
pub struct CustomersAnalyticsQuery;

#[Object]
impl CustomersAnalyticsQuery {
    /// Counts, sums, groups and time series of the customers `filter` selects (the
    /// filter of `customers`).
    #[graphql(guard = "Access::Read")]
    async fn customers_aggregate(
        &self,
        ctx: &Context<'_>,
        filter: Option<CustomerFilter>,
    ) -> AppResult<Aggregate<Customers>> {
        Ok(Aggregate::new(ctx, customer_filter(filter)?))
    }

    /// Counts, sums, groups and time series of orders (revenue per day, per status, per
    /// customer).
    #[graphql(guard = "Access::Read")]
    async fn orders_aggregate(
        &self,
        ctx: &Context<'_>,
        filter: Option<OrderFilter>,
    ) -> AppResult<Aggregate<Orders>> {
        let filter = filter.unwrap_or_default();
        if filter.status.as_ref().is_some_and(|s| s.len() > 50) {
            return Err(crate::error::AppError::bad_input(
                &["filter", "status"],
                "status must be at most 50 characters",
            ));
        }
        let filter = ops::OrderFilter {
            customer_id: parse_optional_id(&filter.customer_id, &["filter", "customerId"])?,
            status: filter.status,
            is_club_shipment: filter.is_club_shipment,
            ordered_from: filter.ordered_from,
            ordered_to: filter.ordered_to,
        };
        Ok(Aggregate::new(ctx, filter))
    }
}
