//! Rewards and redemptions: stock, balance and transitions.

use super::*;

pub(super) fn check_reward(fields: &RewardFields) -> Result<(), OpError> {
    if let Some(name) = &fields.name {
        check_name("name", name)?;
    }
    if fields.points_cost.is_some_and(|c| c <= 0) {
        return Err(user_error(
            UserErrorCode::Invalid,
            &["input", "pointsCost"],
            "pointsCost must be positive",
        ));
    }
    if fields.inventory.flatten().is_some_and(|i| i < 0) {
        return Err(user_error(
            UserErrorCode::Invalid,
            &["input", "inventory"],
            "inventory cannot be negative",
        ));
    }
    if let (Some(Some(from)), Some(Some(until))) = (fields.available_from, fields.available_until) {
        if until <= from {
            return Err(user_error(
                UserErrorCode::Invalid,
                &["input", "availableUntil"],
                "availableUntil must be after availableFrom",
            ));
        }
    }
    if fields
        .description
        .as_ref()
        .and_then(|d| d.as_ref())
        .is_some_and(|d| d.chars().count() > 5000 || d.contains('\0'))
    {
        return Err(user_error(
            UserErrorCode::Invalid,
            &["input", "description"],
            "description must be at most 5000 characters",
        ));
    }
    Ok(())
}

pub async fn create_reward(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
    fields: RewardFields,
) -> OpResult<Reward> {
    check_reward(&fields)?;
    if fields.name.is_none() || fields.points_cost.is_none() || fields.reward_type.is_none() {
        return Err(user_error(
            UserErrorCode::Invalid,
            &["input"],
            "name, rewardType and pointsCost are required",
        ));
    }
    let reward = diesel::insert_into(loyalty_rewards::table)
        .values((loyalty_rewards::tenant_id.eq(scope.id()), fields))
        .returning(Reward::as_returning())
        .get_result(conn)
        .await?;
    events::record(
        conn,
        scope,
        "reward.saved",
        reward.id,
        json!({ "name": reward.name }),
    )
    .await?;
    Ok(reward)
}

pub async fn update_reward(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
    id: Uuid,
    fields: RewardFields,
) -> OpResult<Reward> {
    check_reward(&fields)?;
    let target = loyalty_rewards::table
        .filter(loyalty_rewards::tenant_id.eq(scope.id()))
        .filter(loyalty_rewards::id.eq(id));
    let reward = diesel::update(target)
        .set(fields)
        .returning(Reward::as_returning())
        .get_result(conn)
        .await
        .optional()
        .map_err(|e| match e {
            DieselError::DatabaseError(DatabaseErrorKind::CheckViolation, _) => user_error(
                UserErrorCode::Invalid,
                &["input", "availableUntil"],
                "availableUntil must be after availableFrom",
            ),
            DieselError::QueryBuilderError(_) => {
                user_error(UserErrorCode::Invalid, &["input"], "nothing to update")
            }
            e => e.into(),
        })?
        .ok_or_else(|| user_error(UserErrorCode::NotFound, &["input", "id"], "no such reward"))?;
    events::record(
        conn,
        scope,
        "reward.saved",
        reward.id,
        json!({ "name": reward.name }),
    )
    .await?;
    Ok(reward)
}

#[derive(Debug, Clone, Serialize)]
pub struct Redeem {
    pub customer_id: Uuid,
    pub reward_id: Uuid,
    pub quantity: i32,
}

/// The `redemption.changed` event of `r`'s current state.
fn redemption_event(r: &Redemption) -> (String, Uuid, serde_json::Value) {
    (
        "redemption.changed".to_string(),
        r.id,
        json!({ "status": r.status, "customerId": r.customer_id, "rewardId": r.reward_id, "quantity": r.quantity }),
    )
}

pub(super) async fn redemption_changed(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
    r: &Redemption,
) -> QueryResult<()> {
    let (event_type, subject, payload) = redemption_event(r);
    events::record(conn, scope, &event_type, subject, payload).await
}

