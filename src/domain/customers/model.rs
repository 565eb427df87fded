use bigdecimal::BigDecimal;
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use uuid::Uuid;

use crate::db::schema::{
    communication_preferences, customer_activities, customers, order_refunds, orders,
};

#[derive(Debug, Clone, Queryable, QueryableByName, Selectable, Identifiable)]
#[diesel(table_name = customers, check_for_backend(diesel::pg::Pg))]
pub struct Customer {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub external_id: Option<String>,
    pub email: Option<String>,
    pub name: Option<String>,
    pub phone: Option<String>,
    pub segment: Option<String>,
    pub churn_risk: Option<String>,
    pub ltv: BigDecimal,
    pub total_deposit: BigDecimal,
    pub total_withdraw: BigDecimal,
    pub last_activity_at: Option<DateTime<Utc>>,
    pub metadata: serde_json::Value,
    pub is_club_member: bool,
    pub points_balance: i64,
    pub points_lifetime: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// Profile fields written by `upsertCustomer`; `None` leaves a column as it is.
#[derive(Debug, Clone, Default, AsChangeset)]
#[diesel(table_name = customers)]
pub struct CustomerProfile {
    pub external_id: Option<String>,
    pub email: Option<String>,
    pub name: Option<String>,
    pub phone: Option<String>,
    pub segment: Option<String>,
    pub churn_risk: Option<String>,
    pub metadata: Option<serde_json::Value>,
}

#[derive(Debug, Insertable)]
#[diesel(table_name = customers)]
pub struct NewCustomer {
    pub tenant_id: Uuid,
    pub external_id: Option<String>,
    pub email: Option<String>,
    pub name: Option<String>,
    pub phone: Option<String>,
    pub segment: Option<String>,
    pub churn_risk: Option<String>,
    pub metadata: serde_json::Value,
}

#[derive(Debug, Clone, Queryable, QueryableByName, Selectable, Identifiable)]
#[diesel(table_name = customer_activities, check_for_backend(diesel::pg::Pg))]
pub struct Activity {
    pub id: Uuid,
    pub customer_id: Uuid,
    pub activity_type: String,
    pub activity_description: Option<String>,
    pub activity_data: serde_json::Value,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Insertable)]
#[diesel(table_name = customer_activities)]
pub struct NewActivity<'a> {
    pub tenant_id: Uuid,
    pub customer_id: Uuid,
    pub activity_type: &'a str,
    pub activity_description: Option<&'a str>,
    pub activity_data: serde_json::Value,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Queryable, QueryableByName, Selectable, Identifiable)]
#[diesel(table_name = orders, check_for_backend(diesel::pg::Pg))]
pub struct Order {
    pub id: Uuid,
    pub customer_id: Uuid,
    pub crm_order_id: Option<String>,
    pub order_number: Option<String>,
    pub status: String,
    pub subtotal: BigDecimal,
    pub discount_total: BigDecimal,
    pub order_total: BigDecimal,
    pub is_club_shipment: bool,
    pub line_items: serde_json::Value,
    pub ordered_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
}

/// A refund of an order (whole or part) and the points it took back.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = order_refunds)]
#[diesel(check_for_backend(diesel::pg::Pg))]
pub struct OrderRefund {
    pub id: Uuid,
    pub order_id: Uuid,
    pub amount: BigDecimal,
    pub points_reversed: i64,
    pub points_shortfall: i64,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Insertable)]
#[diesel(table_name = orders)]
pub struct NewOrder<'a> {
    pub tenant_id: Uuid,
    pub customer_id: Uuid,
    pub crm_order_id: Option<&'a str>,
    pub order_number: Option<&'a str>,
    pub status: &'a str,
    pub subtotal: BigDecimal,
    pub discount_total: BigDecimal,
    pub order_total: BigDecimal,
    pub is_club_shipment: bool,
    pub line_items: serde_json::Value,
    pub ordered_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Queryable, QueryableByName, Selectable, Identifiable)]
#[diesel(table_name = communication_preferences, check_for_backend(diesel::pg::Pg))]
pub struct CommunicationPreference {
    pub id: Uuid,
    pub customer_id: Uuid,
    pub channel: String,
    pub communication_type: String,
    pub opted_in: bool,
    pub unsubscribed_at: Option<DateTime<Utc>>,
    pub unsubscribe_reason: Option<String>,
    pub updated_at: DateTime<Utc>,
}

text_enum!(pub ChurnRisk {
    Low => "low",
    Medium => "medium",
    High => "high",
});

text_enum!(pub CommunicationType {
    Marketing => "marketing",
    MonthlyStatus => "monthly_status",
    ExpirationWarning => "expiration_warning",
    Loyalty => "loyalty",
    Transactional => "transactional",
});
