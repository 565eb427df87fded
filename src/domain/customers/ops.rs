use bigdecimal::BigDecimal;
use chrono::{DateTime, Utc};
use diesel::dsl::{AsSelect, SqlTypeOf};
use diesel::pg::Pg;
use diesel::prelude::*;
use diesel::sql_types::Text;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use serde::{Deserialize, Serialize};
use serde_json::json;
use uuid::Uuid;

use super::model::{
    Activity, CommunicationPreference, Customer, CustomerProfile, NewActivity, NewCustomer,
    NewOrder, Order, OrderRefund,
};
use crate::db::filter::FilterSome;
use crate::db::page::{Cursor, PageRequest};
use crate::db::schema::{
    communication_preferences, customer_rollups, customers, order_refunds, order_rollups, orders,
};
use crate::db::sql::contains_pattern;
use crate::db::Tenant;
use crate::domain::loyalty::ops as loyalty;
use crate::domain::{check_money, events, idempotency, OpResult, UserError, UserErrorCode};
use crate::error::AppResult;

// ---- reads ------------------------------------------------------------------------------

pub async fn by_ids(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
    ids: &[Uuid],
) -> QueryResult<Vec<Customer>> {
    customers::table
        .filter(customers::tenant_id.eq(scope.id()))
        .filter(customers::id.eq_any(ids))
        .select(Customer::as_select())
        .load(conn)
        .await
}

pub async fn by_email(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
    email: &str,
) -> QueryResult<Option<Customer>> {
    customers::table
        .filter(customers::tenant_id.eq(scope.id()))
        .filter(lower(customers::email).eq(email.to_lowercase()))
        .select(Customer::as_select())
        .first(conn)
        .await
        .optional()
}

diesel::define_sql_function!(
    /// SQL `lower`: how customer emails are compared (the unique index is on it).
    fn lower(x: diesel::sql_types::Nullable<Text>) -> diesel::sql_types::Nullable<Text>
);

#[derive(Debug, Clone, Default)]
pub struct CustomerFilter {
    pub segment: Option<String>,
    pub churn_risk: Option<String>,
    pub is_club_member: Option<bool>,
    pub ltv_min: Option<BigDecimal>,
    pub ltv_max: Option<BigDecimal>,
    pub last_activity_from: Option<DateTime<Utc>>,
    pub last_activity_to: Option<DateTime<Utc>>,
    /// Case-insensitive substring of name or email.
    pub search: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CustomerOrderField {
    Ltv,
    LastActivity,
    CreatedAt,
    Name,
}

/// The sort key of a row under an ordering, as carried in its cursor.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "t", content = "v")]
pub enum SortKey {
    Time(Option<DateTime<Utc>>),
    Text(Option<String>),
    Money(BigDecimal),
}

pub fn sort_key(customer: &Customer, field: CustomerOrderField) -> SortKey {
    match field {
        CustomerOrderField::Ltv => SortKey::Money(customer.ltv.clone()),
        CustomerOrderField::LastActivity => SortKey::Time(customer.last_activity_at),
        CustomerOrderField::CreatedAt => SortKey::Time(Some(customer.created_at)),
        CustomerOrderField::Name => SortKey::Text(customer.name.clone()),
    }
}

/// The customers `filter` selects, every column: the rows of the list and of its
/// aggregates.
pub fn filtered(scope: Tenant, filter: &CustomerFilter) -> customers::BoxedQuery<'static, Pg> {
    customers::table
        .filter(customers::tenant_id.eq(scope.id()))
        .into_boxed()
        .filter_some(filter.segment.clone(), |v| customers::segment.eq(v))
        .filter_some(filter.churn_risk.clone(), |v| customers::churn_risk.eq(v))
        .filter_some(filter.is_club_member, |v| customers::is_club_member.eq(v))
        .filter_some(filter.ltv_min.clone(), |v| customers::ltv.ge(v))
        .filter_some(filter.ltv_max.clone(), |v| customers::ltv.le(v))
        .filter_some(filter.last_activity_from, |v| {
            customers::last_activity_at.ge(v)
        })
        .filter_some(filter.last_activity_to, |v| {
            customers::last_activity_at.lt(v)
        })
        .filter_some(filter.search.as_deref().map(contains_pattern), |p| {
            customers::name
                .ilike(p.clone())
                .or(customers::email.ilike(p))
        })
}

