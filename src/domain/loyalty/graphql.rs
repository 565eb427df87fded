use std::collections::HashMap;

use async_graphql::connection::Connection;
use async_graphql::dataloader::Loader;
use async_graphql::{ComplexObject, Context, InputObject, Object, SimpleObject, ID};
use chrono::{DateTime, Utc};
use scoped_futures::ScopedFutureExt;
use uuid::Uuid;

use super::model::{
    self, EnrollmentStatus, PointTransactionType, RedemptionStatus, RewardType, SyncStatus,
};
use super::ops;
use crate::auth::Access;
use crate::db::children::ChildRelation;
use crate::domain::{write_and_load, write_payload, OpError, OpResult};
use crate::error::{AppError, AppResult};
use crate::graphql::connection::IntoConnection;
use crate::graphql::connection::{Cursor, PageRequest};
use crate::graphql::context::request_context;
use crate::graphql::loaders::{load_child_pages, ChildPage, TenantLoader};
use crate::graphql::scalars::{parse_id, parse_optional_id, parse_required_id, Decimal};

#[derive(SimpleObject, Clone)]
pub struct ClubStage {
    pub id: ID,
    pub name: String,
    /// Position in the program (1 = entry stage).
    pub stage_order: i32,
    /// Discount in percent, 0 to 100.
    pub discount_percentage: Decimal,
    pub duration_months: i32,
    pub min_purchase_amount: Decimal,
    pub sync_status: SyncStatus,
    pub is_active: bool,
    /// The CRM's discount of the stage: the customer tag its members get (as set, or made
    /// by the stage's first sync with the tenant's CRM).
    pub crm_discount_id: Option<String>,
}

impl From<model::ClubStage> for ClubStage {
    fn from(s: model::ClubStage) -> Self {
        ClubStage {
            id: ID(s.id.to_string()),
            name: s.name,
            stage_order: s.stage_order,
            discount_percentage: s.discount_percentage.into(),
            duration_months: s.duration_months,
            min_purchase_amount: s.min_purchase_amount.into(),
            sync_status: s.sync_status,
            is_active: s.is_active,
            crm_discount_id: s.crm_discount_id,
        }
    }
}

#[derive(SimpleObject, Clone)]
#[graphql(complex)]
pub struct Enrollment {
    pub id: ID,
    pub status: EnrollmentStatus,
    pub enrolled_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub ended_at: Option<DateTime<Utc>>,
    pub sync_status: SyncStatus,
    pub customer_id: ID,
    pub qualifying_order_id: Option<ID>,
    #[graphql(skip)]
    pub stage_id: Uuid,
}

impl From<model::Enrollment> for Enrollment {
    fn from(e: model::Enrollment) -> Self {
        Enrollment {
            id: ID(e.id.to_string()),
            status: e.status,
            enrolled_at: e.enrolled_at,
            expires_at: e.expires_at,
            ended_at: e.ended_at,
            sync_status: e.sync_status,
            customer_id: ID(e.customer_id.to_string()),
            qualifying_order_id: e.qualifying_order_id.map(|id| ID(id.to_string())),
            stage_id: e.stage_id,
        }
    }
}

#[ComplexObject]
impl Enrollment {
    async fn stage(&self, ctx: &Context<'_>) -> AppResult<Option<ClubStage>> {
        let request = request_context(ctx)?;
        Ok(request
            .load_one(StageKey(self.stage_id))
            .await?
            .map(ClubStage::from))
    }

