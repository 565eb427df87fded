use std::collections::HashMap;

use async_graphql::connection::Connection;
use async_graphql::dataloader::Loader;
use async_graphql::{Context, InputObject, Json, Object, SimpleObject, ID};
use chrono::{DateTime, Utc};
use scoped_futures::ScopedFutureExt;
use uuid::Uuid;

use super::model::{self, ChurnRisk, CommunicationType};
use super::ops::{self, CustomerOrderField, SortKey};
use super::prefetch::{self, Lookup};
use crate::auth::Access;
use crate::db::children::ChildRelation;
use crate::domain::campaigns::graphql::{CampaignHistoryOf, CampaignRecipient};
use crate::domain::comms::graphql::{Communication, CommunicationsOf};
use crate::domain::comms::model::Channel;
use crate::domain::leads::graphql::{Lead, LeadsOfCustomer};
use crate::domain::loyalty::graphql::{
    CurrentEnrollmentKey, Enrollment, EnrollmentsKey, PointTransaction, PointsOf, Redemption,
    RedemptionsOf,
};
use crate::domain::loyalty::model::cumulative_membership_days;
use crate::domain::write_payload;
use crate::domain::{payload, Payload, UserError};
use crate::error::{AppError, AppResult};
use crate::graphql::connection::IntoConnection;
use crate::graphql::connection::{Cursor, OrderDirection, PageRequest};
use crate::graphql::context::{request_context, RequestContext};
use crate::graphql::loaders::{load_child_pages, ChildPage, TenantLoader};
use crate::graphql::scalars::{parse_id, Decimal};

/// One customer and everything known about them (customer 360).
pub struct Customer(pub model::Customer);

type TimeCursor = Cursor<DateTime<Utc>>;

/// Loads one nested page of `parent`'s children through the request's loader.
async fn child_page<F, T, N>(
    request: &RequestContext,
    parent: Uuid,
    first: Option<i32>,
    after: Option<String>,
    filter: F,
    sort_of: impl Fn(&T) -> (DateTime<Utc>, Uuid),
    node_of: impl Fn(T) -> N,
) -> AppResult<Connection<TimeCursor, N>>
where
    TenantLoader: Loader<ChildPage<F>, Value = Vec<T>, Error = AppError>,
    F: Clone + Eq + std::hash::Hash + Send + Sync + 'static,
    T: Clone + Send + Sync + 'static,
    N: async_graphql::OutputType,
{
    let page = PageRequest::<DateTime<Utc>>::new(first, after)?;
    let key = ChildPage {
        parent,
        limit: page.limit(),
        after: page.after.as_ref().map(|c| (c.key, c.id)),
        filter,
    };
    let rows = request.load_one(key).await?.unwrap_or_default();
    Ok(page.into_connection(
        rows,
        |row| {
            let (key, id) = sort_of(row);
            Cursor { key, id }
        },
        node_of,
    ))
}