/// Which orders an aggregate reads (every filter optional).
#[derive(Debug, Clone, Default)]
pub struct OrderFilter {
    pub customer_id: Option<Uuid>,
    pub status: Option<String>,
    pub is_club_shipment: Option<bool>,
    pub ordered_from: Option<DateTime<Utc>>,
    pub ordered_to: Option<DateTime<Utc>>,
}

/// The orders `filter` selects, every column.
pub fn orders_filtered(scope: Tenant, filter: &OrderFilter) -> orders::BoxedQuery<'static, Pg> {
    orders::table
        .filter(orders::tenant_id.eq(scope.id()))
        .into_boxed()
        .filter_some(filter.customer_id, |v| orders::customer_id.eq(v))
        .filter_some(filter.status.clone(), |v| orders::status.eq(v))
        .filter_some(filter.is_club_shipment, |v| orders::is_club_shipment.eq(v))
        .filter_some(filter.ordered_from, |v| orders::ordered_at.ge(v))
        .filter_some(filter.ordered_to, |v| orders::ordered_at.lt(v))
}

/// The customer rollup rows (see the aggregate rollups migration) of `filter`, when it
/// asks only what the rollup keeps: segment, churn risk and membership.
pub fn customer_rollup_rows(
    scope: Tenant,
    filter: &CustomerFilter,
) -> Option<customer_rollups::BoxedQuery<'static, Pg>> {
    let CustomerFilter {
        segment,
        churn_risk,
        is_club_member,
        ltv_min: None,
        ltv_max: None,
        last_activity_from: None,
        last_activity_to: None,
        search: None,
    } = filter
    else {
        return None;
    };
    use customer_rollups as r;
    let query = r::table
        .filter(r::tenant_id.eq(scope.id()))
        .into_boxed()
        .filter_some(segment.clone(), |v| r::segment.eq(v))
        .filter_some(churn_risk.clone(), |v| r::churn_risk.eq(v))
        .filter_some(*is_club_member, |v| r::is_club_member.eq(v));
    Some(query)
}

/// The order rollup rows of `filter` when it does not name a customer (the rollup keeps
/// status, club shipments and quarter hours; `filter`'s time range is the caller's).
pub fn order_rollup_rows(
    scope: Tenant,
    filter: &OrderFilter,
) -> Option<order_rollups::BoxedQuery<'static, Pg>> {
    if filter.customer_id.is_some() {
        return None;
    }
    use order_rollups as r;
    let query = r::table
        .filter(r::tenant_id.eq(scope.id()))
        .into_boxed()
        .filter_some(filter.status.clone(), |v| r::status.eq(v))
        .filter_some(filter.is_club_shipment, |v| r::is_club_shipment.eq(v));
    Some(query)
}

/// A page of customers as a query, in the list's order (its limit left to the caller:
/// [`crate::db::nested::read_page`]).
pub type ListQuery = customers::BoxedQuery<'static, Pg, SqlTypeOf<AsSelect<Customer, Pg>>>;

/// One keyset page of `filter`'s customers ordered by `field`. Ties in the sort key are
/// broken by id; NULL sort keys come last in both directions.
pub fn list_query(
    scope: Tenant,
    filter: &CustomerFilter,
    field: CustomerOrderField,
    descending: bool,
    page: &PageRequest<SortKey>,
) -> AppResult<ListQuery> {
    let query = filtered(scope, filter).select(Customer::as_select());

    // The cursor's key, which must be of the field the list is ordered by.
    let mismatch =
        || crate::error::AppError::bad_input(&["after"], "cursor does not match orderBy");
    let after = page.after.as_ref();
    let backward = page.backward;
    let time = |c: &Cursor<SortKey>| match &c.key {
        SortKey::Time(t) => Ok((*t, c.id)),
        _ => Err(mismatch()),
    };
    let query = match field {
        CustomerOrderField::Ltv => {
            let after = after
                .map(|c| match &c.key {
                    SortKey::Money(m) => Ok((m.clone(), c.id)),
                    _ => Err(mismatch()),
                })
                .transpose()?;
            crate::keyset!(query, after: after, backward: backward, customers::ltv, customers::id, descending: descending)
        }
        CustomerOrderField::CreatedAt => {
            let after = after.map(time).transpose()?;
            let after = after
                .map(|(t, id)| t.map(|t| (t, id)).ok_or_else(mismatch))
                .transpose()?;
            crate::keyset!(query, after: after, backward: backward, customers::created_at, customers::id, descending: descending)
        }
        CustomerOrderField::LastActivity => {
            let after = after.map(time).transpose()?;
            crate::keyset!(query, after: after, backward: backward, customers::last_activity_at, customers::id, descending: descending, nullable)
        }
        CustomerOrderField::Name => {
            let after = after
                .map(|c| match &c.key {
                    SortKey::Text(t) => Ok((t.clone(), c.id)),
                    _ => Err(mismatch()),
                })
                .transpose()?;
            crate::keyset!(query, after: after, backward: backward, customers::name, customers::id, descending: descending, nullable)
        }
    };
    Ok(query)
}