    /// Why the latest CRM sync did not happen (`not_configured: …`, or the CRM's own
    /// message), while it has not succeeded since.
    async fn sync_error(&self, ctx: &Context<'_>) -> AppResult<Option<String>> {
        let request = request_context(ctx)?;
        let id = parse_id(&self.id, &["id"])?;
        Ok(request
            .load_one(SyncErrorOf(id))
            .await?
            .and_then(|e| e.error))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SyncErrorOf(pub Uuid);

crate::load_by_ids!(SyncErrorOf => ops::SyncError, ops::sync_errors, |row: &ops::SyncError| row.enrollment_id);

#[derive(SimpleObject, Clone)]
pub struct PointTransaction {
    pub id: ID,
    /// Position in the customer's ledger (1, 2, 3, …).
    pub sequence: i64,
    pub transaction_type: PointTransactionType,
    /// Signed: positive credits, negative debits.
    pub points: i64,
    /// The customer's balance right after this entry.
    pub balance_after: i64,
    pub description: Option<String>,
    pub order_id: Option<ID>,
    pub redemption_id: Option<ID>,
    pub created_at: DateTime<Utc>,
}

impl From<model::PointTransaction> for PointTransaction {
    fn from(t: model::PointTransaction) -> Self {
        PointTransaction {
            id: ID(t.id.to_string()),
            sequence: t.sequence,
            transaction_type: t.transaction_type,
            points: t.points,
            balance_after: t.balance_after,
            description: t.description,
            order_id: t.order_id.map(|id| ID(id.to_string())),
            redemption_id: t.redemption_id.map(|id| ID(id.to_string())),
            created_at: t.created_at,
        }
    }
}

#[derive(SimpleObject, Clone)]
#[graphql(complex)]
pub struct Redemption {
    pub id: ID,
    pub customer_id: ID,
    pub reward_id: ID,
    pub quantity: i32,
    pub points_spent: i64,
    pub status: RedemptionStatus,
    pub fulfilled_at: Option<DateTime<Utc>>,
    pub cancelled_at: Option<DateTime<Utc>>,
    pub refunded_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

impl From<model::Redemption> for Redemption {
    fn from(r: model::Redemption) -> Self {
        Redemption {
            id: ID(r.id.to_string()),
            customer_id: ID(r.customer_id.to_string()),
            reward_id: ID(r.reward_id.to_string()),
            quantity: r.quantity,
            points_spent: r.points_spent,
            status: r.status,
            fulfilled_at: r.fulfilled_at,
            cancelled_at: r.cancelled_at,
            refunded_at: r.refunded_at,
            created_at: r.created_at,
        }
    }
}

#[ComplexObject]
impl Redemption {
    async fn reward(&self, ctx: &Context<'_>) -> AppResult<Option<Reward>> {
        let request = request_context(ctx)?;
        let id = parse_id(&self.reward_id, &["rewardId"])?;
        Ok(request.load_one(RewardKey(id)).await?.map(Reward::from))
    }
}

// ---- loaders ---------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct StageKey(pub Uuid);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CurrentEnrollmentKey(pub Uuid);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct EnrollmentsKey(pub Uuid);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PointsOf;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RedemptionsOf;

crate::load_by_ids!(StageKey => model::ClubStage, ops::stages_by_ids, |row: &model::ClubStage| row.id);

crate::load_by_ids!(CurrentEnrollmentKey => model::Enrollment, ops::current_enrollments, |row: &model::Enrollment| row.customer_id);

crate::load_groups!(EnrollmentsKey => model::Enrollment, ops::enrollments_of, |row: &model::Enrollment| Some(row.customer_id));

pub(crate) const POINT_TRANSACTIONS: ChildRelation = ChildRelation {
    table: "point_transactions",
    parent_column: "customer_id",
    sort_column: "created_at",
    kind_column: None,
};

pub(crate) const REDEMPTIONS: ChildRelation = ChildRelation {
    table: "reward_redemptions",
    parent_column: "customer_id",
    sort_column: "created_at",
    kind_column: None,
};

impl Loader<ChildPage<PointsOf>> for TenantLoader {
    type Value = Vec<model::PointTransaction>;
    type Error = AppError;

    async fn load(
        &self,
        keys: &[ChildPage<PointsOf>],
    ) -> Result<HashMap<ChildPage<PointsOf>, Self::Value>, AppError> {
        load_child_pages(
            self,
            keys,
            &POINT_TRANSACTIONS,
            |_| None,
            |t: &model::PointTransaction| t.customer_id,
        )
        .await
    }
}

impl Loader<ChildPage<RedemptionsOf>> for TenantLoader {
    type Value = Vec<model::Redemption>;
    type Error = AppError;

    async fn load(
        &self,
        keys: &[ChildPage<RedemptionsOf>],
    ) -> Result<HashMap<ChildPage<RedemptionsOf>, Self::Value>, AppError> {
        load_child_pages(
            self,
            keys,
            &REDEMPTIONS,
            |_| None,
            |r: &model::Redemption| r.customer_id,
        )
        .await
    }
}

// ---- program, rules, rewards -------------------------------------------------------------

#[derive(SimpleObject, Clone)]
#[graphql(complex)]
pub struct ClubProgram {
    pub id: ID,
    pub name: String,
    pub description: Option<String>,
    pub is_active: bool,
}

#[ComplexObject]
impl ClubProgram {
    /// The stages in order (bronze, silver, gold, …).
    async fn stages(&self, ctx: &Context<'_>) -> AppResult<Vec<ClubStage>> {
        let request = request_context(ctx)?;
        let stages = request
            .db
            .query(|conn, scope| ops::stages_of_program(conn, scope).scope_boxed())
            .await?;
        Ok(crate::graphql::connection::bounded(stages)
            .into_iter()
            .map(ClubStage::from)
            .collect())
    }
}

impl From<model::ClubProgram> for ClubProgram {
    fn from(p: model::ClubProgram) -> Self {
        ClubProgram {
            id: ID(p.id.to_string()),
            name: p.name,
            description: p.description,
            is_active: p.is_active,
        }
    }
}

#[derive(SimpleObject, Clone)]
pub struct LoyaltyRules {
    pub points_per_dollar: Decimal,
    /// Extra points, in percent of the base points of an order.
    pub bonus_percentage: Decimal,
    /// Cumulative membership days before orders earn points.
    pub min_membership_days: i32,
    /// What one point is worth when redeemed.
    pub point_dollar_value: Decimal,
    pub is_active: bool,
}

impl From<model::LoyaltyRules> for LoyaltyRules {
    fn from(r: model::LoyaltyRules) -> Self {
        LoyaltyRules {
            points_per_dollar: r.points_per_dollar.into(),
            bonus_percentage: r.bonus_percentage.into(),
            min_membership_days: r.min_membership_days,
            point_dollar_value: r.point_dollar_value.into(),
            is_active: r.is_active,
        }
    }
}

#[derive(SimpleObject, Clone)]
pub struct Reward {
    pub id: ID,
    pub name: String,
    pub description: Option<String>,
    pub reward_type: RewardType,
    pub points_cost: i32,
    /// Units left; null means unlimited.
    pub inventory: Option<i32>,
    pub available_from: Option<DateTime<Utc>>,
    pub available_until: Option<DateTime<Utc>>,
    pub is_active: bool,
    /// Redeemable right now: active, inside its window, in stock.
    pub available: bool,
}

impl From<model::Reward> for Reward {
    fn from(r: model::Reward) -> Self {
        let available = r.is_open(Utc::now()) && r.inventory.is_none_or(|i| i > 0);
        Reward {
            id: ID(r.id.to_string()),
            name: r.name,
            description: r.description,
            reward_type: r.reward_type,
            points_cost: r.points_cost,
            inventory: r.inventory,
            available_from: r.available_from,
            available_until: r.available_until,
            is_active: r.is_active,
            available,
        }
    }
}

// ---- queries ---------------------------------------------------------------------------

#[derive(InputObject, Default)]
pub struct EnrollmentFilter {
    pub status: Option<EnrollmentStatus>,
    pub customer_id: Option<ID>,
    pub stage_id: Option<ID>,
}

#[derive(InputObject, Default)]
pub struct RewardFilter {
    /// Only rewards redeemable now (true) or only those that are not (false).
    pub available: Option<bool>,
    pub reward_type: Option<RewardType>,
}

#[derive(InputObject, Default)]
pub struct RedemptionFilter {
    pub status: Option<RedemptionStatus>,
    pub customer_id: Option<ID>,
    pub reward_id: Option<ID>,
}

/// The operations' filter of the list's (and its aggregate's) `filter` argument.
pub(super) fn redemption_filter(
    filter: Option<RedemptionFilter>,
) -> AppResult<ops::RedemptionFilter> {
    let filter = filter.unwrap_or_default();
    Ok(ops::RedemptionFilter {
        status: filter.status,
        customer_id: parse_optional_id(&filter.customer_id, &["filter", "customerId"])?,
        reward_id: parse_optional_id(&filter.reward_id, &["filter", "rewardId"])?,
    })
}

type TimeCursor = Cursor<DateTime<Utc>>;

#[derive(Default)]
pub struct LoyaltyQuery;

#[Object]
impl LoyaltyQuery {
    /// The tenant's club program (one per tenant), with its stages.
    #[graphql(guard = "Access::Read")]
    async fn club_program(&self, ctx: &Context<'_>) -> AppResult<Option<ClubProgram>> {
        let request = request_context(ctx)?;
        Ok(request
            .db
            .query(|conn, scope| ops::program(conn, scope).scope_boxed())
            .await?
            .map(ClubProgram::from))
    }

    #[graphql(guard = "Access::Read")]
    async fn loyalty_rules(&self, ctx: &Context<'_>) -> AppResult<LoyaltyRules> {
        let request = request_context(ctx)?;
        Ok(request
            .db
            .query(|conn, scope| ops::rules(conn, scope).scope_boxed())
            .await?
            .into())
    }

    #[graphql(guard = "Access::Read")]
    async fn enrollment(&self, ctx: &Context<'_>, id: ID) -> AppResult<Option<Enrollment>> {
        let request = request_context(ctx)?;
        let id = parse_id(&id, &["id"])?;
        Ok(request
            .db
            .query(|conn, scope| ops::enrollment(conn, scope, id).scope_boxed())
            .await?
            .map(Enrollment::from))
    }

    /// Enrollments, newest first.
    #[graphql(guard = "Access::Read")]
    async fn enrollments(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
        filter: Option<EnrollmentFilter>,
    ) -> AppResult<Connection<TimeCursor, Enrollment>> {
        let request = request_context(ctx)?;
        let page = PageRequest::either(first, after, last, before)?;
        let filter = filter.unwrap_or_default();
        let filter = ops::EnrollmentFilter {
            status: filter.status,
            customer_id: parse_optional_id(&filter.customer_id, &["filter", "customerId"])?,
            stage_id: parse_optional_id(&filter.stage_id, &["filter", "stageId"])?,
        };
        let rows = request
            .db
            .query(|conn, scope| {
                let (filter, page) = (&filter, &page);
                async move { ops::list_enrollments(conn, scope, filter, page).await }.scope_boxed()
            })
            .await?;
        Ok(page.into_connection(
            rows,
            |e| Cursor {
                key: e.created_at,
                id: e.id,
            },
            Enrollment::from,
        ))
    }

    #[graphql(guard = "Access::Read")]
    async fn reward(&self, ctx: &Context<'_>, id: ID) -> AppResult<Option<Reward>> {
        let request = request_context(ctx)?;
        let id = parse_id(&id, &["id"])?;
        Ok(request.load_one(RewardKey(id)).await?.map(Reward::from))
    }

    /// The rewards catalog, oldest first.
    #[graphql(guard = "Access::Read")]
    async fn rewards(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
        filter: Option<RewardFilter>,
    ) -> AppResult<Connection<TimeCursor, Reward>> {
        let request = request_context(ctx)?;
        let page = PageRequest::either(first, after, last, before)?;
        let filter = filter.unwrap_or_default();
        let filter = ops::RewardFilter {
            available: filter.available,
            reward_type: filter.reward_type,
        };
        let rows = request
            .db
            .query(|conn, scope| {
                let (filter, page) = (&filter, &page);
                async move { ops::list_rewards(conn, scope, filter, page).await }.scope_boxed()
            })
            .await?;
        Ok(page.into_connection(
            rows,
            |r| Cursor {
                key: r.created_at,
                id: r.id,
            },
            Reward::from,
        ))
    }

    #[graphql(guard = "Access::Read")]
    async fn redemption(&self, ctx: &Context<'_>, id: ID) -> AppResult<Option<Redemption>> {
        let request = request_context(ctx)?;
        let id = parse_id(&id, &["id"])?;
        Ok(request
            .db
            .query(|conn, scope| ops::redemption(conn, scope, id).scope_boxed())
            .await?
            .map(Redemption::from))
    }

    /// Redemptions, newest first.
    #[graphql(guard = "Access::Read")]
    async fn redemptions(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
        filter: Option<RedemptionFilter>,
    ) -> AppResult<Connection<TimeCursor, Redemption>> {
        let request = request_context(ctx)?;
        let page = PageRequest::either(first, after, last, before)?;
        let filter = redemption_filter(filter)?;
        let rows = request
            .db
            .query(|conn, scope| {
                let (filter, page) = (&filter, &page);
                async move { ops::list_redemptions(conn, scope, filter, page).await }.scope_boxed()
            })
            .await?;
        Ok(page.into_connection(
            rows,
            |r| Cursor {
                key: r.created_at,
                id: r.id,
            },
            Redemption::from,
        ))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RewardKey(pub Uuid);

crate::load_by_ids!(RewardKey => model::Reward, ops::rewards_by_ids, |row: &model::Reward| row.id);

// ---- mutations -------------------------------------------------------------------------

#[derive(InputObject)]
pub struct SaveClubProgramInput {
    pub name: String,
    pub description: Option<String>,
    #[graphql(default = true)]
    pub is_active: bool,
}

#[derive(InputObject)]
pub struct ClubStageInput {
    /// Required to update a stage; absent to create one.
    pub id: Option<ID>,
    pub name: Option<String>,
    pub stage_order: Option<i32>,
    pub discount_percentage: Option<Decimal>,
    pub duration_months: Option<i32>,
    pub min_purchase_amount: Option<Decimal>,
    pub crm_discount_id: Option<String>,
    pub is_active: Option<bool>,
}

#[derive(InputObject)]
pub struct EnrollCustomerInput {
    pub customer_id: ID,
    pub stage_id: ID,
    /// Needed when the stage has a minimum purchase.
    pub qualifying_order_id: Option<ID>,
    pub idempotency_key: Option<String>,
}

#[derive(InputObject)]
pub struct UpgradeEnrollmentInput {
    pub enrollment_id: ID,
    pub stage_id: ID,
    pub qualifying_order_id: Option<ID>,
}

#[derive(InputObject)]
pub struct RenewEnrollmentInput {
    pub enrollment_id: ID,
    pub qualifying_order_id: ID,
}

#[derive(InputObject)]
pub struct CancelEnrollmentInput {
    pub enrollment_id: ID,
}

#[derive(InputObject)]
pub struct RetryCrmSyncInput {
    pub enrollment_id: ID,
}

#[derive(InputObject)]
pub struct UpdateLoyaltyRulesInput {
    pub points_per_dollar: Option<Decimal>,
    pub bonus_percentage: Option<Decimal>,
    pub min_membership_days: Option<i32>,
    pub point_dollar_value: Option<Decimal>,
    pub is_active: Option<bool>,
}

#[derive(InputObject)]
pub struct AdjustPointsInput {
    pub customer_id: ID,
    /// Signed: positive credits, negative debits.
    pub points: i64,
    pub reason: String,
    pub idempotency_key: Option<String>,
}

#[derive(InputObject)]
pub struct RewardInput {
    /// Required by updateReward; ignored by createReward.
    pub id: Option<ID>,
    pub name: Option<String>,
    pub description: Option<String>,
    pub reward_type: Option<RewardType>,
    pub points_cost: Option<i32>,
    pub inventory: Option<i32>,
    /// Set to true to make inventory unlimited.
    pub unlimited_inventory: Option<bool>,
    pub available_from: Option<DateTime<Utc>>,
    pub available_until: Option<DateTime<Utc>>,
    pub is_active: Option<bool>,
}

#[derive(InputObject)]
pub struct RedeemRewardInput {
    pub customer_id: ID,
    pub reward_id: ID,
    #[graphql(default = 1)]
    pub quantity: i32,
    pub idempotency_key: Option<String>,
}

#[derive(InputObject)]
pub struct RedemptionTransitionInput {
    pub redemption_id: ID,
}

crate::payload!(ClubProgramPayload { club_program: ClubProgram } from model::ClubProgram);

crate::payload!(ClubStagePayload { stage: ClubStage } from model::ClubStage);

crate::payload!(EnrollmentPayload { enrollment: Enrollment } from Option<model::Enrollment>);

crate::payload!(ExpireEnrollmentsPayload { expired_count: i32 } from i32);

crate::payload!(LoyaltyRulesPayload { loyalty_rules: LoyaltyRules } from model::LoyaltyRules);

crate::payload!(AdjustPointsPayload {
    point_transaction: PointTransaction
} from model::PointTransaction);

crate::payload!(RewardPayload { reward: Reward } from model::Reward);

crate::payload!(RedemptionPayload { redemption: Redemption } from Option<model::Redemption>);

fn stage_fields(input: &ClubStageInput) -> model::StageFields {
    model::StageFields {
        name: input.name.clone(),
        stage_order: input.stage_order,
        discount_percentage: input.discount_percentage.clone().map(|d| d.0),
        duration_months: input.duration_months,
        min_purchase_amount: input.min_purchase_amount.clone().map(|d| d.0),
        crm_discount_id: input.crm_discount_id.clone(),
        is_active: input.is_active,
    }
}

fn reward_fields(input: &RewardInput) -> model::RewardFields {
    let inventory = match (input.unlimited_inventory, input.inventory) {
        (Some(true), _) => Some(None),
        (_, Some(n)) => Some(Some(n)),
        _ => None,
    };
    model::RewardFields {
        name: input.name.clone(),
        description: input.description.clone().map(Some),
        reward_type: input.reward_type,
        points_cost: input.points_cost,
        inventory,
        available_from: input.available_from.map(Some),
        available_until: input.available_until.map(Some),
        is_active: input.is_active,
    }
}

/// Runs an enrollment operation and returns the payload with the resulting enrollment.
async fn enrollment_payload<'a, F>(ctx: &Context<'_>, work: F) -> AppResult<EnrollmentPayload>
where
    F: crate::db::tenant::Work<'a, OpResult<Uuid>>,
{
    write_and_load(ctx, work, |conn, scope, id| {
        ops::enrollment(conn, scope, id).scope_boxed()
    })
    .await
}

#[derive(Default)]
pub struct LoyaltyMutation;

#[Object]
impl LoyaltyMutation {
    /// Creates the tenant's club program, or updates it (one per tenant).
    #[graphql(guard = "Access::Admin")]
    async fn save_club_program(
        &self,
        ctx: &Context<'_>,
        input: SaveClubProgramInput,
    ) -> AppResult<ClubProgramPayload> {
        write_payload(ctx, |conn, scope| {
            let input = &input;
            async move {
                ops::save_program(
                    conn,
                    scope,
                    &input.name,
                    input.description.as_deref(),
                    input.is_active,
                )
                .await
            }
            .scope_boxed()
        })
        .await
    }

    #[graphql(guard = "Access::Admin")]
    async fn create_club_stage(
        &self,
        ctx: &Context<'_>,
        input: ClubStageInput,
    ) -> AppResult<ClubStagePayload> {
        let fields = stage_fields(&input);
        write_payload(ctx, |conn, scope| {
            async move { ops::create_stage(conn, scope, fields).await }.scope_boxed()
        })
        .await
    }

    #[graphql(guard = "Access::Admin")]
    async fn update_club_stage(
        &self,
        ctx: &Context<'_>,
        input: ClubStageInput,
    ) -> AppResult<ClubStagePayload> {
        let id = parse_required_id(&input.id, &["input", "id"])?;
        let fields = stage_fields(&input);
        write_payload(ctx, |conn, scope| {
            async move { ops::update_stage(conn, scope, id, fields).await }.scope_boxed()
        })
        .await
    }

    /// Enrolls a customer at a stage (one active enrollment per customer).
    #[graphql(guard = "Access::Admin")]
    async fn enroll_customer(
        &self,
        ctx: &Context<'_>,
        input: EnrollCustomerInput,
    ) -> AppResult<EnrollmentPayload> {
        let enroll = ops::Enroll {
            customer_id: parse_id(&input.customer_id, &["input", "customerId"])?,
            stage_id: parse_id(&input.stage_id, &["input", "stageId"])?,
            qualifying_order_id: parse_optional_id(
                &input.qualifying_order_id,
                &["input", "qualifyingOrderId"],
            )?,
        };
        let key = input.idempotency_key;
        enrollment_payload(ctx, |conn, scope| {
            async move { ops::enroll(conn, scope, enroll, key.as_deref()).await }.scope_boxed()
        })
        .await
    }

    /// Moves an active enrollment to a higher stage, keeping its enrollment date.
    #[graphql(guard = "Access::Admin")]
    async fn upgrade_enrollment(
        &self,
        ctx: &Context<'_>,
        input: UpgradeEnrollmentInput,
    ) -> AppResult<EnrollmentPayload> {
        let id = parse_id(&input.enrollment_id, &["input", "enrollmentId"])?;
        let stage = parse_id(&input.stage_id, &["input", "stageId"])?;
        let order = parse_optional_id(&input.qualifying_order_id, &["input", "qualifyingOrderId"])?;
        enrollment_payload(ctx, |conn, scope| {
            async move { ops::upgrade(conn, scope, id, stage, order).await }.scope_boxed()
        })
        .await
    }

    /// Extends an active enrollment from its current expiry, for a qualifying order.
    #[graphql(guard = "Access::Admin")]
    async fn renew_enrollment(
        &self,
        ctx: &Context<'_>,
        input: RenewEnrollmentInput,
    ) -> AppResult<EnrollmentPayload> {
        let id = parse_id(&input.enrollment_id, &["input", "enrollmentId"])?;
        let order = parse_id(&input.qualifying_order_id, &["input", "qualifyingOrderId"])?;
        enrollment_payload(ctx, |conn, scope| {
            async move { ops::renew(conn, scope, id, order).await }.scope_boxed()
        })
        .await
    }

    #[graphql(guard = "Access::Admin")]
    async fn cancel_enrollment(
        &self,
        ctx: &Context<'_>,
        input: CancelEnrollmentInput,
    ) -> AppResult<EnrollmentPayload> {
        let id = parse_id(&input.enrollment_id, &["input", "enrollmentId"])?;
        enrollment_payload(ctx, |conn, scope| {
            async move { ops::cancel(conn, scope, id).await }.scope_boxed()
        })
        .await
    }

    /// Queues the enrollment's CRM sync again (after a CRM is configured, or once a sync
    /// failed for good); its `syncStatus` is `PENDING` until the sync runs.
    #[graphql(guard = "Access::Admin")]
    async fn retry_crm_sync(
        &self,
        ctx: &Context<'_>,
        input: RetryCrmSyncInput,
    ) -> AppResult<EnrollmentPayload> {
        let id = parse_id(&input.enrollment_id, &["input", "enrollmentId"])?;
        enrollment_payload(ctx, |conn, scope| {
            async move { ops::retry_crm_sync(conn, scope, id).await }.scope_boxed()
        })
        .await
    }

    /// Expires every active enrollment past its expiry now (the scheduler does this too).
    #[graphql(guard = "Access::Admin")]
    async fn expire_enrollments(&self, ctx: &Context<'_>) -> AppResult<ExpireEnrollmentsPayload> {
        write_payload(ctx, |conn, scope| {
            async move { Ok(ops::expire_due(conn, scope, Utc::now()).await?.len() as i32) }
                .scope_boxed()
        })
        .await
    }

    #[graphql(guard = "Access::Admin")]
    async fn update_loyalty_rules(
        &self,
        ctx: &Context<'_>,
        input: UpdateLoyaltyRulesInput,
    ) -> AppResult<LoyaltyRulesPayload> {
        let update = ops::RulesUpdate {
            points_per_dollar: input.points_per_dollar.map(|d| d.0),
            bonus_percentage: input.bonus_percentage.map(|d| d.0),
            min_membership_days: input.min_membership_days,
            point_dollar_value: input.point_dollar_value.map(|d| d.0),
            is_active: input.is_active,
        };
        write_payload(ctx, |conn, scope| {
            async move { ops::update_rules(conn, scope, update).await }.scope_boxed()
        })
        .await
    }

    /// Credits or debits points by hand, with a reason.
    #[graphql(guard = "Access::Admin")]
    async fn adjust_points(
        &self,
        ctx: &Context<'_>,
        input: AdjustPointsInput,
    ) -> AppResult<AdjustPointsPayload> {
        let adjust = ops::AdjustPoints {
            customer_id: parse_id(&input.customer_id, &["input", "customerId"])?,
            points: input.points,
            reason: input.reason,
        };
        let key = input.idempotency_key;
        write_payload(ctx, |conn, scope| {
            async move {
                let id = ops::adjust_points(conn, scope, adjust, key.as_deref()).await?;
                Ok::<_, OpError>(ops::point_transaction(conn, scope, id).await?)
            }
            .scope_boxed()
        })
        .await
    }

    #[graphql(guard = "Access::Admin")]
    async fn create_reward(
        &self,
        ctx: &Context<'_>,
        input: RewardInput,
    ) -> AppResult<RewardPayload> {
        let fields = reward_fields(&input);
        write_payload(ctx, |conn, scope| {
            async move { ops::create_reward(conn, scope, fields).await }.scope_boxed()
        })
        .await
    }

    #[graphql(guard = "Access::Admin")]
    async fn update_reward(
        &self,
        ctx: &Context<'_>,
        input: RewardInput,
    ) -> AppResult<RewardPayload> {
        let id = parse_required_id(&input.id, &["input", "id"])?;
        let fields = reward_fields(&input);
        write_payload(ctx, |conn, scope| {
            async move { ops::update_reward(conn, scope, id, fields).await }.scope_boxed()
        })
        .await
    }

    /// Redeems a reward: checks availability, stock and balance, then debits the points,
    /// takes the stock and creates a pending redemption, all at once.
    #[graphql(guard = "Access::Admin")]
    async fn redeem_reward(
        &self,
        ctx: &Context<'_>,
        input: RedeemRewardInput,
    ) -> AppResult<RedemptionPayload> {
        let redeem = ops::Redeem {
            customer_id: parse_id(&input.customer_id, &["input", "customerId"])?,
            reward_id: parse_id(&input.reward_id, &["input", "rewardId"])?,
            quantity: input.quantity,
        };
        let key = input.idempotency_key;
        write_payload(ctx, |conn, scope| {
            async move { ops::redeem(conn, scope, redeem, key.as_deref()).await }.scope_boxed()
        })
        .await
    }

    #[graphql(guard = "Access::Admin")]
    async fn fulfill_redemption(
        &self,
        ctx: &Context<'_>,
        input: RedemptionTransitionInput,
    ) -> AppResult<RedemptionPayload> {
        self.transition(ctx, input, ops::RedemptionAction::Fulfill)
            .await
    }

    /// Cancels a pending redemption: points and stock come back.
    #[graphql(guard = "Access::Admin")]
    async fn cancel_redemption(
        &self,
        ctx: &Context<'_>,
        input: RedemptionTransitionInput,
    ) -> AppResult<RedemptionPayload> {
        self.transition(ctx, input, ops::RedemptionAction::Cancel)
            .await
    }

    /// Refunds a fulfilled redemption: points come back.
    #[graphql(guard = "Access::Admin")]
    async fn refund_redemption(
        &self,
        ctx: &Context<'_>,
        input: RedemptionTransitionInput,
    ) -> AppResult<RedemptionPayload> {
        self.transition(ctx, input, ops::RedemptionAction::Refund)
            .await
    }
}

impl LoyaltyMutation {
    async fn transition(
        &self,
        ctx: &Context<'_>,
        input: RedemptionTransitionInput,
        action: ops::RedemptionAction,
    ) -> AppResult<RedemptionPayload> {
        let id = parse_id(&input.redemption_id, &["input", "redemptionId"])?;
        write_payload(ctx, |conn, scope| {
            async move { ops::transition_redemption(conn, scope, id, action).await }.scope_boxed()
        })
        .await
    }
}