#[Object]
impl Customer {
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    /// The caller's own identifier for this customer (seed 003 `customer_id`).
    async fn external_id(&self) -> Option<&str> {
        self.0.external_id.as_deref()
    }
    async fn email(&self) -> Option<&str> {
        self.0.email.as_deref()
    }
    async fn name(&self) -> Option<&str> {
        self.0.name.as_deref()
    }
    async fn phone(&self) -> Option<&str> {
        self.0.phone.as_deref()
    }
    async fn segment(&self) -> Option<&str> {
        self.0.segment.as_deref()
    }
    async fn churn_risk(&self) -> Option<ChurnRisk> {
        self.0.churn_risk.as_deref().and_then(ChurnRisk::parse)
    }
    /// Lifetime value.
    async fn ltv(&self) -> Decimal {
        self.0.ltv.clone().into()
    }
    async fn total_deposit(&self) -> Decimal {
        self.0.total_deposit.clone().into()
    }
    async fn total_withdraw(&self) -> Decimal {
        self.0.total_withdraw.clone().into()
    }
    async fn last_activity_at(&self) -> Option<DateTime<Utc>> {
        self.0.last_activity_at
    }
    async fn metadata(&self) -> Json<serde_json::Value> {
        Json(self.0.metadata.clone())
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    async fn updated_at(&self) -> DateTime<Utc> {
        self.0.updated_at
    }
    async fn points_balance(&self) -> i64 {
        self.0.points_balance
    }
    /// Every point ever credited (points never expire).
    async fn points_lifetime(&self) -> i64 {
        self.0.points_lifetime
    }
    async fn is_club_member(&self) -> bool {
        self.0.is_club_member
    }
    /// Days of club membership, all enrollments together (overlaps counted once).
    async fn cumulative_membership_days(&self, ctx: &Context<'_>) -> AppResult<i64> {
        let request = request_context(ctx)?;
        let enrollments = request
            .load_one(EnrollmentsKey(self.0.id))
            .await?
            .unwrap_or_default();
        Ok(cumulative_membership_days(&enrollments, Utc::now()))
    }
    async fn current_enrollment(&self, ctx: &Context<'_>) -> AppResult<Option<Enrollment>> {
        let request = request_context(ctx)?;
        Ok(request
            .load_one(CurrentEnrollmentKey(self.0.id))
            .await?
            .map(Enrollment::from))
    }
    /// Every enrollment, oldest first (the club history).
    async fn enrollments(&self, ctx: &Context<'_>) -> AppResult<Vec<Enrollment>> {
        let request = request_context(ctx)?;
        let rows = request
            .load_one(EnrollmentsKey(self.0.id))
            .await?
            .unwrap_or_default();
        Ok(crate::graphql::connection::bounded(rows)
            .into_iter()
            .map(Enrollment::from)
            .collect())
    }
    /// The activity timeline, newest first, optionally only some activity types.
    async fn activities(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        types: Option<Vec<String>>,
    ) -> AppResult<Connection<TimeCursor, Activity>> {
        let filter = ActivitiesOf::new(types)?;
        child_page(
            request_context(ctx)?,
            self.0.id,
            first,
            after,
            filter,
            |a: &model::Activity| (a.created_at, a.id),
            Activity::from,
        )
        .await
    }
    /// Orders, newest first.
    async fn orders(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
    ) -> AppResult<Connection<TimeCursor, Order>> {
        child_page(
            request_context(ctx)?,
            self.0.id,
            first,
            after,
            OrdersOf,
            |o: &model::Order| (o.ordered_at, o.id),
            Order::from,
        )
        .await
    }
    /// The points ledger, newest first.
    async fn point_transactions(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
    ) -> AppResult<Connection<TimeCursor, PointTransaction>> {
        child_page(
            request_context(ctx)?,
            self.0.id,
            first,
            after,
            PointsOf,
            |t: &crate::domain::loyalty::model::PointTransaction| (t.created_at, t.id),
            PointTransaction::from,
        )
        .await
    }
    async fn redemptions(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
    ) -> AppResult<Connection<TimeCursor, Redemption>> {
        child_page(
            request_context(ctx)?,
            self.0.id,
            first,
            after,
            RedemptionsOf,
            |r: &crate::domain::loyalty::model::Redemption| (r.created_at, r.id),
            Redemption::from,
        )
        .await
    }
    async fn communication_preferences(
        &self,
        ctx: &Context<'_>,
    ) -> AppResult<Vec<CommunicationPreference>> {
        let request = request_context(ctx)?;
        let rows = request
            .load_one(PreferencesOf(self.0.id))
            .await?
            .unwrap_or_default();
        Ok(crate::graphql::connection::bounded(rows)
            .into_iter()
            .map(CommunicationPreference::from)
            .collect())
    }
    /// Messages sent to or received from this customer, newest first.
    async fn communications(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
    ) -> AppResult<Connection<TimeCursor, Communication>> {
        child_page(
            request_context(ctx)?,
            self.0.id,
            first,
            after,
            CommunicationsOf,
            |c: &crate::domain::comms::model::Communication| (c.created_at, c.id),
            Communication::from,
        )
        .await
    }
    /// The campaigns this customer was a recipient of, newest first.
    async fn campaign_history(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
    ) -> AppResult<Connection<TimeCursor, CampaignRecipient>> {
        child_page(
            request_context(ctx)?,
            self.0.id,
            first,
            after,
            CampaignHistoryOf,
            |r: &crate::domain::campaigns::model::Recipient| (r.created_at, r.id),
            CampaignRecipient::from,
        )
        .await
    }
    /// Leads that converted into this customer.
    async fn leads(&self, ctx: &Context<'_>) -> AppResult<Vec<Lead>> {
        let request = request_context(ctx)?;
        let rows = request
            .load_one(LeadsOfCustomer(self.0.id))
            .await?
            .unwrap_or_default();
        Ok(crate::graphql::connection::bounded(rows)
            .into_iter()
            .map(Lead::from)
            .collect())
    }
}

#[derive(SimpleObject, Clone)]
pub struct Activity {
    pub id: ID,
    #[graphql(name = "type")]
    pub activity_type: String,
    pub description: Option<String>,
    pub data: Json<serde_json::Value>,
    pub occurred_at: DateTime<Utc>,
}

impl From<model::Activity> for Activity {
    fn from(a: model::Activity) -> Self {
        Activity {
            id: ID(a.id.to_string()),
            activity_type: a.activity_type,
            description: a.activity_description,
            data: Json(a.activity_data),
            occurred_at: a.created_at,
        }
    }
}

#[derive(SimpleObject, Clone)]
#[graphql(complex)]
pub struct Order {
    pub id: ID,
    pub crm_order_id: Option<String>,
    pub order_number: Option<String>,
    pub status: String,
    pub subtotal: Decimal,
    pub discount_total: Decimal,
    pub order_total: Decimal,
    pub is_club_shipment: bool,
    pub line_items: Json<serde_json::Value>,
    pub ordered_at: DateTime<Utc>,
}

/// One line of an order, as `lineItems` holds it.
#[derive(SimpleObject)]
pub struct OrderLine {
    pub title: Option<String>,
    pub sku: Option<String>,
    pub quantity: Option<i32>,
    /// The unit price, as the order's source gave it.
    pub price: Option<String>,
    /// The CRM's id of the product (Shopify's gid, Commerce7's id).
    pub crm_product_id: Option<String>,
    /// The tenant's product, when the line names one this tenant has.
    pub product: Option<crate::domain::catalog::graphql::Product>,
}

#[async_graphql::ComplexObject]
impl Order {
    /// The order's lines, each with its product when it is known.
    async fn lines(&self, ctx: &Context<'_>) -> AppResult<Vec<OrderLine>> {
        use crate::domain::catalog::graphql::{Product, ProductKey};
        let request = request_context(ctx)?;
        let text = |v: &serde_json::Value| match v {
            serde_json::Value::String(s) => Some(s.clone()),
            serde_json::Value::Number(n) => Some(n.to_string()),
            _ => None,
        };
        let items: Vec<&serde_json::Value> =
            self.line_items.0.as_array().into_iter().flatten().collect();
        // Every line's product at once: one batch of the loader, one statement.
        let products = futures_util::future::try_join_all(items.iter().map(|line| async move {
            match line["productId"].as_str().map(Uuid::parse_str) {
                Some(Ok(id)) => request.load_one(ProductKey(id)).await,
                _ => Ok(None),
            }
        }))
        .await?;
        let lines = items
            .into_iter()
            .zip(products)
            .map(|(line, product)| OrderLine {
                title: line["title"].as_str().map(str::to_owned),
                sku: line["sku"].as_str().map(str::to_owned),
                quantity: line["quantity"]
                    .as_i64()
                    .and_then(|q| i32::try_from(q).ok()),
                price: text(&line["price"]),
                crm_product_id: text(&line["crmProductId"]),
                product: product.map(Product::from),
            })
            .collect();
        Ok(lines)
    }
}

impl From<model::Order> for Order {
    fn from(o: model::Order) -> Self {
        Order {
            id: ID(o.id.to_string()),
            crm_order_id: o.crm_order_id,
            order_number: o.order_number,
            status: o.status,
            subtotal: o.subtotal.into(),
            discount_total: o.discount_total.into(),
            order_total: o.order_total.into(),
            is_club_shipment: o.is_club_shipment,
            line_items: Json(o.line_items),
            ordered_at: o.ordered_at,
        }
    }
}

#[derive(SimpleObject, Clone)]
pub struct CommunicationPreference {
    pub channel: Option<Channel>,
    #[graphql(name = "type")]
    pub communication_type: Option<CommunicationType>,
    pub opted_in: bool,
    pub unsubscribed_at: Option<DateTime<Utc>>,
    pub unsubscribe_reason: Option<String>,
    pub updated_at: DateTime<Utc>,
}

impl From<model::CommunicationPreference> for CommunicationPreference {
    fn from(p: model::CommunicationPreference) -> Self {
        CommunicationPreference {
            channel: Channel::parse(&p.channel),
            communication_type: CommunicationType::parse(&p.communication_type),
            opted_in: p.opted_in,
            unsubscribed_at: p.unsubscribed_at,
            unsubscribe_reason: p.unsubscribe_reason,
            updated_at: p.updated_at,
        }
    }
}

// ---- loaders ---------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CustomerKey(pub Uuid);

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ActivitiesOf(pub Option<Vec<String>>);

impl ActivitiesOf {
    /// The `types:` argument as a loader key: at most 50, sorted and unique (so equal
    /// sets share a batch group).
    pub fn new(types: Option<Vec<String>>) -> AppResult<Self> {
        if types.as_ref().is_some_and(|t| t.len() > 50) {
            return Err(AppError::bad_input(&["types"], "at most 50 types"));
        }
        Ok(ActivitiesOf(types.map(|mut t| {
            t.sort();
            t.dedup();
            t
        })))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct OrdersOf;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PreferencesOf(pub Uuid);

crate::load_by_ids!(CustomerKey => model::Customer, ops::by_ids, |row: &model::Customer| row.id);

pub(crate) const ACTIVITIES: ChildRelation = ChildRelation {
    table: "customer_activities",
    parent_column: "customer_id",
    sort_column: "created_at",
    kind_column: Some("activity_type"),
};

pub(crate) const ORDERS: ChildRelation = ChildRelation {
    table: "orders",
    parent_column: "customer_id",
    sort_column: "ordered_at",
    kind_column: None,
};

impl Loader<ChildPage<ActivitiesOf>> for TenantLoader {
    type Value = Vec<model::Activity>;
    type Error = AppError;

    async fn load(
        &self,
        keys: &[ChildPage<ActivitiesOf>],
    ) -> Result<HashMap<ChildPage<ActivitiesOf>, Self::Value>, AppError> {
        load_child_pages(
            self,
            keys,
            &ACTIVITIES,
            |f: &ActivitiesOf| f.0.clone(),
            |a: &model::Activity| a.customer_id,
        )
        .await
    }
}

impl Loader<ChildPage<OrdersOf>> for TenantLoader {
    type Value = Vec<model::Order>;
    type Error = AppError;

    async fn load(
        &self,
        keys: &[ChildPage<OrdersOf>],
    ) -> Result<HashMap<ChildPage<OrdersOf>, Self::Value>, AppError> {
        load_child_pages(
            self,
            keys,
            &ORDERS,
            |_| None,
            |o: &model::Order| o.customer_id,
        )
        .await
    }
}

crate::load_groups!(PreferencesOf => model::CommunicationPreference, ops::preferences_of, |row: &model::CommunicationPreference| Some(row.customer_id));

// ---- queries ---------------------------------------------------------------------------

#[derive(InputObject, Default)]
pub struct CustomerFilter {
    pub segment: Option<String>,
    pub churn_risk: Option<ChurnRisk>,
    pub is_club_member: Option<bool>,
    pub ltv_min: Option<Decimal>,
    pub ltv_max: Option<Decimal>,
    /// Last activity at or after this time.
    pub last_activity_from: Option<DateTime<Utc>>,
    /// Last activity before this time.
    pub last_activity_to: Option<DateTime<Utc>>,
    /// Case-insensitive substring of the name or the email.
    pub search: Option<String>,
}

/// The operations' filter of the list's (and its aggregate's) `filter` argument.
pub(super) fn customer_filter(filter: Option<CustomerFilter>) -> AppResult<ops::CustomerFilter> {
    let filter = filter.unwrap_or_default();
    crate::graphql::connection::check_search(&filter.search)?;
    Ok(ops::CustomerFilter {
        segment: filter.segment,
        churn_risk: filter.churn_risk.map(|r| r.as_str().to_owned()),
        is_club_member: filter.is_club_member,
        ltv_min: filter.ltv_min.map(|d| d.0),
        ltv_max: filter.ltv_max.map(|d| d.0),
        last_activity_from: filter.last_activity_from,
        last_activity_to: filter.last_activity_to,
        search: filter.search,
    })
}

#[derive(async_graphql::Enum, Clone, Copy, PartialEq, Eq, Default)]
pub enum CustomerOrderByField {
    Ltv,
    LastActivity,
    #[default]
    CreatedAt,
    Name,
}

#[derive(InputObject, Default)]
pub struct CustomerOrderBy {
    pub field: CustomerOrderByField,
    #[graphql(default)]
    pub direction: OrderDirection,
}

#[derive(Default)]
pub struct CustomersQuery;

#[expect(
    clippy::too_many_arguments,
    reason = "a Relay connection's arguments (first, after, last, before, filter, orderBy)"
)]
#[Object]
impl CustomersQuery {
    /// One customer, by id or by email (case-insensitive). Give exactly one.
    #[graphql(guard = "Access::Read")]
    async fn customer(
        &self,
        ctx: &Context<'_>,
        id: Option<ID>,
        email: Option<String>,
    ) -> AppResult<Option<Customer>> {
        let request = request_context(ctx)?;
        let lookup = match (id, email) {
            (Some(id), None) => Lookup::Id(parse_id(&id, &["id"])?),
            (None, Some(email)) => {
                if email.len() > 254 {
                    return Err(AppError::bad_input(&["email"], "email too long"));
                }
                Lookup::Email(email.to_lowercase())
            }
            _ => {
                return Err(AppError::bad_input(
                    &["id"],
                    "give exactly one of id or email",
                ))
            }
        };
        Ok(prefetch::customer(ctx, request, lookup)
            .await?
            .map(Customer))
    }