pub async fn preferences_of(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
    customers: &[Uuid],
) -> QueryResult<Vec<CommunicationPreference>> {
    communication_preferences::table
        .filter(communication_preferences::tenant_id.eq(scope.id()))
        .filter(communication_preferences::customer_id.eq_any(customers))
        .select(CommunicationPreference::as_select())
        .order((
            communication_preferences::channel,
            communication_preferences::communication_type,
        ))
        .load(conn)
        .await
}

// ---- writes -----------------------------------------------------------------------------

pub fn valid_email(email: &str) -> bool {
    let Some((local, domain)) = email.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && email.len() <= 254
        && !email.chars().any(|c| c.is_whitespace() || c.is_control())
        && !domain.contains('@')
}

fn check_text(field: &str, value: &Option<String>, max: usize) -> Result<(), UserError> {
    if let Some(v) = value {
        if v.chars().count() > max || v.contains('\0') {
            return Err(UserError::new(
                UserErrorCode::Invalid,
                &["input", field],
                format!("{field} must be at most {max} characters without NUL bytes"),
            ));
        }
    }
    Ok(())
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct UpsertCustomer {
    pub email: Option<String>,
    pub external_id: Option<String>,
    pub name: Option<String>,
    pub phone: Option<String>,
    pub segment: Option<String>,
    pub churn_risk: Option<String>,
    pub metadata: Option<serde_json::Value>,
}

impl UpsertCustomer {
    fn validate(&self) -> Result<(), UserError> {
        if self.email.is_none() && self.external_id.is_none() {
            return Err(UserError::new(
                UserErrorCode::Invalid,
                &["input", "email"],
                "give an email or an externalId to identify the customer",
            ));
        }
        if let Some(email) = &self.email {
            if !valid_email(email) {
                return Err(UserError::new(
                    UserErrorCode::Invalid,
                    &["input", "email"],
                    "not a valid email address",
                ));
            }
        }
        check_text("externalId", &self.external_id, 200)?;
        check_text("name", &self.name, 200)?;
        check_text("phone", &self.phone, 40)?;
        check_text("segment", &self.segment, 100)?;
        if let Some(metadata) = &self.metadata {
            if !metadata.is_object() {
                return Err(UserError::new(
                    UserErrorCode::Invalid,
                    &["input", "metadata"],
                    "metadata must be an object",
                ));
            }
        }
        if let Some(external_id) = &self.external_id {
            if external_id.is_empty() {
                return Err(UserError::new(
                    UserErrorCode::Invalid,
                    &["input", "externalId"],
                    "externalId is empty",
                ));
            }
        }
        Ok(())
    }
}

/// Seed 004's customer upsert flow: match by external id, then by email
/// (case-insensitive); update the match or create the customer. Two concurrent upserts
/// of one identity serialise on an advisory lock, so they never create two customers.
pub async fn upsert_customer(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
    input: UpsertCustomer,
    idempotency_key: Option<&str>,
) -> OpResult<(Uuid, bool)> {
    input.validate()?;
    idempotency::once(
        conn,
        scope,
        idempotency_key,
        "upsertCustomer",
        &input,
        async |conn| {
            let mut identities: Vec<String> = Vec::new();
            if let Some(e) = &input.external_id {
                identities.push(format!("customer:{}:ext:{e}", scope.id()));
            }
            if let Some(e) = &input.email {
                identities.push(format!(
                    "customer:{}:email:{}",
                    scope.id(),
                    e.to_lowercase()
                ));
            }
            identities.sort();
            for identity in &identities {
                crate::db::sql::lock_key(conn, identity).await?;
            }

            let by_external = match &input.external_id {
                Some(ext) => customers::table
                    .filter(customers::tenant_id.eq(scope.id()))
                    .filter(customers::external_id.eq(ext))
                    .select(customers::id)
                    .first::<Uuid>(conn)
                    .await
                    .optional()?,
                None => None,
            };
            let by_email = match &input.email {
                Some(email) => by_email(conn, scope, email).await?.map(|c| c.id),
                None => None,
            };
            let existing = match (by_external, by_email) {
                (Some(a), Some(b)) if a != b => {
                    return Err(UserError::new(
                        UserErrorCode::Conflict,
                        &["input", "email"],
                        "this email belongs to another customer than this externalId",
                    )
                    .into())
                }
                (a, b) => a.or(b),
            };
            let profile = CustomerProfile {
                external_id: input.external_id.clone(),
                email: input.email.clone(),
                name: input.name.clone(),
                phone: input.phone.clone(),
                segment: input.segment.clone(),
                churn_risk: input.churn_risk.clone(),
                metadata: input.metadata.clone(),
            };
            let (id, created) = match existing {
                Some(id) => {
                    let changes_something = profile.external_id.is_some()
                        || profile.email.is_some()
                        || profile.name.is_some()
                        || profile.phone.is_some()
                        || profile.segment.is_some()
                        || profile.churn_risk.is_some()
                        || profile.metadata.is_some();
                    if changes_something {
                        diesel::update(
                            customers::table
                                .filter(customers::tenant_id.eq(scope.id()))
                                .filter(customers::id.eq(id)),
                        )
                        .set(&profile)
                        .execute(conn)
                        .await?;
                    }
                    (id, false)
                }
                None => {
                    let id = diesel::insert_into(customers::table)
                        .values(NewCustomer {
                            tenant_id: scope.id(),
                            external_id: profile.external_id,
                            email: profile.email,
                            name: profile.name,
                            phone: profile.phone,
                            segment: profile.segment,
                            churn_risk: profile.churn_risk,
                            metadata: profile.metadata.unwrap_or_else(|| json!({})),
                        })
                        .returning(customers::id)
                        .get_result::<Uuid>(conn)
                        .await?;
                    (id, true)
                }
            };
            events::record(
                conn,
                scope,
                "customer.upserted",
                id,
                json!({ "created": created }),
            )
            .await?;
            Ok((id, created))
        },
    )
    .await
}

#[derive(Debug, Clone, Serialize)]
pub struct RecordActivity {
    pub customer_id: Uuid,
    pub activity_type: String,
    pub description: Option<String>,
    pub data: serde_json::Value,
    pub occurred_at: Option<DateTime<Utc>>,
}

async fn lock_customer(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
    id: Uuid,
    field: &str,
) -> OpResult<Customer> {
    let selection = Customer::as_select();
    crate::tenant_row!(locked conn, scope, customers, id, selection, &["input", field], "no such customer")
}

pub async fn record_activity(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
    input: RecordActivity,
) -> OpResult<Activity> {
    let valid_type = !input.activity_type.is_empty()
        && input.activity_type.len() <= 63
        && input
            .activity_type
            .starts_with(|c: char| c.is_ascii_lowercase())
        && input
            .activity_type
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if !valid_type {
        return Err(UserError::new(
            UserErrorCode::Invalid,
            &["input", "type"],
            "type must be snake_case (a-z, 0-9, _), at most 63 characters",
        )
        .into());
    }
    check_text("description", &input.description, 2000)?;
    if !input.data.is_object() {
        return Err(UserError::new(
            UserErrorCode::Invalid,
            &["input", "data"],
            "data must be an object",
        )
        .into());
    }
    lock_customer(conn, scope, input.customer_id, "customerId").await?;
    let occurred_at = input.occurred_at.unwrap_or_else(Utc::now);
    let activity = diesel::insert_into(crate::db::schema::customer_activities::table)
        .values(NewActivity {
            tenant_id: scope.id(),
            customer_id: input.customer_id,
            activity_type: &input.activity_type,
            activity_description: input.description.as_deref(),
            activity_data: input.data.clone(),
            created_at: occurred_at,
        })
        .returning(Activity::as_returning())
        .get_result(conn)
        .await?;
    touch_last_activity(conn, scope, input.customer_id, occurred_at).await?;
    events::record(
        conn,
        scope,
        "customer.activity_recorded",
        input.customer_id,
        json!({ "activityId": activity.id, "type": activity.activity_type }),
    )
    .await?;
    Ok(activity)
}

/// The tenant's activity `id`.
pub async fn activity(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
    id: Uuid,
) -> QueryResult<Option<Activity>> {
    use crate::db::schema::customer_activities as a;
    a::table
        .filter(a::tenant_id.eq(scope.id()))
        .filter(a::id.eq(id))
        .select(Activity::as_select())
        .first(conn)
        .await
        .optional()
}

async fn touch_last_activity(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
    id: Uuid,
    at: DateTime<Utc>,
) -> QueryResult<()> {
    diesel::update(
        customers::table
            .filter(customers::tenant_id.eq(scope.id()))
            .filter(customers::id.eq(id)),
    )
    .set(
        customers::last_activity_at.eq(diesel::dsl::sql::<
            diesel::sql_types::Nullable<diesel::sql_types::Timestamptz>,
        >("greatest(last_activity_at, ")
        .bind::<diesel::sql_types::Timestamptz, _>(at)
        .sql(")")),
    )
    .execute(conn)
    .await
    .map(|_| ())
}

#[derive(Debug, Clone, Serialize)]
pub struct RecordOrder {
    pub customer_id: Uuid,
    pub order_total: BigDecimal,
    pub subtotal: Option<BigDecimal>,
    pub discount_total: Option<BigDecimal>,
    pub crm_order_id: Option<String>,
    pub order_number: Option<String>,
    pub ordered_at: Option<DateTime<Utc>>,
    pub is_club_shipment: bool,
    pub line_items: serde_json::Value,
}

/// A refund of an order: `amount` of it, or all that is left when `None`.
#[derive(Debug, Clone, Serialize)]
pub struct RefundOrder {
    pub order_id: Uuid,
    pub amount: Option<BigDecimal>,
}

/// Refunds an order, whole or part: its share of the points the order earned is taken
/// back (never below a zero balance: the rest is the refund's shortfall), the customer's
/// LTV shrinks by the amount, and the order is `refunded` once refunded in full. Refunds
/// of one order run one at a time (the order's row lock): together they never exceed it.
pub async fn refund_order(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
    input: RefundOrder,
    idempotency_key: Option<&str>,
) -> OpResult<Uuid> {
    if let Some(amount) = &input.amount {
        check_money(amount, &["input", "amount"])?;
        if amount == &BigDecimal::from(0) {
            return Err(UserError::new(
                UserErrorCode::Invalid,
                &["input", "amount"],
                "amount must be more than 0",
            )
            .into());
        }
    }
    idempotency::once(
        conn,
        scope,
        idempotency_key,
        "refundOrder",
        &input,
        async |conn| {
            let order: Order = crate::tenant_row!(
                locked conn,
                scope,
                orders,
                input.order_id,
                Order::as_select(),
                &["input", "orderId"],
                "no such order"
            )?;
            let refunded: BigDecimal = order_refunds::table
                .filter(order_refunds::tenant_id.eq(scope.id()))
                .filter(order_refunds::order_id.eq(order.id))
                .select(diesel::dsl::sum(order_refunds::amount))
                .first::<Option<BigDecimal>>(conn)
                .await?
                .unwrap_or_default();
            let left = &order.order_total - &refunded;
            if left <= 0 {
                return Err(UserError::new(
                    UserErrorCode::InvalidTransition,
                    &["input", "orderId"],
                    "the order is refunded in full already",
                )
                .into());
            }
            let amount = input.amount.clone().unwrap_or_else(|| left.clone());
            if amount > left {
                return Err(UserError::new(
                    UserErrorCode::Invalid,
                    &["input", "amount"],
                    format!(
                        "at most {} of the order is left to refund",
                        left.normalized()
                    ),
                )
                .into());
            }
            let (reversed, shortfall) = loyalty::reverse_for_refund(
                conn,
                scope,
                order.customer_id,
                order.id,
                &order.order_total,
                &refunded,
                &amount,
            )
            .await?;
            let refund: Uuid = diesel::insert_into(order_refunds::table)
                .values((
                    order_refunds::tenant_id.eq(scope.id()),
                    order_refunds::order_id.eq(order.id),
                    order_refunds::amount.eq(&amount),
                    order_refunds::points_reversed.eq(reversed),
                    order_refunds::points_shortfall.eq(shortfall),
                ))
                .returning(order_refunds::id)
                .get_result(conn)
                .await?;
            diesel::update(
                customers::table
                    .filter(customers::tenant_id.eq(scope.id()))
                    .filter(customers::id.eq(order.customer_id)),
            )
            .set(
                customers::ltv.eq(diesel::dsl::sql::<diesel::sql_types::Numeric>(
                    "greatest(ltv - ",
                )
                .bind::<diesel::sql_types::Numeric, _>(amount.clone())
                .sql(", 0)")),
            )
            .execute(conn)
            .await?;
            if amount == left {
                diesel::update(
                    orders::table
                        .filter(orders::tenant_id.eq(scope.id()))
                        .filter(orders::id.eq(order.id)),
                )
                .set(orders::status.eq("refunded"))
                .execute(conn)
                .await?;
            }
            Ok(refund)
        },
    )
    .await
}

/// Refunds by id (the payloads' reads).
pub async fn refunds_by_ids(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
    ids: &[Uuid],
) -> QueryResult<Vec<OrderRefund>> {
    order_refunds::table
        .filter(order_refunds::tenant_id.eq(scope.id()))
        .filter(order_refunds::id.eq_any(ids))
        .select(OrderRefund::as_select())
        .load(conn)
        .await
}

/// Records an order: the customer's LTV grows by its total and last activity moves to it.
pub async fn record_order(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
    input: RecordOrder,
    idempotency_key: Option<&str>,
) -> OpResult<Uuid> {
    check_money(&input.order_total, &["input", "orderTotal"])?;
    if let Some(v) = &input.subtotal {
        check_money(v, &["input", "subtotal"])?;
    }
    if let Some(v) = &input.discount_total {
        check_money(v, &["input", "discountTotal"])?;
    }
    check_text("crmOrderId", &input.crm_order_id, 200)?;
    check_text("orderNumber", &input.order_number, 200)?;
    if !input.line_items.is_array() {
        return Err(UserError::new(
            UserErrorCode::Invalid,
            &["input", "lineItems"],
            "lineItems must be a list",
        )
        .into());
    }
    idempotency::once(
        conn,
        scope,
        idempotency_key,
        "recordOrder",
        &input,
        async |conn| {
            let customer = lock_customer(conn, scope, input.customer_id, "customerId").await?;
            // The lifetime value is money too (numeric(12,2)): it may not overflow.
            if check_money(
                &(&customer.ltv + &input.order_total),
                &["input", "orderTotal"],
            )
            .is_err()
            {
                return Err(UserError::new(
                    UserErrorCode::Invalid,
                    &["input", "orderTotal"],
                    "this order would take the customer's lifetime value past 9999999999.99",
                )
                .into());
            }
            let ordered_at = input.ordered_at.unwrap_or_else(Utc::now);
            let line_items =
                crate::domain::catalog::ops::link_order_lines(conn, scope, &input.line_items)
                    .await?;
            let order = diesel::insert_into(orders::table)
                .values(NewOrder {
                    tenant_id: scope.id(),
                    customer_id: input.customer_id,
                    crm_order_id: input.crm_order_id.as_deref(),
                    order_number: input.order_number.as_deref(),
                    status: "paid",
                    subtotal: input
                        .subtotal
                        .clone()
                        .unwrap_or_else(|| input.order_total.clone()),
                    discount_total: input.discount_total.clone().unwrap_or_default(),
                    order_total: input.order_total.clone(),
                    is_club_shipment: input.is_club_shipment,
                    line_items,
                    ordered_at,
                })
                .returning(Order::as_returning())
                .get_result(conn)
                .await?;
            diesel::update(
                customers::table
                    .filter(customers::tenant_id.eq(scope.id()))
                    .filter(customers::id.eq(input.customer_id)),
            )
            .set(customers::ltv.eq(customers::ltv + input.order_total.clone()))
            .execute(conn)
            .await?;
            touch_last_activity(conn, scope, input.customer_id, ordered_at).await?;
            loyalty::earn_for_order(
                conn,
                scope,
                input.customer_id,
                order.id,
                &input.order_total,
                ordered_at,
            )
            .await?;
            events::record(
            conn,
            scope,
            "order.recorded",
            order.id,
            json!({ "customerId": input.customer_id, "orderTotal": input.order_total.to_string() }),
        )
        .await?;
            Ok(order.id)
        },
    )
    .await
}

pub async fn order_by_id(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
    id: Uuid,
) -> QueryResult<Order> {
    orders::table
        .filter(orders::tenant_id.eq(scope.id()))
        .filter(orders::id.eq(id))
        .select(Order::as_select())
        .first(conn)
        .await
}

#[derive(Debug, Clone)]
pub struct PreferenceChange {
    pub channel: &'static str,
    pub communication_type: &'static str,
    pub opted_in: bool,
    pub reason: Option<String>,
}

/// Sets opt-in/out per channel and type. Opting out records when (kept from the first
/// opt-out while it lasts) and why; opting back in clears both.
pub async fn set_preferences(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
    customer_id: Uuid,
    changes: Vec<PreferenceChange>,
) -> OpResult<Vec<CommunicationPreference>> {
    if changes.is_empty() || changes.len() > 50 {
        return Err(UserError::new(
            UserErrorCode::Invalid,
            &["input", "preferences"],
            "give 1 to 50 preferences",
        )
        .into());
    }
    for (i, change) in changes.iter().enumerate() {
        if change
            .reason
            .as_ref()
            .is_some_and(|r| r.chars().count() > 500 || r.contains('\0'))
        {
            return Err(UserError::new(
                UserErrorCode::Invalid,
                &["input", "preferences", &i.to_string(), "reason"],
                "reason must be at most 500 characters",
            )
            .into());
        }
    }
    lock_customer(conn, scope, customer_id, "customerId").await?;
    use communication_preferences as p;
    for change in &changes {
        let unsubscribed_at = (!change.opted_in).then(Utc::now);
        diesel::insert_into(p::table)
            .values((
                p::tenant_id.eq(scope.id()),
                p::customer_id.eq(customer_id),
                p::channel.eq(change.channel),
                p::communication_type.eq(change.communication_type),
                p::opted_in.eq(change.opted_in),
                p::unsubscribed_at.eq(unsubscribed_at),
                p::unsubscribe_reason.eq(change.reason.as_deref().filter(|_| !change.opted_in)),
            ))
            .on_conflict((p::tenant_id, p::customer_id, p::channel, p::communication_type))
            .do_update()
            .set((
                p::opted_in.eq(change.opted_in),
                p::unsubscribed_at.eq(diesel::dsl::sql::<diesel::sql_types::Nullable<diesel::sql_types::Timestamptz>>(
                    "CASE WHEN excluded.opted_in THEN NULL \
                     ELSE coalesce(communication_preferences.unsubscribed_at, excluded.unsubscribed_at) END",
                )),
                p::unsubscribe_reason.eq(diesel::dsl::sql::<diesel::sql_types::Nullable<Text>>(
                    "CASE WHEN excluded.opted_in THEN NULL \
                     ELSE coalesce(excluded.unsubscribe_reason, communication_preferences.unsubscribe_reason) END",
                )),
            ))
            .execute(conn)
            .await?;
    }
    events::record(
        conn,
        scope,
        "customer.preferences_changed",
        customer_id,
        json!({ "changes": changes.iter().map(|c| json!({"channel": c.channel, "type": c.communication_type, "optedIn": c.opted_in})).collect::<Vec<_>>() }),
    )
    .await?;
    Ok(preferences_of(conn, scope, &[customer_id]).await?)
}
