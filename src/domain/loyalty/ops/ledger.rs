//! The points ledger: one way points move (append-only, running balance, never negative,
//! at most `MAX_POINTS`), points for orders, adjustments, the rules.

use super::*;

/// The most points a customer's balance or lifetime total may reach: GraphQL's `Int`
/// (32 bits), in which the API returns them.
pub const MAX_POINTS: i64 = i32::MAX as i64;

pub struct LedgerEntry<'a> {
    pub customer_id: Uuid,
    pub kind: PointTransactionType,
    pub points: i64,
    pub order_id: Option<Uuid>,
    pub reward_id: Option<Uuid>,
    pub redemption_id: Option<Uuid>,
    pub description: Option<&'a str>,
}

/// The one way points move: lock the customer, append the entry with its running
/// balance, update the cached balance. A debit beyond the balance is INSUFFICIENT_POINTS.
pub async fn append_ledger(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
    entry: LedgerEntry<'_>,
) -> OpResult<PointTransaction> {
    let locked = lock_customer(conn, scope, entry.customer_id, &["input", "customerId"]).await?;
    append_locked(conn, scope, entry, locked).await
}

/// [`append_ledger`] for a customer this transaction has already locked, with the
/// `(balance, lifetime)` it read under that lock.
pub(super) async fn append_locked(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
    entry: LedgerEntry<'_>,
    locked: (i64, i64),
) -> OpResult<PointTransaction> {
    append_locked_with(conn, scope, entry, locked, Vec::new()).await
}

diesel::define_sql_function!(
    /// SQL `coalesce` over a ledger's nullable `max(sequence)`.
    fn coalesce(x: diesel::sql_types::Nullable<diesel::sql_types::BigInt>, y: diesel::sql_types::BigInt) -> diesel::sql_types::BigInt
);

/// [`append_locked`], recording `then` (events the caller's change owes, as
/// [`events::record_many`] takes them) in the statement that records the entry's own
/// `points.changed`, after it.
pub(super) async fn append_locked_with(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
    entry: LedgerEntry<'_>,
    (balance, lifetime): (i64, i64),
    then: Vec<(String, Uuid, serde_json::Value)>,
) -> OpResult<PointTransaction> {
    let new_balance = balance.saturating_add(entry.points);
    if new_balance < 0 {
        return Err(user_error(
            UserErrorCode::InsufficientPoints,
            &["input", "customerId"],
            "not enough points",
        ));
    }
    if new_balance > MAX_POINTS || lifetime.saturating_add(entry.points.max(0)) > MAX_POINTS {
        return Err(user_error(
            UserErrorCode::Invalid,
            &["input", "points"],
            &format!("a points balance or lifetime total may not exceed {MAX_POINTS}"),
        ));
    }
    // The next sequence is read by the INSERT itself: the customer's lock is held, so no
    // other entry of theirs can commit in between, and the statement's snapshot (READ
    // COMMITTED) is taken after the lock was granted.
    let last_sequence = point_transactions::table
        .filter(point_transactions::tenant_id.eq(scope.id()))
        .filter(point_transactions::customer_id.eq(entry.customer_id))
        .select(diesel::dsl::max(point_transactions::sequence))
        .single_value();
    let credit = matches!(
        entry.kind,
        PointTransactionType::Earned | PointTransactionType::Bonus
    ) || (entry.kind == PointTransactionType::Adjusted && entry.points > 0);
    let new_lifetime = if credit {
        lifetime + entry.points
    } else {
        lifetime
    };
    diesel::update(
        customers::table
            .filter(customers::tenant_id.eq(scope.id()))
            .filter(customers::id.eq(entry.customer_id)),
    )
    .set((
        customers::points_balance.eq(new_balance),
        customers::points_lifetime.eq(new_lifetime),
    ))
    .execute(conn)
    .await?;
    let transaction = diesel::insert_into(point_transactions::table)
        .values((
            point_transactions::tenant_id.eq(scope.id()),
            point_transactions::customer_id.eq(entry.customer_id),
            point_transactions::sequence.eq(coalesce(last_sequence, 0) + 1),
            point_transactions::transaction_type.eq(entry.kind),
            point_transactions::points.eq(entry.points),
            point_transactions::balance_after.eq(new_balance),
            point_transactions::order_id.eq(entry.order_id),
            point_transactions::reward_id.eq(entry.reward_id),
            point_transactions::redemption_id.eq(entry.redemption_id),
            point_transactions::description.eq(entry.description),
        ))
        .returning(PointTransaction::as_returning())
        .get_result(conn)
        .await?;
    let changed = (
        "points.changed".to_string(),
        entry.customer_id,
        json!({ "transactionId": transaction.id, "type": entry.kind, "points": entry.points, "balance": new_balance }),
    );
    events::record_many(conn, scope, [changed].into_iter().chain(then).collect()).await?;
    Ok(transaction)
}

