//! The operations of the prompt learning loop: variants, A/B tests, assignments,
//! executions and the scheduler's tasks (tests past their duration, feedback).

use bigdecimal::{BigDecimal, ToPrimitive};
use chrono::{DateTime, Duration, Utc};
use diesel::prelude::*;
use diesel::sql_types::{Timestamptz, Uuid as SqlUuid};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use serde_json::{json, Value};
use uuid::Uuid;

use super::model::{AbTest, AbTestStatus, Evolution, PromptVariant, VariantChanges};
use super::stats::{bucket, two_proportion_z_test, Arm};
use crate::db::filter::FilterSome;
use crate::db::page::PageRequest;
use crate::db::schema::{
    feedback_tracking, prompt_ab_tests, prompt_evolution, prompt_performance, prompt_registry,
};
use crate::db::sql::lock_key;
use crate::db::Tenant;
use crate::domain::leads::model::Language;
use crate::domain::{
    check_json_object, check_required_text, check_text, events, user_error, OpError, OpResult,
    UserErrorCode,
};

/// An execution succeeds when it ran without error and its quality is at least this.
pub const SUCCESS_QUALITY: f64 = 0.7;

/// A variant's score (of the row `v`): the mean quality of its executions, exact (an
/// error counts 0), to three decimals.
const MEAN_QUALITY: &str = "SELECT round(avg(coalesce(p.output_quality_score, 0)), 3)
     FROM prompt_performance p WHERE p.tenant_id = v.tenant_id AND p.prompt_registry_id = v.id";

fn invalid(field: &str, message: &str) -> OpError {
    user_error(UserErrorCode::Invalid, &["input", field], message)
}

// ---- reads --------------------------------------------------------------------------------

/// The prompt registry (every variant), optionally of one prompt name, newest first.
pub async fn list_prompts(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
    name: Option<&str>,
    page: &PageRequest<DateTime<Utc>>,
) -> QueryResult<Vec<PromptVariant>> {
    use prompt_registry as p;
    let query = p::table
        .filter(p::tenant_id.eq(scope.id()))
        .select(PromptVariant::as_select())
        .limit(page.limit())
        .into_boxed()
        .filter_some(name, |v| p::prompt_name.eq(v.to_owned()));
    crate::keyset!(query, page, p::created_at, p::id, desc)
        .load(conn)
        .await
}

pub async fn prompts_by_ids(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
    ids: &[Uuid],
) -> QueryResult<Vec<PromptVariant>> {
    prompt_registry::table
        .filter(prompt_registry::tenant_id.eq(scope.id()))
        .filter(prompt_registry::id.eq_any(ids))
        .select(PromptVariant::as_select())
        .load(conn)
        .await
}

/// The tenant's A/B tests, newest first, of one status when given.
pub async fn list_tests(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
    status: Option<AbTestStatus>,
    page: &PageRequest<DateTime<Utc>>,
) -> QueryResult<Vec<AbTest>> {
    crate::newest_first!(conn, scope, prompt_ab_tests, AbTest, page, status = status)
}

/// The test of a name.
pub async fn test_named(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
    name: &str,
) -> QueryResult<Option<AbTest>> {
    prompt_ab_tests::table
        .filter(prompt_ab_tests::tenant_id.eq(scope.id()))
        .filter(prompt_ab_tests::test_name.eq(name))
        .select(AbTest::as_select())
        .first(conn)
        .await
        .optional()
}

pub async fn tests_by_ids(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
    ids: &[Uuid],
) -> QueryResult<Vec<AbTest>> {
    prompt_ab_tests::table
        .filter(prompt_ab_tests::tenant_id.eq(scope.id()))
        .filter(prompt_ab_tests::id.eq_any(ids))
        .select(AbTest::as_select())
        .load(conn)
        .await
}

/// The latest test (running or completed) a variant is an arm of.
pub async fn test_of_variant(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
    variant: Uuid,
) -> QueryResult<Option<AbTest>> {
    use prompt_ab_tests as t;
    t::table
        .filter(t::tenant_id.eq(scope.id()))
        .filter(t::status.eq_any([AbTestStatus::Running, AbTestStatus::Completed]))
        .filter(
            t::control_variant_id
                .eq(variant)
                .or(t::treatment_variant_id.eq(variant)),
        )
        .select(AbTest::as_select())
        .order((t::started_at.desc().nulls_last(), t::id.desc()))
        .first(conn)
        .await
        .optional()
}

