use async_graphql::connection::Connection;
use async_graphql::{ComplexObject, Context, Enum, InputObject, Json, Object, SimpleObject, ID};
use bigdecimal::ToPrimitive;
use chrono::{DateTime, Utc};
use scoped_futures::ScopedFutureExt;
use uuid::Uuid;

use super::model::{self, AbTestStatus};
use super::ops::{self, PromptArm};
use crate::auth::Access;
use crate::domain::leads::model::Language;
use crate::domain::{write_payload, Payload, UserError};
use crate::error::{AppError, AppResult};
use crate::graphql::connection::{created_page, Cursor, PageRequest};
use crate::graphql::context::request_context;
use crate::graphql::scalars::{parse_id, Decimal};

type Page<N> = Connection<Cursor<DateTime<Utc>>, N>;

/// A prompt variant by its id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PromptKey(pub Uuid);

crate::load_by_ids!(PromptKey => model::PromptVariant, ops::prompts_by_ids, |row: &model::PromptVariant| row.id);

/// One variant of a prompt the lead analysis uses.
#[derive(SimpleObject, Clone)]
pub struct Prompt {
    pub id: ID,
    pub name: String,
    pub variant_version: i32,
    pub variant_id: String,
    pub text: String,
    /// en or fr.
    pub language: String,
    /// 0 to 1: the mean quality of its executions (an error counts 0), moved by feedback.
    pub score: Option<Decimal>,
    pub usage_count: i32,
    /// A retired variant (or a parent a test's winner replaced) is not active.
    pub is_active: bool,
    pub created_at: DateTime<Utc>,
}

impl From<model::PromptVariant> for Prompt {
    fn from(p: model::PromptVariant) -> Self {
        Prompt {
            id: ID(p.id.to_string()),
            name: p.prompt_name,
            variant_version: p.variant_version,
            variant_id: p.variant_id,
            text: p.prompt_text,
            language: p.language,
            score: p.score.map(Decimal),
            usage_count: p.usage_count,
            is_active: p.is_active,
            created_at: p.created_at,
        }
    }
}

async fn prompt(ctx: &Context<'_>, id: Uuid) -> AppResult<Option<Prompt>> {
    Ok(request_context(ctx)?
        .load_one(PromptKey(id))
        .await?
        .map(Prompt::from))
}

/// An arm's results so far.
#[derive(SimpleObject, Clone)]
pub struct PromptArmResults {
    pub executions: i64,
    /// Executions without error of quality ≥ 0.7.
    pub successes: i64,
    pub success_rate: f64,
    pub mean_quality: Option<f64>,
}

impl From<&serde_json::Value> for PromptArmResults {
    fn from(metrics: &serde_json::Value) -> Self {
        let arm = ops::arm(metrics);
        PromptArmResults {
            executions: arm.executions,
            successes: arm.successes,
            success_rate: arm.rate(),
            mean_quality: (arm.executions > 0)
                .then(|| metrics["qualitySum"].as_f64().unwrap_or(0.0) / arm.executions as f64),
        }
    }
}

/// How a completed test ended.
#[derive(Enum, Clone, Copy, PartialEq, Eq)]
pub enum PromptTestOutcome {
    /// A variant won (`winner`).
    Winner,
    /// Its time ran out without a significant difference.
    Inconclusive,
}

/// An A/B test of two variants of a prompt.
#[derive(SimpleObject, Clone)]
#[graphql(complex)]
pub struct PromptAbTest {
    pub id: ID,
    pub test_name: String,
    pub prompt_name: String,
    pub control_traffic_percentage: Decimal,
    pub treatment_traffic_percentage: Decimal,
    pub min_sample_size: i32,
    pub max_duration_days: i32,
    pub significance_level: Decimal,
    pub status: AbTestStatus,
    pub control_results: PromptArmResults,
    pub treatment_results: PromptArmResults,
    /// The two-proportion z-test's two-sided p-value, once both arms have their sample.
    pub p_value: Option<f64>,
    pub outcome: Option<PromptTestOutcome>,
    pub started_at: Option<DateTime<Utc>>,
    pub ended_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    #[graphql(skip)]
    pub row: model::AbTest,
}