pub(super) fn floor_points(value: &BigDecimal) -> i64 {
    value
        .with_scale_round(0, RoundingMode::Floor)
        .to_i64()
        .unwrap_or(0)
        .max(0)
}

/// Points an order earns (seed 004): only while the membership is active at the order's
/// time, and only once the customer has `min_membership_days` cumulative membership days.
/// `points_per_dollar` per whole currency unit, plus `bonus_percentage` of that as bonus.
pub async fn earn_for_order(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
    customer_id: Uuid,
    order_id: Uuid,
    order_total: &BigDecimal,
    ordered_at: DateTime<Utc>,
) -> OpResult<Vec<PointTransaction>> {
    let rules = rules(conn, scope).await?;
    if !rules.is_active {
        return Ok(Vec::new());
    }
    let enrollments = enrollments_of(conn, scope, &[customer_id]).await?;
    let active_at_order = enrollments.iter().any(|e| {
        e.status == EnrollmentStatus::Active
            && e.enrolled_at <= ordered_at
            && ordered_at < e.expires_at
    });
    if !active_at_order
        || cumulative_membership_days(&enrollments, ordered_at)
            < i64::from(rules.min_membership_days)
    {
        return Ok(Vec::new());
    }
    // Points stop at MAX_POINTS: an order is never refused for what it would earn.
    let (balance, lifetime) =
        lock_customer(conn, scope, customer_id, &["input", "customerId"]).await?;
    let headroom = MAX_POINTS - balance.max(lifetime);
    let base = floor_points(&(order_total * &rules.points_per_dollar)).min(headroom);
    let bonus =
        floor_points(&(BigDecimal::from(base) * &rules.bonus_percentage / BigDecimal::from(100)))
            .min(headroom - base);
    let mut entries = Vec::new();
    for (kind, points, description) in [
        (PointTransactionType::Earned, base, "Points for an order"),
        (
            PointTransactionType::Bonus,
            bonus,
            "Bonus points for an order",
        ),
    ] {
        if points > 0 {
            let entry = LedgerEntry {
                customer_id,
                kind,
                points,
                order_id: Some(order_id),
                reward_id: None,
                redemption_id: None,
                description: Some(description),
            };
            entries.push(append_ledger(conn, scope, entry).await?);
        }
    }
    Ok(entries)
}

/// The points a refund of `amount` takes back from what order `order_id` (of
/// `order_total`, of which `refunded_before` was refunded already) earned: its share,
/// counted on the refunded total so far (rounded down; the refund that completes the order
/// takes back the rest exactly). Never more than the customer's balance: returns the
/// points taken back and the shortfall.
pub async fn reverse_for_refund(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
    customer_id: Uuid,
    order_id: Uuid,
    order_total: &BigDecimal,
    refunded_before: &BigDecimal,
    amount: &BigDecimal,
) -> OpResult<(i64, i64)> {
    let earned: Option<i64> = point_transactions::table
        .filter(point_transactions::tenant_id.eq(scope.id()))
        .filter(point_transactions::order_id.eq(order_id))
        .filter(
            point_transactions::transaction_type
                .eq_any([PointTransactionType::Earned, PointTransactionType::Bonus]),
        )
        .select(diesel::dsl::sum(point_transactions::points))
        .first::<Option<BigDecimal>>(conn)
        .await?
        .and_then(|sum| sum.to_i64());
    let earned = earned.unwrap_or(0);
    if earned <= 0 || order_total <= &BigDecimal::from(0) {
        return Ok((0, 0));
    }
    let share =
        |refunded: &BigDecimal| floor_points(&(BigDecimal::from(earned) * refunded / order_total));
    let due = share(&(refunded_before + amount)) - share(refunded_before);
    let locked = lock_customer(conn, scope, customer_id, &["input", "orderId"]).await?;
    let taken = due.min(locked.0).max(0);
    if taken > 0 {
        let entry = LedgerEntry {
            customer_id,
            kind: PointTransactionType::Refunded,
            points: -taken,
            order_id: Some(order_id),
            reward_id: None,
            redemption_id: None,
            description: Some("Points taken back for a refunded order"),
        };
        append_locked(conn, scope, entry, locked).await?;
    }
    Ok((taken, due - taken))
}