/// The latest 100 evolutions, of one prompt (as parent or child) when given.
pub async fn evolutions(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
    prompt: Option<Uuid>,
) -> QueryResult<Vec<Evolution>> {
    use prompt_evolution as e;
    let query = e::table
        .filter(e::tenant_id.eq(scope.id()))
        .select(Evolution::as_select())
        .order((e::evolved_at.desc(), e::id.desc()))
        .limit(100)
        .into_boxed()
        .filter_some(prompt, |v| {
            e::parent_prompt_id.eq(v).or(e::child_prompt_id.eq(v))
        });
    query.load(conn).await
}

// ---- assignment ---------------------------------------------------------------------------

text_enum!(pub PromptArm {
    Control => "control",
    Treatment => "treatment",
    Winner => "winner",
});

/// Which variant a subject gets from a test: while it runs, the arm its bucket falls in
/// (the control's share of 10 000 buckets is its traffic percentage × 100); once it has
/// a winner, the winner; once closed without one, the control.
pub fn arm_of(test: &AbTest, subject_key: &str) -> (PromptArm, Uuid) {
    match (test.status, test.winner_variant_id) {
        (AbTestStatus::Completed, Some(winner)) => (PromptArm::Winner, winner),
        (AbTestStatus::Running, _) => {
            let control_buckets = (&test.control_traffic_percentage * BigDecimal::from(100))
                .to_u32()
                .unwrap_or(0);
            match bucket(test.id, subject_key) < control_buckets {
                true => (PromptArm::Control, test.control_variant_id),
                false => (PromptArm::Treatment, test.treatment_variant_id),
            }
        }
        _ => (PromptArm::Control, test.control_variant_id),
    }
}

// ---- variants -----------------------------------------------------------------------------

/// A new variant of a prompt.
#[derive(Debug, Clone)]
pub struct VariantInput {
    pub prompt_name: String,
    pub variant_id: String,
    pub text: String,
    pub language: Language,
}

/// Creates a variant: its version is the prompt's next one (variants of one prompt are
/// created one at a time); its `variant_id` is unique in the tenant.
pub async fn create_variant(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
    input: VariantInput,
) -> OpResult<Uuid> {
    check_required_text("promptName", &input.prompt_name, 100)?;
    check_required_text("variantId", &input.variant_id, 100)?;
    check_required_text("text", &input.text, 50_000)?;
    use prompt_registry as p;
    lock_key(
        conn,
        &format!("prompt/{}/{}", scope.id(), input.prompt_name),
    )
    .await?;
    lock_key(
        conn,
        &format!("prompt-variant/{}/{}", scope.id(), input.variant_id),
    )
    .await?;
    let taken: i64 = p::table
        .filter(p::tenant_id.eq(scope.id()))
        .filter(p::variant_id.eq(&input.variant_id))
        .count()
        .get_result(conn)
        .await?;
    if taken > 0 {
        return Err(user_error(
            UserErrorCode::Conflict,
            &["input", "variantId"],
            "a variant of this id exists",
        ));
    }
    let version: Option<i32> = p::table
        .filter(p::tenant_id.eq(scope.id()))
        .filter(p::prompt_name.eq(&input.prompt_name))
        .select(diesel::dsl::max(p::variant_version))
        .first(conn)
        .await?;
    let id = diesel::insert_into(p::table)
        .values((
            p::tenant_id.eq(scope.id()),
            p::prompt_name.eq(&input.prompt_name),
            p::variant_version.eq(version.unwrap_or(0) + 1),
            p::variant_id.eq(&input.variant_id),
            p::prompt_text.eq(&input.text),
            p::language.eq(input.language.as_str()),
        ))
        .returning(p::id)
        .get_result(conn)
        .await?;
    events::record(
        conn,
        scope,
        "prompt.created",
        id,
        json!({ "promptName": input.prompt_name }),
    )
    .await?;
    Ok(id)
}