impl From<model::AbTest> for PromptAbTest {
    fn from(t: model::AbTest) -> Self {
        PromptAbTest {
            id: ID(t.id.to_string()),
            test_name: t.test_name.clone(),
            prompt_name: t.prompt_name.clone(),
            control_traffic_percentage: Decimal(t.control_traffic_percentage.clone()),
            treatment_traffic_percentage: Decimal(t.treatment_traffic_percentage.clone()),
            min_sample_size: t.min_sample_size,
            max_duration_days: t.max_duration_days,
            significance_level: Decimal(t.significance_level.clone()),
            status: t.status,
            control_results: (&t.control_metrics).into(),
            treatment_results: (&t.treatment_metrics).into(),
            p_value: t.statistical_significance.as_ref().and_then(|p| p.to_f64()),
            outcome: match (t.status, t.winner_variant_id) {
                (AbTestStatus::Completed, Some(_)) => Some(PromptTestOutcome::Winner),
                (AbTestStatus::Completed, None) => Some(PromptTestOutcome::Inconclusive),
                _ => None,
            },
            started_at: t.started_at,
            ended_at: t.ended_at,
            created_at: t.created_at,
            row: t,
        }
    }
}

#[ComplexObject]
impl PromptAbTest {
    async fn control(&self, ctx: &Context<'_>) -> AppResult<Option<Prompt>> {
        prompt(ctx, self.row.control_variant_id).await
    }
    async fn treatment(&self, ctx: &Context<'_>) -> AppResult<Option<Prompt>> {
        prompt(ctx, self.row.treatment_variant_id).await
    }
    async fn winner(&self, ctx: &Context<'_>) -> AppResult<Option<Prompt>> {
        match self.row.winner_variant_id {
            Some(id) => prompt(ctx, id).await,
            None => Ok(None),
        }
    }
}

/// The variant a subject gets.
#[derive(SimpleObject)]
#[graphql(complex)]
pub struct PromptAssignment {
    pub arm: PromptArm,
    pub test: PromptAbTest,
    #[graphql(skip)]
    pub variant_id: Uuid,
}

#[ComplexObject]
impl PromptAssignment {
    async fn variant(&self, ctx: &Context<'_>) -> AppResult<Option<Prompt>> {
        prompt(ctx, self.variant_id).await
    }
}

/// A winner replacing its parent (or an edit recorded by hand).
#[derive(SimpleObject)]
#[graphql(complex)]
pub struct PromptEvolution {
    pub id: ID,
    /// mutation, crossover, optimization or manual_edit.
    pub evolution_type: String,
    pub strategy: Option<String>,
    pub parent_performance: Json<serde_json::Value>,
    pub child_performance: Json<serde_json::Value>,
    /// 0 to 1: the child's success rate over its parent's.
    pub improvement_score: Option<Decimal>,
    pub evolved_at: DateTime<Utc>,
    #[graphql(skip)]
    pub parent_id: Uuid,
    #[graphql(skip)]
    pub child_id: Uuid,
}

impl From<model::Evolution> for PromptEvolution {
    fn from(e: model::Evolution) -> Self {
        PromptEvolution {
            id: ID(e.id.to_string()),
            evolution_type: e.evolution_type,
            strategy: e.evolution_strategy,
            parent_performance: Json(e.parent_performance),
            child_performance: Json(e.child_performance),
            improvement_score: e.improvement_score.map(Decimal),
            evolved_at: e.evolved_at,
            parent_id: e.parent_prompt_id,
            child_id: e.child_prompt_id,
        }
    }
}

#[ComplexObject]
impl PromptEvolution {
    async fn parent(&self, ctx: &Context<'_>) -> AppResult<Option<Prompt>> {
        prompt(ctx, self.parent_id).await
    }
    async fn child(&self, ctx: &Context<'_>) -> AppResult<Option<Prompt>> {
        prompt(ctx, self.child_id).await
    }
}

fn check_key(field: &str, value: &str, max: usize) -> AppResult<()> {
    if value.is_empty() || value.chars().count() > max || value.contains('\0') {
        return Err(AppError::bad_input(
            &[field],
            format!("{field} must be 1 to {max} characters"),
        ));
    }
    Ok(())
}

#[derive(Default)]
pub struct PromptsQuery;