    #[graphql(guard = "Access::Read")]
    async fn customers(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
        filter: Option<CustomerFilter>,
        order_by: Option<CustomerOrderBy>,
    ) -> AppResult<Connection<Cursor<SortKey>, Customer>> {
        let request = request_context(ctx)?;
        let page = PageRequest::<SortKey>::either(first, after, last, before)?;
        let filter = customer_filter(filter)?;
        let order_by = order_by.unwrap_or_default();
        let field = match order_by.field {
            CustomerOrderByField::Ltv => CustomerOrderField::Ltv,
            CustomerOrderByField::LastActivity => CustomerOrderField::LastActivity,
            CustomerOrderByField::CreatedAt => CustomerOrderField::CreatedAt,
            CustomerOrderByField::Name => CustomerOrderField::Name,
        };
        let descending = order_by.direction == OrderDirection::Desc;
        let list = |scope| ops::list_query(scope, &filter, field, descending, &page);
        let rows = prefetch::customers_page(ctx, request, (list, page.limit())).await?;
        Ok(page.into_connection(
            rows,
            |c| Cursor {
                key: ops::sort_key(c, field),
                id: c.id,
            },
            Customer,
        ))
    }
}

// ---- mutations -------------------------------------------------------------------------

#[derive(InputObject)]
pub struct UpsertCustomerInput {
    pub email: Option<String>,
    pub external_id: Option<String>,
    pub name: Option<String>,
    pub phone: Option<String>,
    pub segment: Option<String>,
    pub churn_risk: Option<ChurnRisk>,
    pub metadata: Option<Json<serde_json::Value>>,
    pub idempotency_key: Option<String>,
}

#[derive(SimpleObject)]
pub struct UpsertCustomerPayload {
    pub customer: Option<Customer>,
    /// True when this call created the customer.
    pub created: Option<bool>,
    pub user_errors: Vec<UserError>,
}

#[derive(InputObject)]
pub struct RecordCustomerActivityInput {
    pub customer_id: ID,
    /// snake_case activity type, e.g. `tasting_visit`.
    #[graphql(name = "type")]
    pub activity_type: String,
    pub description: Option<String>,
    pub data: Option<Json<serde_json::Value>>,
    /// When it happened (default: now).
    pub occurred_at: Option<DateTime<Utc>>,
}

crate::payload!(RecordCustomerActivityPayload { activity: Activity } from model::Activity);

#[derive(InputObject)]
pub struct RecordOrderInput {
    pub customer_id: ID,
    pub order_total: Decimal,
    pub subtotal: Option<Decimal>,
    pub discount_total: Option<Decimal>,
    pub crm_order_id: Option<String>,
    pub order_number: Option<String>,
    pub ordered_at: Option<DateTime<Utc>>,
    #[graphql(default)]
    pub is_club_shipment: bool,
    pub line_items: Option<Json<serde_json::Value>>,
    pub idempotency_key: Option<String>,
}

#[derive(SimpleObject)]
pub struct RecordOrderPayload {
    pub order: Option<Order>,
    pub customer: Option<Customer>,
    pub user_errors: Vec<UserError>,
}

#[derive(InputObject)]
pub struct RefundOrderInput {
    pub order_id: ID,
    /// What is refunded; all that is left of the order when not given.
    pub amount: Option<Decimal>,
    pub idempotency_key: Option<String>,
}

#[derive(SimpleObject)]
pub struct RefundOrderPayload {
    pub refund: Option<OrderRefund>,
    /// The order after the refund.
    pub order: Option<Order>,
    pub user_errors: Vec<UserError>,
}

impl Payload for RefundOrderPayload {
    type Value = (Option<model::OrderRefund>, Option<model::Order>);
    fn new(value: Option<Self::Value>, user_errors: Vec<UserError>) -> Self {
        let (refund, order) = value.unwrap_or_default();
        RefundOrderPayload {
            refund: refund.map(OrderRefund::from),
            order: order.map(Order::from),
            user_errors,
        }
    }
}

/// A refund of an order and the points it took back.
#[derive(SimpleObject)]
pub struct OrderRefund {
    pub id: ID,
    pub order_id: ID,
    pub amount: Decimal,
    /// Points taken back from the customer's balance.
    pub points_reversed: i64,
    /// Points the refund should have taken back but the balance no longer held.
    pub points_shortfall: i64,
    pub created_at: DateTime<Utc>,
}

impl From<model::OrderRefund> for OrderRefund {
    fn from(r: model::OrderRefund) -> Self {
        OrderRefund {
            id: ID(r.id.to_string()),
            order_id: ID(r.order_id.to_string()),
            amount: r.amount.into(),
            points_reversed: r.points_reversed,
            points_shortfall: r.points_shortfall,
            created_at: r.created_at,
        }
    }
}

#[derive(InputObject)]
pub struct CommunicationPreferenceInput {
    pub channel: Channel,
    #[graphql(name = "type")]
    pub communication_type: CommunicationType,
    pub opted_in: bool,
    /// Why the customer unsubscribed (kept while opted out).
    pub reason: Option<String>,
}

#[derive(InputObject)]
pub struct SetCommunicationPreferencesInput {
    pub customer_id: ID,
    pub preferences: Vec<CommunicationPreferenceInput>,
}

crate::payload!(SetCommunicationPreferencesPayload {
    preferences: Vec<CommunicationPreference>
} from Vec<CommunicationPreference>);

#[derive(Default)]
pub struct CustomersMutation;

async fn reload(request: &RequestContext, id: Uuid) -> AppResult<Option<Customer>> {
    Ok(request.load_one(CustomerKey(id)).await?.map(Customer))
}

#[Object]
impl CustomersMutation {
    /// Creates or updates a customer, matched by externalId then email (seed 004's upsert flow).
    #[graphql(guard = "Access::Ingest")]
    async fn upsert_customer(
        &self,
        ctx: &Context<'_>,
        input: UpsertCustomerInput,
    ) -> AppResult<UpsertCustomerPayload> {
        let request = request_context(ctx)?;
        let key = input.idempotency_key.clone();
        let upsert = ops::UpsertCustomer {
            email: input.email.map(|e| e.trim().to_owned()),
            external_id: input.external_id,
            name: input.name,
            phone: input.phone,
            segment: input.segment,
            churn_risk: input.churn_risk.map(|r| r.as_str().to_owned()),
            metadata: input.metadata.map(|j| j.0),
        };
        let result = request
            .db
            .run(|conn, scope| {
                async move { ops::upsert_customer(conn, scope, upsert, key.as_deref()).await }
                    .scope_boxed()
            })
            .await;
        let (outcome, user_errors): (Option<_>, _) = payload(result)?;
        let customer = match outcome {
            Some((id, _)) => reload(request, id).await?,
            None => None,
        };
        Ok(UpsertCustomerPayload {
            customer,
            created: outcome.map(|(_, c)| c),
            user_errors,
        })
    }