/// Changes a variant's text, or retires (or restores) it. An arm of a running test is
/// not retired.
pub async fn update_variant(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
    id: Uuid,
    text: Option<String>,
    active: Option<bool>,
) -> OpResult<Uuid> {
    use prompt_registry as p;
    let _: Uuid = crate::tenant_row!(
        locked conn,
        scope,
        prompt_registry,
        id,
        p::id,
        &["input", "id"],
        "no such prompt variant"
    )?;
    if let Some(text) = &text {
        check_required_text("text", text, 50_000)?;
    }
    if active == Some(false) {
        use prompt_ab_tests as t;
        let running: i64 = t::table
            .filter(t::tenant_id.eq(scope.id()))
            .filter(t::status.eq(AbTestStatus::Running))
            .filter(
                t::control_variant_id
                    .eq(id)
                    .or(t::treatment_variant_id.eq(id)),
            )
            .count()
            .get_result(conn)
            .await?;
        if running > 0 {
            return Err(user_error(
                UserErrorCode::Conflict,
                &["input", "isActive"],
                "this variant is an arm of a running test: stop the test first",
            ));
        }
    }
    let changes = VariantChanges {
        prompt_text: text,
        is_active: active,
    };
    crate::tenant_row!(change conn, scope, prompt_registry, id, changes);
    events::record(
        conn,
        scope,
        "prompt.updated",
        id,
        json!({ "isActive": active }),
    )
    .await?;
    Ok(id)
}

// ---- tests --------------------------------------------------------------------------------

/// A new A/B test.
#[derive(Debug, Clone)]
pub struct TestInput {
    pub test_name: String,
    pub control: Uuid,
    pub treatment: Uuid,
    pub control_percentage: BigDecimal,
    pub treatment_percentage: BigDecimal,
    pub min_sample_size: i32,
    pub max_duration_days: i32,
    pub significance_level: BigDecimal,
}

/// Creates a test (`draft`) between two active variants of one prompt; the traffic
/// percentages (two decimals at most) sum to 100.
pub async fn create_test(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
    input: TestInput,
) -> OpResult<Uuid> {
    check_required_text("testName", &input.test_name, 200)?;
    let percentage = |p: &BigDecimal| {
        p >= &BigDecimal::from(0) && p <= &BigDecimal::from(100) && p.with_scale(2) == *p
    };
    if !percentage(&input.control_percentage) || !percentage(&input.treatment_percentage) {
        return Err(invalid(
            "controlTrafficPercentage",
            "traffic percentages are 0 to 100, with at most two decimals",
        ));
    }
    if &input.control_percentage + &input.treatment_percentage != 100 {
        return Err(invalid(
            "treatmentTrafficPercentage",
            "the traffic percentages sum to 100",
        ));
    }
    if !(1..=1_000_000).contains(&input.min_sample_size) {
        return Err(invalid("minSampleSize", "minSampleSize is 1 to 1 000 000"));
    }
    if !(1..=365).contains(&input.max_duration_days) {
        return Err(invalid("maxDurationDays", "maxDurationDays is 1 to 365"));
    }
    let level = input.significance_level.to_f64().unwrap_or(0.0);
    if !(level > 0.0 && level <= 0.5)
        || input.significance_level.with_scale(3) != input.significance_level
    {
        return Err(invalid(
            "significanceLevel",
            "significanceLevel is above 0 and at most 0.5, with at most three decimals",
        ));
    }
    if input.control == input.treatment {
        return Err(invalid(
            "treatmentVariantId",
            "a test compares two different variants",
        ));
    }
    let mut prompt = None;
    for (field, id) in [
        ("controlVariantId", input.control),
        ("treatmentVariantId", input.treatment),
    ] {
        let (name, active): (String, bool) = crate::tenant_row!(
            conn,
            scope,
            prompt_registry,
            id,
            (prompt_registry::prompt_name, prompt_registry::is_active),
            &["input", field],
            "no such prompt variant"
        )?;
        if !active {
            return Err(invalid(field, "this variant is retired"));
        }
        if prompt.as_ref().is_some_and(|p| p != &name) {
            return Err(invalid(field, "both variants are of the same prompt"));
        }
        prompt = Some(name);
    }
    use prompt_ab_tests as t;
    lock_key(
        conn,
        &format!("prompt-test/{}/{}", scope.id(), input.test_name),
    )
    .await?;
    if test_named(conn, scope, &input.test_name).await?.is_some() {
        return Err(user_error(
            UserErrorCode::Conflict,
            &["input", "testName"],
            "a test of this name exists",
        ));
    }
    let id = diesel::insert_into(t::table)
        .values((
            t::tenant_id.eq(scope.id()),
            t::test_name.eq(&input.test_name),
            t::prompt_name.eq(prompt.unwrap_or_default()),
            t::control_variant_id.eq(input.control),
            t::treatment_variant_id.eq(input.treatment),
            t::control_traffic_percentage.eq(&input.control_percentage),
            t::treatment_traffic_percentage.eq(&input.treatment_percentage),
            t::min_sample_size.eq(input.min_sample_size),
            t::max_duration_days.eq(input.max_duration_days),
            t::significance_level.eq(&input.significance_level),
        ))
        .returning(t::id)
        .get_result(conn)
        .await?;
    events::record(
        conn,
        scope,
        "prompt_test.created",
        id,
        json!({ "testName": input.test_name }),
    )
    .await?;
    Ok(id)
}