/// Redeems a reward: checks it is active and inside its window, then (in this one
/// transaction) takes the stock with a conditional decrement (no oversell under any
/// concurrency), debits the points through the ledger (never negative), and creates the
/// `pending` redemption. Any failure rolls all of it back. Answers the redemption as it
/// now is: the row just written, or on a replayed key the one its first call made.
pub async fn redeem(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
    input: Redeem,
    key: Option<&str>,
) -> OpResult<Option<Redemption>> {
    if !(1..=1000).contains(&input.quantity) {
        return Err(user_error(
            UserErrorCode::Invalid,
            &["input", "quantity"],
            "quantity must be 1 to 1000",
        ));
    }
    // A replay stores and returns the id only; the row written here needs no reading back.
    let mut written = None;
    let id = idempotency::once(conn, scope, key, "redeemReward", &input, async |conn| {
        let field = &["input", "rewardId"];
        let reward = rewards_by_ids(conn, scope, &[input.reward_id])
            .await?
            .pop()
            .ok_or_else(|| user_error(UserErrorCode::NotFound, field, "no such reward"))?;
        if !reward.is_open(Utc::now()) {
            return Err(user_error(
                UserErrorCode::RewardUnavailable,
                field,
                "this reward is not available now",
            ));
        }
        // Customer exists? (Checked before taking stock, so an unknown id is NOT_FOUND.)
        // The lock is held to the end: the ledger entry below uses the balance read here.
        let locked =
            lock_customer(conn, scope, input.customer_id, &["input", "customerId"]).await?;
        // Unlimited stock (as read above) has nothing to take.
        if reward.inventory.is_some() {
            let taken = diesel::update(
                loyalty_rewards::table
                    .filter(loyalty_rewards::tenant_id.eq(scope.id()))
                    .filter(loyalty_rewards::id.eq(reward.id))
                    .filter(loyalty_rewards::inventory.ge(input.quantity)),
            )
            .set(loyalty_rewards::inventory.eq(loyalty_rewards::inventory - input.quantity))
            .execute(conn)
            .await?;
            if taken == 0 {
                return Err(user_error(
                    UserErrorCode::OutOfStock,
                    field,
                    "not enough of this reward left",
                ));
            }
        }
        let cost = i64::from(reward.points_cost) * i64::from(input.quantity);
        let redemption = diesel::insert_into(reward_redemptions::table)
            .values((
                reward_redemptions::tenant_id.eq(scope.id()),
                reward_redemptions::customer_id.eq(input.customer_id),
                reward_redemptions::reward_id.eq(reward.id),
                reward_redemptions::quantity.eq(input.quantity),
                reward_redemptions::points_spent.eq(cost),
            ))
            .returning(Redemption::as_returning())
            .get_result(conn)
            .await?;
        let description = format!("Redeemed {} × {}", input.quantity, reward.name);
        append_locked_with(
            conn,
            scope,
            LedgerEntry {
                customer_id: input.customer_id,
                kind: PointTransactionType::Redeemed,
                points: -cost,
                order_id: None,
                reward_id: Some(reward.id),
                redemption_id: Some(redemption.id),
                description: Some(&description),
            },
            locked,
            vec![redemption_event(&redemption)],
        )
        .await?;
        let id = redemption.id;
        written = Some(redemption);
        Ok(id)
    })
    .await?;
    match written {
        Some(redemption) => Ok(Some(redemption)),
        None => Ok(super::redemption(conn, scope, id).await?),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RedemptionAction {
    Fulfill,
    Cancel,
    Refund,
}

/// `pending → fulfilled`, `pending → cancelled` (points and stock restored),
/// `fulfilled → refunded` (points restored); anything else is INVALID_TRANSITION. Answers
/// the redemption as the transition left it.
pub async fn transition_redemption(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
    id: Uuid,
    action: RedemptionAction,
) -> OpResult<Option<Redemption>> {
    use RedemptionStatus::*;
    let current = crate::tenant_row!(
        locked conn,
        scope,
        reward_redemptions,
        id,
        Redemption::as_select(),
        &["input", "redemptionId"],
        "no such redemption"
    )?;
    let (next, restore_points, restore_stock) = match (current.status, action) {
        (Pending, RedemptionAction::Fulfill) => (Fulfilled, false, false),
        (Pending, RedemptionAction::Cancel) => (Cancelled, true, true),
        (Fulfilled, RedemptionAction::Refund) => (Refunded, true, false),
        (from, _) => {
            return Err(user_error(
                UserErrorCode::InvalidTransition,
                &["input", "redemptionId"],
                &format!(
                    "a {} redemption cannot be {}",
                    from.as_str(),
                    match action {
                        RedemptionAction::Fulfill => "fulfilled",
                        RedemptionAction::Cancel => "cancelled",
                        RedemptionAction::Refund => "refunded",
                    }
                ),
            ))
        }
    };
    // The transition's own timestamp is now; the others stay as they were.
    let now = Utc::now();
    let at = |status: RedemptionStatus, was: Option<DateTime<Utc>>| match next == status {
        true => Some(now),
        false => was,
    };
    let updated = diesel::update(
        reward_redemptions::table
            .filter(reward_redemptions::tenant_id.eq(scope.id()))
            .filter(reward_redemptions::id.eq(id)),
    )
    .set((
        reward_redemptions::status.eq(next),
        reward_redemptions::fulfilled_at.eq(at(Fulfilled, current.fulfilled_at)),
        reward_redemptions::cancelled_at.eq(at(Cancelled, current.cancelled_at)),
        reward_redemptions::refunded_at.eq(at(Refunded, current.refunded_at)),
    ))
    .returning(Redemption::as_returning())
    .get_result(conn)
    .await?;
    // Customer before reward, as in `redeem`: one lock order, no deadlock.
    if restore_points {
        let description = format!("Points returned for redemption ({})", next.as_str());
        append_ledger(
            conn,
            scope,
            LedgerEntry {
                customer_id: current.customer_id,
                kind: PointTransactionType::Refunded,
                points: current.points_spent,
                order_id: None,
                reward_id: Some(current.reward_id),
                redemption_id: Some(current.id),
                description: Some(&description),
            },
        )
        .await?;
    }
    if restore_stock {
        diesel::update(
            loyalty_rewards::table
                .filter(loyalty_rewards::tenant_id.eq(scope.id()))
                .filter(loyalty_rewards::id.eq(current.reward_id))
                .filter(loyalty_rewards::inventory.is_not_null()),
        )
        .set(loyalty_rewards::inventory.eq(loyalty_rewards::inventory + current.quantity))
        .execute(conn)
        .await?;
    }
    redemption_changed(conn, scope, &updated).await?;
    Ok(Some(updated))
}