    #[graphql(guard = "Access::Ingest")]
    async fn record_customer_activity(
        &self,
        ctx: &Context<'_>,
        input: RecordCustomerActivityInput,
    ) -> AppResult<RecordCustomerActivityPayload> {
        let record = ops::RecordActivity {
            customer_id: parse_id(&input.customer_id, &["input", "customerId"])?,
            activity_type: input.activity_type,
            description: input.description,
            data: input
                .data
                .map(|j| j.0)
                .unwrap_or_else(|| serde_json::json!({})),
            occurred_at: input.occurred_at,
        };
        write_payload(ctx, |conn, scope| {
            async move { ops::record_activity(conn, scope, record).await }.scope_boxed()
        })
        .await
    }

    /// Records an order: LTV and last activity follow.
    #[graphql(guard = "Access::Ingest")]
    async fn record_order(
        &self,
        ctx: &Context<'_>,
        input: RecordOrderInput,
    ) -> AppResult<RecordOrderPayload> {
        let request = request_context(ctx)?;
        let customer_id = parse_id(&input.customer_id, &["input", "customerId"])?;
        let key = input.idempotency_key.clone();
        let record = ops::RecordOrder {
            customer_id,
            order_total: input.order_total.0,
            subtotal: input.subtotal.map(|d| d.0),
            discount_total: input.discount_total.map(|d| d.0),
            crm_order_id: input.crm_order_id,
            order_number: input.order_number,
            ordered_at: input.ordered_at,
            is_club_shipment: input.is_club_shipment,
            line_items: input
                .line_items
                .map(|j| j.0)
                .unwrap_or_else(|| serde_json::json!([])),
        };
        let result = request
            .db
            .run(|conn, scope| {
                async move {
                    let id = ops::record_order(conn, scope, record, key.as_deref()).await?;
                    Ok::<_, crate::domain::OpError>(ops::order_by_id(conn, scope, id).await?)
                }
                .scope_boxed()
            })
            .await;
        let (order, user_errors): (Option<_>, _) = payload(result)?;
        let customer = match &order {
            Some(_) => reload(request, customer_id).await?,
            None => None,
        };
        Ok(RecordOrderPayload {
            order: order.map(Order::from),
            customer,
            user_errors,
        })
    }