/// Starts a draft test (one runs at a time per prompt), or stops a running one
/// (`cancelled`, no winner).
pub async fn change_test(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
    id: Uuid,
    next: AbTestStatus,
    now: DateTime<Utc>,
) -> OpResult<Uuid> {
    use prompt_ab_tests as t;
    let (status, prompt): (AbTestStatus, String) = crate::tenant_row!(
        locked conn,
        scope,
        prompt_ab_tests,
        id,
        (t::status, t::prompt_name),
        &["id"],
        "no such A/B test"
    )?;
    let row = t::table
        .filter(t::tenant_id.eq(scope.id()))
        .filter(t::id.eq(id));
    match (status, next) {
        (AbTestStatus::Draft, AbTestStatus::Running) => {
            lock_key(conn, &format!("prompt-running/{}/{prompt}", scope.id())).await?;
            let running: i64 = t::table
                .filter(t::tenant_id.eq(scope.id()))
                .filter(t::prompt_name.eq(&prompt))
                .filter(t::status.eq(AbTestStatus::Running))
                .count()
                .get_result(conn)
                .await?;
            if running > 0 {
                return Err(user_error(
                    UserErrorCode::Conflict,
                    &["id"],
                    "another test of this prompt is running",
                ));
            }
            diesel::update(row)
                .set((t::status.eq(next), t::started_at.eq(now)))
                .execute(conn)
                .await?;
        }
        (AbTestStatus::Running, AbTestStatus::Cancelled) => {
            diesel::update(row)
                .set((t::status.eq(next), t::ended_at.eq(now)))
                .execute(conn)
                .await?;
        }
        _ => {
            return Err(user_error(
                UserErrorCode::InvalidTransition,
                &["id"],
                &format!("a {} test cannot become {}", status.as_str(), next.as_str()),
            ))
        }
    }
    events::record(
        conn,
        scope,
        "prompt_test.changed",
        id,
        json!({ "from": status, "to": next }),
    )
    .await?;
    Ok(id)
}

// ---- executions ---------------------------------------------------------------------------

/// One execution of a prompt variant, as the AI service reports it.
#[derive(Debug, Clone, Default)]
pub struct Execution {
    pub variant: Uuid,
    pub execution_id: String,
    pub quality: Option<f64>,
    pub accuracy: Option<f64>,
    pub consistency: Option<f64>,
    pub completeness: Option<f64>,
    pub latency_ms: Option<i32>,
    pub tokens: Option<i32>,
    pub cost_usd: Option<BigDecimal>,
    pub error: bool,
    pub error_message: Option<String>,
    pub user_rating: Option<i32>,
    pub environment: String,
    pub input: Option<Value>,
    pub output: Option<Value>,
    pub feedback: Option<Uuid>,
}

fn score(field: &str, value: Option<f64>) -> OpResult<Option<BigDecimal>> {
    match value {
        None => Ok(None),
        Some(v) if (0.0..=1.0).contains(&v) => Ok(BigDecimal::try_from(v)
            .ok()
            .map(|d| d.with_scale_round(3, bigdecimal::RoundingMode::HalfEven))),
        Some(_) => Err(invalid(field, &format!("{field} is between 0 and 1"))),
    }
}