#[Object]
impl PromptsQuery {
    /// The prompt registry (every variant), optionally of one prompt name, newest first.
    #[graphql(guard = "Access::Read")]
    async fn prompts(
        &self,
        ctx: &Context<'_>,
        name: Option<String>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
    ) -> AppResult<Page<Prompt>> {
        created_page(
            ctx,
            PageRequest::either(first, after, last, before)?,
            |conn, scope, page| {
                async move { ops::list_prompts(conn, scope, name.as_deref(), &page).await }
                    .scope_boxed()
            },
            Prompt::from,
        )
        .await
    }

    /// The tenant's prompt A/B tests, newest first.
    #[graphql(guard = "Access::Read")]
    async fn prompt_ab_tests(
        &self,
        ctx: &Context<'_>,
        status: Option<AbTestStatus>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
    ) -> AppResult<Page<PromptAbTest>> {
        created_page(
            ctx,
            PageRequest::either(first, after, last, before)?,
            |conn, scope, page| {
                async move { ops::list_tests(conn, scope, status, &page).await }.scope_boxed()
            },
            PromptAbTest::from,
        )
        .await
    }

    /// The test of a name.
    #[graphql(guard = "Access::Read")]
    async fn prompt_ab_test(
        &self,
        ctx: &Context<'_>,
        test_name: String,
    ) -> AppResult<Option<PromptAbTest>> {
        check_key("testName", &test_name, 200)?;
        let test = request_context(ctx)?
            .db
            .query(|conn, scope| {
                async move { ops::test_named(conn, scope, &test_name).await }.scope_boxed()
            })
            .await?;
        Ok(test.map(PromptAbTest::from))
    }

    /// The variant of a test's prompt a subject (a lead, a session…) gets: while the test
    /// runs, the same arm for the same key, for ever, in the test's traffic shares; once
    /// it has a winner, the winner.
    #[graphql(guard = "Access::Read")]
    async fn assign_prompt_variant(
        &self,
        ctx: &Context<'_>,
        test_name: String,
        subject_key: String,
    ) -> AppResult<PromptAssignment> {
        check_key("testName", &test_name, 200)?;
        check_key("subjectKey", &subject_key, 200)?;
        let test = request_context(ctx)?
            .db
            .query(|conn, scope| {
                async move { ops::test_named(conn, scope, &test_name).await }.scope_boxed()
            })
            .await?
            .ok_or_else(|| AppError::bad_input(&["testName"], "no such A/B test"))?;
        if matches!(test.status, AbTestStatus::Draft | AbTestStatus::Cancelled) {
            return Err(AppError::bad_input(
                &["testName"],
                format!("this test is {}: it assigns nothing", test.status.as_str()),
            ));
        }
        let (arm, variant_id) = ops::arm_of(&test, &subject_key);
        Ok(PromptAssignment {
            arm,
            test: test.into(),
            variant_id,
        })
    }

    /// The latest 100 prompt evolutions, of one variant (as parent or child) when given.
    #[graphql(guard = "Access::Read")]
    async fn prompt_evolutions(
        &self,
        ctx: &Context<'_>,
        prompt_id: Option<ID>,
    ) -> AppResult<Vec<PromptEvolution>> {
        let prompt = prompt_id
            .map(|id| parse_id(&id, &["promptId"]))
            .transpose()?;
        let rows = request_context(ctx)?
            .db
            .query(|conn, scope| {
                async move { ops::evolutions(conn, scope, prompt).await }.scope_boxed()
            })
            .await?;
        Ok(rows.into_iter().map(PromptEvolution::from).collect())
    }
}

// ---- mutations ------------------------------------------------------------------------------

#[derive(InputObject)]
pub struct CreatePromptVariantInput {
    pub prompt_name: String,
    /// Unique in the tenant (e.g. `lead_analysis_v3`).
    pub variant_id: String,
    pub text: String,
    #[graphql(default_with = "Language::En")]
    pub language: Language,
}

#[derive(InputObject)]
pub struct UpdatePromptVariantInput {
    pub id: ID,
    pub text: Option<String>,
    /// `false` retires the variant (not while it is an arm of a running test).
    pub is_active: Option<bool>,
}

crate::payload!(PromptPayload { prompt: Prompt } from Option<Prompt>);