#[derive(Debug, Clone, Serialize)]
pub struct AdjustPoints {
    pub customer_id: Uuid,
    pub points: i64,
    pub reason: String,
}

pub async fn adjust_points(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
    input: AdjustPoints,
    key: Option<&str>,
) -> OpResult<Uuid> {
    if input.points == 0 || input.points.abs() > 10_000_000 {
        return Err(user_error(
            UserErrorCode::Invalid,
            &["input", "points"],
            "points must be non-zero and at most 10,000,000",
        ));
    }
    if input.reason.trim().is_empty()
        || input.reason.chars().count() > 500
        || input.reason.contains('\0')
    {
        return Err(user_error(
            UserErrorCode::Invalid,
            &["input", "reason"],
            "a reason of 1-500 characters is required",
        ));
    }
    idempotency::once(conn, scope, key, "adjustPoints", &input, async |conn| {
        let entry = LedgerEntry {
            customer_id: input.customer_id,
            kind: PointTransactionType::Adjusted,
            points: input.points,
            order_id: None,
            reward_id: None,
            redemption_id: None,
            description: Some(&input.reason),
        };
        Ok(append_ledger(conn, scope, entry).await?.id)
    })
    .await
}

#[derive(Debug, Clone)]
pub struct RulesUpdate {
    pub points_per_dollar: Option<BigDecimal>,
    pub bonus_percentage: Option<BigDecimal>,
    pub min_membership_days: Option<i32>,
    pub point_dollar_value: Option<BigDecimal>,
    pub is_active: Option<bool>,
}

pub async fn update_rules(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
    update: RulesUpdate,
) -> OpResult<LoyaltyRules> {
    let current = rules(conn, scope).await?;
    let next = LoyaltyRules {
        points_per_dollar: update
            .points_per_dollar
            .unwrap_or(current.points_per_dollar),
        bonus_percentage: update.bonus_percentage.unwrap_or(current.bonus_percentage),
        min_membership_days: update
            .min_membership_days
            .unwrap_or(current.min_membership_days),
        point_dollar_value: update
            .point_dollar_value
            .unwrap_or(current.point_dollar_value),
        is_active: update.is_active.unwrap_or(current.is_active),
    };
    let zero = BigDecimal::from(0);
    if next.points_per_dollar < zero
        || next.points_per_dollar >= 1_000_000
        || next.points_per_dollar.fractional_digit_count() > 2
    {
        return Err(user_error(
            UserErrorCode::Invalid,
            &["input", "pointsPerDollar"],
            "pointsPerDollar must be 0 to 999999.99",
        ));
    }
    if next.bonus_percentage < zero
        || next.bonus_percentage > 100
        || next.bonus_percentage.fractional_digit_count() > 2
    {
        return Err(user_error(
            UserErrorCode::Invalid,
            &["input", "bonusPercentage"],
            "bonusPercentage must be 0 to 100",
        ));
    }
    if !(0..=36_500).contains(&next.min_membership_days) {
        return Err(user_error(
            UserErrorCode::Invalid,
            &["input", "minMembershipDays"],
            "minMembershipDays must be 0 to 36500",
        ));
    }
    check_money(&next.point_dollar_value, &["input", "pointDollarValue"])?;
    use loyalty_point_rules as r;
    let values = (
        r::points_per_dollar.eq(next.points_per_dollar.clone()),
        r::bonus_percentage.eq(next.bonus_percentage.clone()),
        r::min_membership_days.eq(next.min_membership_days),
        r::point_dollar_value.eq(next.point_dollar_value.clone()),
        r::is_active.eq(next.is_active),
    );
    diesel::insert_into(r::table)
        .values((r::tenant_id.eq(scope.id()), values.clone()))
        .on_conflict(r::tenant_id)
        .do_update()
        .set(values)
        .execute(conn)
        .await?;
    events::record(conn, scope, "loyalty.rules_updated", scope.id(), json!({})).await?;
    Ok(next)
}