/// Records an execution once (by its `execution_id`): into `prompt_performance`, the
/// variant's usage count and score (the mean quality of its executions, an error
/// counting 0), and, when the variant is an arm of a running test, that arm's
/// tally — after which the test is evaluated ([`evaluate`]).
pub async fn record_execution(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
    input: Execution,
    now: DateTime<Utc>,
) -> OpResult<Uuid> {
    check_required_text("executionId", &input.execution_id, 200)?;
    let quality = match (input.quality, input.error) {
        (Some(q), _) => score("quality", Some(q))?,
        (None, true) => Some(BigDecimal::from(0)),
        (None, false) => {
            return Err(invalid(
                "quality",
                "an execution without error has a quality",
            ))
        }
    };
    let accuracy = score("accuracy", input.accuracy)?;
    let consistency = score("consistency", input.consistency)?;
    let completeness = score("completeness", input.completeness)?;
    if input.latency_ms.is_some_and(|l| l < 0) || input.tokens.is_some_and(|t| t < 0) {
        return Err(invalid("latencyMs", "latency and tokens are not negative"));
    }
    if input.cost_usd.as_ref().is_some_and(|c| {
        c < &BigDecimal::from(0) || c >= &BigDecimal::from(1_000_000) || c.with_scale(6) != *c
    }) {
        return Err(invalid("costUsd", "costUsd is 0 to 999 999.999999"));
    }
    if input.user_rating.is_some_and(|r| !(1..=5).contains(&r)) {
        return Err(invalid("userRating", "userRating is 1 to 5"));
    }
    if !["production", "staging", "test"].contains(&input.environment.as_str()) {
        return Err(invalid(
            "environment",
            "environment is production, staging or test",
        ));
    }
    check_text("errorMessage", input.error_message.as_deref(), 10_000)?;
    for (field, value) in [("inputData", &input.input), ("outputData", &input.output)] {
        if let Some(value) = value {
            check_json_object(field, value, 64 * 1024)?;
        }
    }
    // Locks in one order: the running test the variant is an arm of, then the variant
    // (a test's completion retires its control while holding the test). The variant's
    // lock orders its executions, so each one's score reads every execution before it.
    use prompt_ab_tests as t;
    let test: Option<AbTest> = t::table
        .filter(t::tenant_id.eq(scope.id()))
        .filter(t::status.eq(AbTestStatus::Running))
        .filter(
            t::control_variant_id
                .eq(input.variant)
                .or(t::treatment_variant_id.eq(input.variant)),
        )
        .select(AbTest::as_select())
        .for_update()
        .first(conn)
        .await
        .optional()?;
    let _: Uuid = crate::tenant_row!(
        locked conn,
        scope,
        prompt_registry,
        input.variant,
        prompt_registry::id,
        &["input", "variantId"],
        "no such prompt variant"
    )?;
    if let Some(feedback) = input.feedback {
        let _: Uuid = crate::tenant_row!(
            conn,
            scope,
            feedback_tracking,
            feedback,
            feedback_tracking::id,
            &["input", "feedbackId"],
            "no such feedback"
        )?;
    }
    use prompt_performance as e;
    let id: Option<Uuid> = diesel::insert_into(e::table)
        .values((
            e::tenant_id.eq(scope.id()),
            e::prompt_registry_id.eq(input.variant),
            e::execution_id.eq(&input.execution_id),
            e::input_data.eq(input.input.clone().unwrap_or_else(|| json!({}))),
            e::output_data.eq(input.output.clone().unwrap_or_else(|| json!({}))),
            e::output_quality_score.eq(&quality),
            e::response_time_ms.eq(input.latency_ms),
            e::token_count.eq(input.tokens),
            e::cost_usd.eq(&input.cost_usd),
            e::accuracy_score.eq(&accuracy),
            e::consistency_score.eq(&consistency),
            e::completeness_score.eq(&completeness),
            e::error_occurred.eq(input.error),
            e::error_message.eq(&input.error_message),
            e::feedback_id.eq(input.feedback),
            e::user_rating.eq(input.user_rating),
            e::environment.eq(&input.environment),
            e::executed_at.eq(now),
        ))
        .on_conflict_do_nothing()
        .returning(e::id)
        .get_result(conn)
        .await
        .optional()?;
    let Some(id) = id else {
        return Err(user_error(
            UserErrorCode::Conflict,
            &["input", "executionId"],
            "this execution is already recorded",
        ));
    };
    let quality = quality.unwrap_or_default();
    diesel::sql_query(format!(
        "UPDATE prompt_registry v SET usage_count = usage_count + 1, score = ({MEAN_QUALITY})
         WHERE v.tenant_id = $1 AND v.id = $2"
    ))
    .bind::<SqlUuid, _>(scope.id())
    .bind::<SqlUuid, _>(input.variant)
    .execute(conn)
    .await?;
    if let Some(mut test) = test {
        let success = !input.error && quality.to_f64().unwrap_or(0.0) >= SUCCESS_QUALITY;
        let metrics = match test.control_variant_id == input.variant {
            true => &mut test.control_metrics,
            false => &mut test.treatment_metrics,
        };
        *metrics = tally(metrics, success, quality.to_f64().unwrap_or(0.0));
        diesel::update(
            t::table
                .filter(t::tenant_id.eq(scope.id()))
                .filter(t::id.eq(test.id)),
        )
        .set((
            t::control_metrics.eq(&test.control_metrics),
            t::treatment_metrics.eq(&test.treatment_metrics),
        ))
        .execute(conn)
        .await?;
        evaluate(conn, scope, test, now).await?;
    }
    Ok(id)
}