#[derive(InputObject)]
pub struct CreatePromptAbTestInput {
    pub test_name: String,
    pub control_variant_id: ID,
    pub treatment_variant_id: ID,
    /// The two sum to 100 (at most two decimals).
    #[graphql(default_with = "Decimal(50.into())")]
    pub control_traffic_percentage: Decimal,
    #[graphql(default_with = "Decimal(50.into())")]
    pub treatment_traffic_percentage: Decimal,
    #[graphql(default = 100)]
    pub min_sample_size: i32,
    #[graphql(default = 7)]
    pub max_duration_days: i32,
    #[graphql(default_with = "Decimal(bigdecimal::BigDecimal::new(5.into(), 2))")]
    pub significance_level: Decimal,
}

crate::payload!(PromptAbTestPayload { test: PromptAbTest } from Option<PromptAbTest>);

#[derive(InputObject)]
pub struct RecordPromptExecutionInput {
    pub variant_id: ID,
    /// The caller's id of the execution: recorded once.
    pub execution_id: String,
    /// 0 to 1; required unless `error`.
    pub quality: Option<f64>,
    pub accuracy: Option<f64>,
    pub consistency: Option<f64>,
    pub completeness: Option<f64>,
    pub latency_ms: Option<i32>,
    pub tokens: Option<i32>,
    pub cost_usd: Option<Decimal>,
    #[graphql(default)]
    pub error: bool,
    pub error_message: Option<String>,
    /// 1 to 5.
    pub user_rating: Option<i32>,
    /// production, staging or test.
    #[graphql(default_with = "String::from(\"production\")")]
    pub environment: String,
    pub input_data: Option<Json<serde_json::Value>>,
    pub output_data: Option<Json<serde_json::Value>>,
    /// The feedback this execution's outcome is judged by.
    pub feedback_id: Option<ID>,
}

#[derive(SimpleObject)]
pub struct RecordPromptExecutionPayload {
    pub execution_id: Option<ID>,
    pub prompt: Option<Prompt>,
    /// The test the execution counted in, after it.
    pub test: Option<PromptAbTest>,
    pub user_errors: Vec<UserError>,
}

impl Payload for RecordPromptExecutionPayload {
    /// The execution's id, its variant and the variant's test.
    type Value = (Uuid, Option<Prompt>, Option<PromptAbTest>);
    fn new(recorded: Option<Self::Value>, user_errors: Vec<UserError>) -> Self {
        let (id, prompt, test) = match recorded {
            Some((id, prompt, test)) => (Some(ID(id.to_string())), prompt, test),
            None => (None, None, None),
        };
        RecordPromptExecutionPayload {
            execution_id: id,
            prompt,
            test,
            user_errors,
        }
    }
}

async fn prompt_of(
    conn: &mut diesel_async::AsyncPgConnection,
    scope: crate::db::Tenant,
    id: Uuid,
) -> diesel::QueryResult<Option<Prompt>> {
    Ok(ops::prompts_by_ids(conn, scope, &[id])
        .await?
        .pop()
        .map(Prompt::from))
}

async fn test_of(
    conn: &mut diesel_async::AsyncPgConnection,
    scope: crate::db::Tenant,
    id: Uuid,
) -> diesel::QueryResult<Option<PromptAbTest>> {
    Ok(ops::tests_by_ids(conn, scope, &[id])
        .await?
        .pop()
        .map(PromptAbTest::from))
}

#[derive(Default)]
pub struct PromptsMutation;

impl PromptsMutation {
    async fn change_test(
        &self,
        ctx: &Context<'_>,
        id: ID,
        next: AbTestStatus,
    ) -> AppResult<PromptAbTestPayload> {
        let id = parse_id(&id, &["id"])?;
        write_payload(ctx, |conn, scope| {
            async move {
                ops::change_test(conn, scope, id, next, Utc::now()).await?;
                Ok(test_of(conn, scope, id).await?)
            }
            .scope_boxed()
        })
        .await
    }
}

#[Object]
impl PromptsMutation {
    /// Creates a variant of a prompt (admins): the prompt's next version.
    #[graphql(guard = "Access::Admin")]
    async fn create_prompt_variant(
        &self,
        ctx: &Context<'_>,
        input: CreatePromptVariantInput,
    ) -> AppResult<PromptPayload> {
        let variant = ops::VariantInput {
            prompt_name: input.prompt_name,
            variant_id: input.variant_id,
            text: input.text,
            language: input.language,
        };
        write_payload(ctx, |conn, scope| {
            async move {
                let id = ops::create_variant(conn, scope, variant).await?;
                Ok(prompt_of(conn, scope, id).await?)
            }
            .scope_boxed()
        })
        .await
    }

