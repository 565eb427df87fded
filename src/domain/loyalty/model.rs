use bigdecimal::BigDecimal;
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use uuid::Uuid;

use crate::db::schema::{
    club_enrollments, club_extensions, club_programs, club_stages, loyalty_point_rules,
    loyalty_rewards, point_transactions, reward_redemptions,
};

text_enum!(pub EnrollmentStatus {
    Active => "active",
    Expired => "expired",
    Upgraded => "upgraded",
    Cancelled => "cancelled",
});

text_enum!(pub PointTransactionType {
    Earned => "earned",
    Redeemed => "redeemed",
    Bonus => "bonus",
    Adjusted => "adjusted",
    Refunded => "refunded",
});

text_enum!(pub RedemptionStatus {
    Pending => "pending",
    Fulfilled => "fulfilled",
    Cancelled => "cancelled",
    Refunded => "refunded",
});

text_enum!(pub SyncStatus {
    Pending => "pending",
    Synced => "synced",
    Failed => "failed",
    /// No CRM is configured for the tenant: nothing was synchronised.
    NotConfigured => "not_configured",
});

#[derive(Debug, Clone, Queryable, Selectable, Identifiable)]
#[diesel(table_name = club_stages, check_for_backend(diesel::pg::Pg))]
pub struct ClubStage {
    pub id: Uuid,
    pub program_id: Uuid,
    pub name: String,
    pub stage_order: i32,
    pub discount_percentage: BigDecimal,
    pub duration_months: i32,
    pub min_purchase_amount: BigDecimal,
    pub sync_status: SyncStatus,
    pub is_active: bool,
    pub crm_discount_id: Option<String>,
}

#[derive(Debug, Clone, Queryable, Selectable, Identifiable)]
#[diesel(table_name = club_enrollments, check_for_backend(diesel::pg::Pg))]
pub struct Enrollment {
    pub id: Uuid,
    pub customer_id: Uuid,
    pub program_id: Uuid,
    pub stage_id: Uuid,
    pub status: EnrollmentStatus,
    pub enrolled_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub ended_at: Option<DateTime<Utc>>,
    pub qualifying_order_id: Option<Uuid>,
    pub sync_status: SyncStatus,
    pub created_at: DateTime<Utc>,
}

impl Enrollment {
    /// The span this enrollment counted as membership, up to `now`.
    pub fn membership_span(&self, now: DateTime<Utc>) -> (DateTime<Utc>, DateTime<Utc>) {
        let end = [Some(self.expires_at), self.ended_at, Some(now)]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or(now);
        (self.enrolled_at, end.max(self.enrolled_at))
    }
}

/// Days covered by the union of the enrollments' spans (upgrades overlap their
/// predecessor, so spans are merged before counting).
pub fn cumulative_membership_days(enrollments: &[Enrollment], now: DateTime<Utc>) -> i64 {
    let mut spans: Vec<_> = enrollments.iter().map(|e| e.membership_span(now)).collect();
    spans.sort();
    let mut total = chrono::Duration::zero();
    let mut current: Option<(DateTime<Utc>, DateTime<Utc>)> = None;
    for (start, end) in spans {
        current = match current {
            Some((s, e)) if start <= e => Some((s, e.max(end))),
            Some((s, e)) => {
                total += e - s;
                Some((start, end))
            }
            None => Some((start, end)),
        };
    }
    if let Some((s, e)) = current {
        total += e - s;
    }
    total.num_days()
}

#[derive(Debug, Clone, Queryable, QueryableByName, Selectable, Identifiable)]
#[diesel(table_name = point_transactions, check_for_backend(diesel::pg::Pg))]
pub struct PointTransaction {
    pub id: Uuid,
    pub customer_id: Uuid,
    pub sequence: i64,
    pub transaction_type: PointTransactionType,
    pub points: i64,
    pub balance_after: i64,
    pub order_id: Option<Uuid>,
    pub reward_id: Option<Uuid>,
    pub redemption_id: Option<Uuid>,
    pub description: Option<String>,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Queryable, QueryableByName, Selectable, Identifiable)]