/// An arm's tally as kept in the test's metrics: `{ executions, successes, qualitySum }`.
pub fn arm(metrics: &Value) -> Arm {
    Arm {
        executions: metrics["executions"].as_i64().unwrap_or(0),
        successes: metrics["successes"].as_i64().unwrap_or(0),
    }
}

fn tally(metrics: &Value, success: bool, quality: f64) -> Value {
    let before = arm(metrics);
    let sum = metrics["qualitySum"].as_f64().unwrap_or(0.0) + quality;
    json!({
        "executions": before.executions + 1,
        "successes": before.successes + i64::from(success),
        "qualitySum": (sum * 1_000.0).round() / 1_000.0,
    })
}

/// Evaluates a running test (locked by the caller): once both arms have `min_sample_size`
/// executions, the z-test's p-value is stored; below the significance level the arm with
/// the higher success rate wins and the test completes. A test past `max_duration_days`
/// completes too, without a winner unless the evidence names one. A treatment that wins
/// replaces its parent: the control is retired and a `prompt_evolution` row records it.
pub async fn evaluate(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
    test: AbTest,
    now: DateTime<Utc>,
) -> OpResult<()> {
    use prompt_ab_tests as t;
    let (control, treatment) = (arm(&test.control_metrics), arm(&test.treatment_metrics));
    let sampled = control.executions >= test.min_sample_size as i64
        && treatment.executions >= test.min_sample_size as i64;
    let expired = test
        .started_at
        .is_some_and(|s| now >= s + Duration::days(test.max_duration_days as i64));
    if !sampled && !expired {
        return Ok(());
    }
    let (_, p) = two_proportion_z_test(control, treatment);
    let level = test.significance_level.to_f64().unwrap_or(0.05);
    let winner = (sampled && p < level).then(|| match treatment.rate() > control.rate() {
        true => test.treatment_variant_id,
        false => test.control_variant_id,
    });
    let p_value = BigDecimal::try_from(p)
        .unwrap_or_default()
        .with_scale_round(5, bigdecimal::RoundingMode::HalfEven);
    let row = t::table
        .filter(t::tenant_id.eq(scope.id()))
        .filter(t::id.eq(test.id));
    if winner.is_none() && !expired {
        diesel::update(row)
            .set(t::statistical_significance.eq(&p_value))
            .execute(conn)
            .await?;
        return Ok(());
    }
    diesel::update(row)
        .set((
            t::statistical_significance.eq(&p_value),
            t::status.eq(AbTestStatus::Completed),
            t::winner_variant_id.eq(winner),
            t::ended_at.eq(now),
        ))
        .execute(conn)
        .await?;
    if winner == Some(test.treatment_variant_id) {
        let performance = |metrics: &Value, a: Arm| {
            let mut m = metrics.clone();
            m["successRate"] = json!(a.rate());
            m
        };
        let improvement = BigDecimal::try_from((treatment.rate() - control.rate()).clamp(0.0, 1.0))
            .unwrap_or_default()
            .with_scale_round(3, bigdecimal::RoundingMode::HalfEven);
        use prompt_evolution as e;
        diesel::insert_into(e::table)
            .values((
                e::tenant_id.eq(scope.id()),
                e::parent_prompt_id.eq(test.control_variant_id),
                e::child_prompt_id.eq(test.treatment_variant_id),
                e::evolution_type.eq("optimization"),
                e::evolution_strategy.eq(format!("A/B test {}", test.test_name)),
                e::parent_performance.eq(performance(&test.control_metrics, control)),
                e::child_performance.eq(performance(&test.treatment_metrics, treatment)),
                e::improvement_score.eq(improvement),
                e::optimization_goals.eq(vec!["success_rate".to_owned()]),
                e::evolution_algorithm.eq("two_proportion_z_test"),
                e::evolved_at.eq(now),
            ))
            .execute(conn)
            .await?;
        diesel::update(
            prompt_registry::table
                .filter(prompt_registry::tenant_id.eq(scope.id()))
                .filter(prompt_registry::id.eq(test.control_variant_id)),
        )
        .set(prompt_registry::is_active.eq(false))
        .execute(conn)
        .await?;
    }
    events::record(
        conn,
        scope,
        "prompt_test.completed",
        test.id,
        json!({ "winner": winner, "pValue": p }),
    )
    .await?;
    Ok(())
}