    /// Refunds an order, whole (no `amount`) or part: the points it earned come back off
    /// the customer's balance in proportion (never below zero: the rest is the refund's
    /// `pointsShortfall`), LTV shrinks by the amount, and the order is `refunded` once
    /// refunded in full.
    #[graphql(guard = "Access::Ingest")]
    async fn refund_order(
        &self,
        ctx: &Context<'_>,
        input: RefundOrderInput,
    ) -> AppResult<RefundOrderPayload> {
        let refund = ops::RefundOrder {
            order_id: parse_id(&input.order_id, &["input", "orderId"])?,
            amount: input.amount.map(|d| d.0),
        };
        let key = input.idempotency_key;
        write_payload(ctx, |conn, scope| {
            async move {
                let id = ops::refund_order(conn, scope, refund, key.as_deref()).await?;
                let refund = ops::refunds_by_ids(conn, scope, &[id]).await?.pop();
                let order = match &refund {
                    Some(r) => Some(ops::order_by_id(conn, scope, r.order_id).await?),
                    None => None,
                };
                Ok((refund, order))
            }
            .scope_boxed()
        })
        .await
    }

    #[graphql(guard = "Access::Admin")]
    async fn set_communication_preferences(
        &self,
        ctx: &Context<'_>,
        input: SetCommunicationPreferencesInput,
    ) -> AppResult<SetCommunicationPreferencesPayload> {
        let customer_id = parse_id(&input.customer_id, &["input", "customerId"])?;
        let changes: Vec<ops::PreferenceChange> = input
            .preferences
            .into_iter()
            .map(|p| ops::PreferenceChange {
                channel: p.channel.as_str(),
                communication_type: p.communication_type.as_str(),
                opted_in: p.opted_in,
                reason: p.reason,
            })
            .collect();
        write_payload(ctx, |conn, scope| {
            async move {
                let saved = ops::set_preferences(conn, scope, customer_id, changes).await?;
                Ok(saved
                    .into_iter()
                    .map(CommunicationPreference::from)
                    .collect())
            }
            .scope_boxed()
        })
        .await
    }
}