#[diesel(table_name = reward_redemptions, check_for_backend(diesel::pg::Pg))]
pub struct Redemption {
    pub id: Uuid,
    pub customer_id: Uuid,
    pub reward_id: Uuid,
    pub quantity: i32,
    pub points_spent: i64,
    pub status: RedemptionStatus,
    pub fulfilled_at: Option<DateTime<Utc>>,
    pub cancelled_at: Option<DateTime<Utc>>,
    pub refunded_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

text_enum!(pub RewardType {
    Merchandise => "merchandise",
    Event => "event",
    Tasting => "tasting",
    WinePointSale => "wine_point_sale",
});

text_enum!(pub ExtensionType {
    Enrolled => "enrolled",
    Renewal => "renewal",
    Upgrade => "upgrade",
    Expired => "expired",
    Cancelled => "cancelled",
});

#[derive(Debug, Clone, Queryable, Selectable, Identifiable)]
#[diesel(table_name = club_programs, check_for_backend(diesel::pg::Pg))]
pub struct ClubProgram {
    pub id: Uuid,
    pub name: String,
    pub description: Option<String>,
    pub is_active: bool,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Insertable, AsChangeset)]
#[diesel(table_name = club_stages)]
pub struct StageFields {
    pub name: Option<String>,
    pub stage_order: Option<i32>,
    pub discount_percentage: Option<BigDecimal>,
    pub duration_months: Option<i32>,
    pub min_purchase_amount: Option<BigDecimal>,
    pub crm_discount_id: Option<String>,
    pub is_active: Option<bool>,
}

#[derive(Debug, Insertable)]
#[diesel(table_name = club_enrollments)]
pub struct NewEnrollment {
    pub tenant_id: Uuid,
    pub customer_id: Uuid,
    pub program_id: Uuid,
    pub stage_id: Uuid,
    pub enrolled_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub qualifying_order_id: Option<Uuid>,
}

#[derive(Debug, Insertable)]
#[diesel(table_name = club_extensions)]
pub struct NewExtension {
    pub tenant_id: Uuid,
    pub enrollment_id: Uuid,
    pub extension_type: ExtensionType,
    pub from_stage_id: Option<Uuid>,
    pub to_stage_id: Option<Uuid>,
    pub previous_expires_at: Option<DateTime<Utc>>,
    pub new_expires_at: Option<DateTime<Utc>>,
    pub qualifying_order_id: Option<Uuid>,
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = loyalty_point_rules, check_for_backend(diesel::pg::Pg))]
pub struct LoyaltyRules {
    pub points_per_dollar: BigDecimal,
    pub bonus_percentage: BigDecimal,
    pub min_membership_days: i32,
    pub point_dollar_value: BigDecimal,
    pub is_active: bool,
}

impl Default for LoyaltyRules {
    /// Seed 004's defaults: 1 point per dollar, no bonus, 365 days, a point is worth 1 cent.
    fn default() -> Self {
        LoyaltyRules {
            points_per_dollar: BigDecimal::from(1),
            bonus_percentage: BigDecimal::from(0),
            min_membership_days: 365,
            point_dollar_value: "0.01".parse().expect("valid decimal"),
            is_active: true,
        }
    }
}

#[derive(Debug, Clone, Queryable, QueryableByName, Selectable, Identifiable)]
#[diesel(table_name = loyalty_rewards, check_for_backend(diesel::pg::Pg))]
pub struct Reward {
    pub id: Uuid,
    pub name: String,
    pub description: Option<String>,
    pub reward_type: RewardType,
    pub points_cost: i32,
    pub inventory: Option<i32>,
    pub available_from: Option<DateTime<Utc>>,
    pub available_until: Option<DateTime<Utc>>,
    pub is_active: bool,
    pub created_at: DateTime<Utc>,
}

impl Reward {
    /// Active and inside its availability window at `now` (stock is checked separately).
    pub fn is_open(&self, now: DateTime<Utc>) -> bool {
        self.is_active
            && self.available_from.is_none_or(|from| from <= now)
            && self.available_until.is_none_or(|until| now < until)
    }
}

#[derive(Debug, Clone, Default, AsChangeset, Insertable)]
#[diesel(table_name = loyalty_rewards)]
pub struct RewardFields {
    pub name: Option<String>,
    pub description: Option<Option<String>>,
    pub reward_type: Option<RewardType>,
    pub points_cost: Option<i32>,
    pub inventory: Option<Option<i32>>,
    pub available_from: Option<Option<DateTime<Utc>>>,
    pub available_until: Option<Option<DateTime<Utc>>>,
    pub is_active: Option<bool>,
}