    /// Changes a variant's text, or retires it (admins).
    #[graphql(guard = "Access::Admin")]
    async fn update_prompt_variant(
        &self,
        ctx: &Context<'_>,
        input: UpdatePromptVariantInput,
    ) -> AppResult<PromptPayload> {
        let id = parse_id(&input.id, &["input", "id"])?;
        let (text, active) = (input.text, input.is_active);
        write_payload(ctx, |conn, scope| {
            async move {
                ops::update_variant(conn, scope, id, text, active).await?;
                Ok(prompt_of(conn, scope, id).await?)
            }
            .scope_boxed()
        })
        .await
    }

    /// Creates an A/B test of two variants of one prompt (admins; `DRAFT`).
    #[graphql(guard = "Access::Admin")]
    async fn create_prompt_ab_test(
        &self,
        ctx: &Context<'_>,
        input: CreatePromptAbTestInput,
    ) -> AppResult<PromptAbTestPayload> {
        let test = ops::TestInput {
            test_name: input.test_name,
            control: parse_id(&input.control_variant_id, &["input", "controlVariantId"])?,
            treatment: parse_id(
                &input.treatment_variant_id,
                &["input", "treatmentVariantId"],
            )?,
            control_percentage: input.control_traffic_percentage.0,
            treatment_percentage: input.treatment_traffic_percentage.0,
            min_sample_size: input.min_sample_size,
            max_duration_days: input.max_duration_days,
            significance_level: input.significance_level.0,
        };
        write_payload(ctx, |conn, scope| {
            async move {
                let id = ops::create_test(conn, scope, test).await?;
                Ok(test_of(conn, scope, id).await?)
            }
            .scope_boxed()
        })
        .await
    }

    /// Starts a draft test (admins; one runs at a time per prompt).
    #[graphql(guard = "Access::Admin")]
    async fn start_prompt_ab_test(
        &self,
        ctx: &Context<'_>,
        id: ID,
    ) -> AppResult<PromptAbTestPayload> {
        self.change_test(ctx, id, AbTestStatus::Running).await
    }

    /// Stops a running test without a winner (admins; `CANCELLED`).
    #[graphql(guard = "Access::Admin")]
    async fn stop_prompt_ab_test(
        &self,
        ctx: &Context<'_>,
        id: ID,
    ) -> AppResult<PromptAbTestPayload> {
        self.change_test(ctx, id, AbTestStatus::Cancelled).await
    }

    /// Records an execution of a variant (admins and partners: the AI service), once per
    /// `executionId`; it counts in the running test the variant is an arm of, which may
    /// then declare its winner.
    #[graphql(guard = "Access::Ingest")]
    async fn record_prompt_execution(
        &self,
        ctx: &Context<'_>,
        input: RecordPromptExecutionInput,
    ) -> AppResult<RecordPromptExecutionPayload> {
        let variant = parse_id(&input.variant_id, &["input", "variantId"])?;
        let execution = ops::Execution {
            variant,
            execution_id: input.execution_id,
            quality: input.quality,
            accuracy: input.accuracy,
            consistency: input.consistency,
            completeness: input.completeness,
            latency_ms: input.latency_ms,
            tokens: input.tokens,
            cost_usd: input.cost_usd.map(|c| c.0),
            error: input.error,
            error_message: input.error_message,
            user_rating: input.user_rating,
            environment: input.environment,
            input: input.input_data.map(|j| j.0),
            output: input.output_data.map(|j| j.0),
            feedback: input
                .feedback_id
                .map(|f| parse_id(&f, &["input", "feedbackId"]))
                .transpose()?,
        };
        write_payload(ctx, |conn, scope| {
            async move {
                let id = ops::record_execution(conn, scope, execution, Utc::now()).await?;
                let prompt = prompt_of(conn, scope, variant).await?;
                let test = ops::test_of_variant(conn, scope, variant).await?;
                Ok((id, prompt, test.map(PromptAbTest::from)))
            }
            .scope_boxed()
        })
        .await
    }
}