// ---- the scheduler's tasks ----------------------------------------------------------------

/// Completes the running tests past their `max_duration_days` ([`evaluate`]).
pub async fn close_expired_tests(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
    now: DateTime<Utc>,
) -> OpResult<usize> {
    use prompt_ab_tests as t;
    // Few run at once (one per prompt): read them all, keep those past their duration.
    let due: Vec<AbTest> = t::table
        .filter(t::tenant_id.eq(scope.id()))
        .filter(t::status.eq(AbTestStatus::Running))
        .select(AbTest::as_select())
        .order(t::id)
        .for_update()
        .skip_locked()
        .load::<AbTest>(conn)
        .await?
        .into_iter()
        .filter(|test| {
            test.started_at
                .is_some_and(|s| now >= s + Duration::days(test.max_duration_days as i64))
        })
        .collect();
    let closed = due.len();
    for test in due {
        evaluate(conn, scope, test, now).await?;
    }
    Ok(closed)
}

/// Processes up to 500 feedback rows not processed yet: each gets `learning_impact` =
/// its confidence (0.5 when unknown) × |impact| / 100, `learning_applied` and
/// `processed_at`; a prompt execution it judges has its quality raised (positive) or
/// lowered (negative) by a tenth of that impact, within 0–1, and its variant's score (the
/// mean quality) follows.
pub async fn process_feedback(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
    now: DateTime<Utc>,
) -> QueryResult<usize> {
    let processed = diesel::sql_query(
        "WITH due AS (
             SELECT id FROM feedback_tracking
             WHERE tenant_id = $1 AND processed_at IS NULL
             ORDER BY created_at, id LIMIT 500 FOR UPDATE SKIP LOCKED),
         done AS (
             UPDATE feedback_tracking f SET learning_applied = true, processed_at = $2,
                 learning_impact = round(coalesce(f.confidence_score, 0.5) * abs(coalesce(f.impact_score, 0)) / 100.0, 3)
             FROM due WHERE f.tenant_id = $1 AND f.id = due.id
             RETURNING f.id, f.outcome, f.learning_impact),
         judged AS (
             UPDATE prompt_performance p SET output_quality_score = round(least(1, greatest(0,
                     coalesce(p.output_quality_score, 0) + 0.1 * done.learning_impact
                     * CASE done.outcome WHEN 'positive' THEN 1 WHEN 'negative' THEN -1 ELSE 0 END)), 3)
             FROM done WHERE p.tenant_id = $1 AND p.feedback_id = done.id AND done.outcome <> 'neutral'
             RETURNING p.prompt_registry_id AS variant)
         SELECT (SELECT count(*) FROM done) AS n, ARRAY(SELECT DISTINCT variant FROM judged) AS variants",
    )
    .bind::<SqlUuid, _>(scope.id())
    .bind::<Timestamptz, _>(now)
    .get_result::<Processed>(conn)
    .await?;
    // The judged executions' new qualities are seen by this second statement only.
    if !processed.variants.is_empty() {
        diesel::sql_query(format!(
            "UPDATE prompt_registry v SET score = ({MEAN_QUALITY})
             WHERE v.tenant_id = $1 AND v.id = ANY($2)"
        ))
        .bind::<SqlUuid, _>(scope.id())
        .bind::<diesel::sql_types::Array<SqlUuid>, _>(&processed.variants)
        .execute(conn)
        .await?;
    }
    Ok(processed.n as usize)
}

#[derive(QueryableByName)]
struct Processed {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    n: i64,
    #[diesel(sql_type = diesel::sql_types::Array<SqlUuid>)]
    variants: Vec<Uuid>,
}
