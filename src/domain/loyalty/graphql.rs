use std::collections::HashMap;

use async_graphql::dataloader::Loader;
use async_graphql::{ComplexObject, Context, SimpleObject, ID};
use chrono::{DateTime, Utc};
use scoped_futures::ScopedFutureExt;
use uuid::Uuid;

use super::model::{self, EnrollmentStatus, PointTransactionType, RedemptionStatus, SyncStatus};
use super::ops;
use crate::db::children::ChildRelation;
use crate::error::{AppError, AppResult};
use crate::graphql::context::request_context;
use crate::graphql::loaders::{load_child_pages, ChildPage, TenantLoader};
use crate::graphql::scalars::Decimal;

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
            stage_id: e.stage_id,
        }
    }
}

#[ComplexObject]
impl Enrollment {
    async fn stage(&self, ctx: &Context<'_>) -> AppResult<Option<ClubStage>> {
        let request = request_context(ctx)?;
        Ok(request
            .loader
            .load_one(StageKey(self.stage_id))
            .await?
            .map(ClubStage::from))
    }
}

#[derive(SimpleObject, Clone)]
pub struct PointTransaction {
    pub id: ID,
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
pub struct Redemption {
    pub id: ID,
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

impl Loader<StageKey> for TenantLoader {
    type Value = model::ClubStage;
    type Error = AppError;

    async fn load(&self, keys: &[StageKey]) -> Result<HashMap<StageKey, Self::Value>, AppError> {
        let ids: Vec<Uuid> = keys.iter().map(|k| k.0).collect();
        let rows = self
            .db()
            .query(|conn, scope| ops::stages_by_ids(conn, scope, &ids).scope_boxed())
            .await?;
        Ok(rows.into_iter().map(|s| (StageKey(s.id), s)).collect())
    }
}

impl Loader<CurrentEnrollmentKey> for TenantLoader {
    type Value = model::Enrollment;
    type Error = AppError;

    async fn load(
        &self,
        keys: &[CurrentEnrollmentKey],
    ) -> Result<HashMap<CurrentEnrollmentKey, Self::Value>, AppError> {
        let ids: Vec<Uuid> = keys.iter().map(|k| k.0).collect();
        let rows = self
            .db()
            .query(|conn, scope| ops::current_enrollments(conn, scope, &ids).scope_boxed())
            .await?;
        Ok(rows
            .into_iter()
            .map(|e| (CurrentEnrollmentKey(e.customer_id), e))
            .collect())
    }
}

impl Loader<EnrollmentsKey> for TenantLoader {
    type Value = Vec<model::Enrollment>;
    type Error = AppError;

    async fn load(
        &self,
        keys: &[EnrollmentsKey],
    ) -> Result<HashMap<EnrollmentsKey, Self::Value>, AppError> {
        let ids: Vec<Uuid> = keys.iter().map(|k| k.0).collect();
        let rows = self
            .db()
            .query(|conn, scope| ops::enrollments_of(conn, scope, &ids).scope_boxed())
            .await?;
        let mut map: HashMap<EnrollmentsKey, Self::Value> =
            keys.iter().map(|k| (*k, Vec::new())).collect();
        for e in rows {
            map.entry(EnrollmentsKey(e.customer_id))
                .or_default()
                .push(e);
        }
        Ok(map)
    }
}

const POINT_TRANSACTIONS: ChildRelation = ChildRelation {
    table: "point_transactions",
    parent_column: "customer_id",
    sort_column: "created_at",
    kind_column: None,
};

const REDEMPTIONS: ChildRelation = ChildRelation {
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
