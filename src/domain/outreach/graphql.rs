use async_graphql::connection::Connection;
use async_graphql::{ComplexObject, Context, InputObject, Json, Object, SimpleObject, ID};
use chrono::{DateTime, Utc};
use scoped_futures::ScopedFutureExt;
use uuid::Uuid;

use super::model::{self, AutoresponderTone, FormTestStatus, OutreachAction, OutreachEmailStatus};
use super::ops;
use crate::auth::Access;
use crate::domain::campaigns::metrics::{FunnelCounts, OutreachMetrics};
use crate::domain::campaigns::model::CampaignStatus;
use crate::domain::leads::model::Language;
use crate::domain::{write_payload, Payload, UserError};
use crate::error::{AppError, AppResult};
use crate::graphql::connection::{created_page, Cursor, IntoConnection, PageRequest};
use crate::graphql::context::{request_context, RequestContext};
use crate::graphql::scalars::parse_id;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct OutreachCountersKey(pub Uuid);
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct OutreachEventsOf(pub Uuid);
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FormTestsOf(pub Uuid);

crate::load_by_ids!(OutreachCountersKey => model::OutreachCounters, ops::outreach_counters_of, |row: &model::OutreachCounters| row.campaign_id);

crate::load_groups!(OutreachEventsOf => model::OutreachEvent, ops::outreach_events_of, |row: &model::OutreachEvent| Some(row.email_id));

crate::load_groups!(FormTestsOf => model::FormTest, ops::form_tests_of, |row: &model::FormTest| Some(row.prospect_id));

/// An outreach campaign to discovered prospects (seed 001).
#[derive(SimpleObject, Clone)]
#[graphql(complex)]
pub struct OutreachCampaign {
    pub id: ID,
    pub name: String,
    pub status: CampaignStatus,
    pub target_criteria: Json<serde_json::Value>,
    pub follow_up_schedule: Json<serde_json::Value>,
    pub email_template_id: Option<ID>,
    pub created_at: DateTime<Utc>,
    #[graphql(skip)]
    pub campaign_id: Uuid,
}

impl From<model::OutreachCampaign> for OutreachCampaign {
    fn from(c: model::OutreachCampaign) -> Self {
        OutreachCampaign {
            id: ID(c.id.to_string()),
            name: c.name,
            status: c.status,
            target_criteria: Json(c.target_criteria),
            follow_up_schedule: Json(c.follow_up_schedule),
            email_template_id: c.email_template_id.map(|t| ID(t.to_string())),
            created_at: c.created_at,
            campaign_id: c.id,
        }
    }
}

#[ComplexObject]
impl OutreachCampaign {
    /// The same funnel machinery as CRM campaigns, plus replies, bounces, unsubscribes.
    async fn metrics(&self, ctx: &Context<'_>) -> AppResult<OutreachMetrics> {
        let request = request_context(ctx)?;
        let counters = request
            .load_one(OutreachCountersKey(self.campaign_id))
            .await?;
        Ok(counters
            .map(|c| FunnelCounts::from(&c))
            .unwrap_or_default()
            .into())
    }
    async fn emails(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
    ) -> AppResult<Connection<Cursor<DateTime<Utc>>, OutreachEmail>> {
        let page = PageRequest::new(first, after)?;
        outreach_email_page(request_context(ctx)?, Some(self.campaign_id), page).await
    }
}

#[derive(SimpleObject, Clone)]
#[graphql(complex)]
pub struct OutreachEmail {
    pub id: ID,
    pub campaign_id: ID,
    pub prospect_id: Option<ID>,
    pub prospect_email: Option<String>,
    pub prospect_name: Option<String>,
    pub company_name: Option<String>,
    pub website: Option<String>,
    pub subject: String,
    /// The email's body as it is (or was) sent (HTML).
    pub content: String,
    pub status: OutreachEmailStatus,
    pub sent_at: Option<DateTime<Utc>>,
    pub opened_at: Option<DateTime<Utc>>,
    pub replied_at: Option<DateTime<Utc>>,
    /// 1 for the first email to the prospect, 2 for the first follow-up, …
    pub follow_up_sequence: i32,
    /// The prospect has no address: the email cannot be approved.
    pub missing_email: bool,
    pub created_at: DateTime<Utc>,
    #[graphql(skip)]
    pub email_id: Uuid,
}

impl From<model::OutreachEmail> for OutreachEmail {
    fn from(e: model::OutreachEmail) -> Self {
        OutreachEmail {
            id: ID(e.id.to_string()),
            campaign_id: ID(e.campaign_id.to_string()),
            prospect_id: e.prospect_id.map(|p| ID(p.to_string())),
            prospect_email: e.prospect_email,
            prospect_name: e.prospect_name,
            company_name: e.company_name,
            website: e.website,
            subject: e.subject,
            content: e.content,
            status: e.status,
            sent_at: e.sent_at,
            opened_at: e.opened_at,
            replied_at: e.replied_at,
            follow_up_sequence: e.follow_up_sequence,
            missing_email: e.missing_email,
            created_at: e.created_at,
            email_id: e.id,
        }
    }
}

#[derive(SimpleObject, Clone)]
pub struct OutreachEvent {
    pub id: ID,
    pub action: OutreachAction,
    pub timestamp: DateTime<Utc>,
}

impl From<model::OutreachEvent> for OutreachEvent {
    fn from(e: model::OutreachEvent) -> Self {
        OutreachEvent {
            id: ID(e.id.to_string()),
            action: e.action,
            timestamp: e.timestamp,
        }
    }
}

#[ComplexObject]
impl OutreachEmail {
    /// The tracking events (sent, delivered, opened, clicked, replied, bounced, unsubscribed).
    async fn events(&self, ctx: &Context<'_>) -> AppResult<Vec<OutreachEvent>> {
        let request = request_context(ctx)?;
        let rows = request
            .load_one(OutreachEventsOf(self.email_id))
            .await?
            .unwrap_or_default();
        Ok(crate::graphql::connection::bounded(rows)
            .into_iter()
            .map(OutreachEvent::from)
            .collect())
    }
}

async fn outreach_email_page(
    request: &RequestContext,
    campaign: Option<Uuid>,
    page: PageRequest<DateTime<Utc>>,
) -> AppResult<Connection<Cursor<DateTime<Utc>>, OutreachEmail>> {
    let rows = request
        .db
        .query(|conn, scope| {
            let page = &page;
            async move { ops::outreach_emails(conn, scope, campaign, page).await }.scope_boxed()
        })
        .await?;
    Ok(page.into_connection(
        rows,
        |e| Cursor {
            key: e.created_at,
            id: e.id,
        },
        OutreachEmail::from,
    ))
}

// ---- prospect discovery ---------------------------------------------------------------------

/// A business discovered as a prospect (seed 001), scored by its need of automation.
#[derive(SimpleObject, Clone)]
#[graphql(complex)]
pub struct ProspectCandidate {
    pub id: ID,
    pub business_name: String,
    /// The website as the key that finds the business again (`cave.example/fr`).
    pub website: String,
    pub contact_email: Option<String>,
    pub industry: Option<String>,
    pub region: Option<String>,
    pub language: Language,
    pub form_url: Option<String>,
    pub last_tested: Option<DateTime<Utc>>,
    /// The score of its latest finished form test (0–100).
    pub response_score: Option<i32>,
    /// 45–95, from its signals (docs/domains.md, "Prospect discovery").
    pub automation_need_score: Option<i32>,
    pub contacted: bool,
    pub metadata: Json<serde_json::Value>,
    pub created_at: DateTime<Utc>,
    /// −1 to 1: the highest cosine similarity of its embedding to the tenant's profile
    /// chunks (null without an embedding or a profile).
    pub profile_similarity: Option<f64>,
    #[graphql(skip)]
    pub candidate_id: Uuid,
}

impl From<model::ProspectCandidate> for ProspectCandidate {
    fn from(c: model::ProspectCandidate) -> Self {
        ProspectCandidate {
            id: ID(c.id.to_string()),
            business_name: c.business_name,
            website: c.website,
            contact_email: c.contact_email,
            industry: c.industry,
            region: c.region,
            language: c.language,
            form_url: c.form_url,
            last_tested: c.last_tested,
            response_score: c.response_score,
            automation_need_score: c.automation_need_score,
            contacted: c.contacted,
            metadata: Json(c.metadata),
            created_at: c.created_at,
            profile_similarity: c.profile_similarity,
            candidate_id: c.id,
        }
    }
}

#[ComplexObject]
impl ProspectCandidate {
    /// Its form tests, newest first.
    async fn form_tests(&self, ctx: &Context<'_>) -> AppResult<Vec<FormTest>> {
        let rows = request_context(ctx)?
            .load_one(FormTestsOf(self.candidate_id))
            .await?
            .unwrap_or_default();
        Ok(crate::graphql::connection::bounded(rows)
            .into_iter()
            .map(FormTest::from)
            .collect())
    }
}

/// A test of a prospect's contact form: submitted, then answered (or not).
#[derive(SimpleObject, Clone)]
pub struct FormTest {
    pub id: ID,
    pub prospect_id: ID,
    pub submitted_at: DateTime<Utc>,
    pub response_received_at: Option<DateTime<Utc>>,
    pub response_time_minutes: Option<i32>,
    pub has_autoresponder: bool,
    pub autoresponder_tone: AutoresponderTone,
    pub autoresponder_content: Option<String>,
    /// 0–100 once finished (docs/domains.md).
    pub score: Option<i32>,
    pub status: FormTestStatus,
}

impl From<model::FormTest> for FormTest {
    fn from(t: model::FormTest) -> Self {
        FormTest {
            id: ID(t.id.to_string()),
            prospect_id: ID(t.prospect_id.to_string()),
            submitted_at: t.test_submitted_at,
            response_received_at: t.response_received_at,
            response_time_minutes: t.response_time_minutes,
            has_autoresponder: t.has_autoresponder,
            autoresponder_tone: t.autoresponder_tone,
            autoresponder_content: t.autoresponder_content,
            score: t.score,
            status: t.test_status,
        }
    }
}

/// How an industry answers outreach: counters kept by the events behind them, rates
/// over the emails sent to it.
#[derive(SimpleObject, Clone)]
pub struct IndustryPerformance {
    pub industry: String,
    pub total_contacted: i32,
    pub total_opened: i32,
    pub total_replied: i32,
    pub open_rate: f64,
    pub reply_rate: f64,
    pub avg_response_time_hours: Option<f64>,
    /// 50 until ten emails went out, then 100 × (0.3 × open rate + 0.7 × reply rate).
    pub priority_score: i32,
    pub last_updated: DateTime<Utc>,
}

impl From<model::IndustryPerformance> for IndustryPerformance {
    fn from(p: model::IndustryPerformance) -> Self {
        use bigdecimal::ToPrimitive;
        IndustryPerformance {
            industry: p.industry,
            total_contacted: p.total_contacted,
            total_opened: p.total_opened,
            total_replied: p.total_replied,
            open_rate: p.open_rate.to_f64().unwrap_or_default(),
            reply_rate: p.reply_rate.to_f64().unwrap_or_default(),
            avg_response_time_hours: p.avg_response_time_hours.and_then(|h| h.to_f64()),
            priority_score: p.priority_score,
            last_updated: p.last_updated,
        }
    }
}

/// A chunk of the tenant's own profile, embedded.
#[derive(SimpleObject)]
pub struct ProfileChunk {
    pub id: ID,
    pub text: String,
    pub model: String,
    pub metadata: Json<serde_json::Value>,
    pub created_at: DateTime<Utc>,
}

impl From<model::ProfileChunk> for ProfileChunk {
    fn from(c: model::ProfileChunk) -> Self {
        ProfileChunk {
            id: ID(c.id.to_string()),
            text: c.chunk_text,
            model: c.embedding_model,
            metadata: Json(c.metadata),
            created_at: c.created_at,
        }
    }
}

#[derive(InputObject, Default)]
pub struct ProspectCandidateFilter {
    pub industry: Option<String>,
    pub region: Option<String>,
    pub language: Option<Language>,
    pub score_min: Option<i32>,
    pub score_max: Option<i32>,
    pub contacted: Option<bool>,
}

// ---- queries --------------------------------------------------------------------------------

#[derive(Default)]
pub struct OutreachQuery;

#[Object]
impl OutreachQuery {
    #[graphql(guard = "Access::Read")]
    async fn outreach_campaign(
        &self,
        ctx: &Context<'_>,
        id: ID,
    ) -> AppResult<Option<OutreachCampaign>> {
        let request = request_context(ctx)?;
        let id = parse_id(&id, &["id"])?;
        let rows = request
            .db
            .query(|conn, scope| {
                async move { ops::outreach_campaigns_by_ids(conn, scope, &[id]).await }
                    .scope_boxed()
            })
            .await?;
        Ok(rows.into_iter().next().map(OutreachCampaign::from))
    }

    #[graphql(guard = "Access::Read")]
    async fn outreach_campaigns(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
    ) -> AppResult<Connection<Cursor<DateTime<Utc>>, OutreachCampaign>> {
        created_page(
            ctx,
            PageRequest::either(first, after, last, before)?,
            |conn, scope, page| {
                async move { ops::list_outreach_campaigns(conn, scope, &page).await }.scope_boxed()
            },
            OutreachCampaign::from,
        )
        .await
    }

    /// Outreach emails, optionally of one campaign, in creation order.
    #[graphql(guard = "Access::Read")]
    async fn outreach_emails(
        &self,
        ctx: &Context<'_>,
        campaign_id: Option<ID>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
    ) -> AppResult<Connection<Cursor<DateTime<Utc>>, OutreachEmail>> {
        let campaign = campaign_id
            .as_ref()
            .map(|c| parse_id(c, &["campaignId"]))
            .transpose()?;
        outreach_email_page(
            request_context(ctx)?,
            campaign,
            PageRequest::either(first, after, last, before)?,
        )
        .await
    }

    /// The tenant's prospect candidates, newest first.
    #[graphql(guard = "Access::Read")]
    #[allow(clippy::too_many_arguments)]
    async fn prospect_candidates(
        &self,
        ctx: &Context<'_>,
        filter: Option<ProspectCandidateFilter>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
    ) -> AppResult<Connection<Cursor<DateTime<Utc>>, ProspectCandidate>> {
        let f = filter.unwrap_or_default();
        for (field, value) in [("industry", &f.industry), ("region", &f.region)] {
            if value.as_ref().is_some_and(|v| v.chars().count() > 100) {
                return Err(AppError::bad_input(
                    &["filter", field],
                    format!("{field} must be at most 100 characters"),
                ));
            }
        }
        let filter = ops::CandidateFilter {
            industry: f.industry,
            region: f.region,
            language: f.language,
            score_min: f.score_min,
            score_max: f.score_max,
            contacted: f.contacted,
        };
        created_page(
            ctx,
            PageRequest::either(first, after, last, before)?,
            |conn, scope, page| {
                async move { ops::list_candidates(conn, scope, filter, &page).await }.scope_boxed()
            },
            ProspectCandidate::from,
        )
        .await
    }

    #[graphql(guard = "Access::Read")]
    async fn prospect_candidate(
        &self,
        ctx: &Context<'_>,
        id: ID,
    ) -> AppResult<Option<ProspectCandidate>> {
        let id = parse_id(&id, &["id"])?;
        let rows = request_context(ctx)?
            .db
            .query(|conn, scope| {
                async move { ops::candidates_by_ids(conn, scope, &[id]).await }.scope_boxed()
            })
            .await?;
        Ok(rows.into_iter().next().map(ProspectCandidate::from))
    }

    /// The candidates most like the tenant's profile, most similar first (`first` 1–100).
    #[graphql(guard = "Access::Read")]
    async fn similar_prospects(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 20)] first: i32,
    ) -> AppResult<Vec<ProspectCandidate>> {
        if !(1..=100).contains(&first) {
            return Err(AppError::bad_input(&["first"], "first is 1 to 100"));
        }
        let rows = request_context(ctx)?
            .db
            .query(|conn, scope| {
                async move { ops::similar_prospects(conn, scope, first.into()).await }.scope_boxed()
            })
            .await?;
        Ok(rows.into_iter().map(ProspectCandidate::from).collect())
    }

    /// The tenant's profile chunks (their vectors are not returned).
    #[graphql(guard = "Access::Read")]
    async fn profile_embeddings(&self, ctx: &Context<'_>) -> AppResult<Vec<ProfileChunk>> {
        let rows = request_context(ctx)?
            .db
            .query(|conn, scope| {
                async move { ops::profile_chunks(conn, scope).await }.scope_boxed()
            })
            .await?;
        Ok(rows.into_iter().map(ProfileChunk::from).collect())
    }

    /// The tenant's industries, highest priority first.
    #[graphql(guard = "Access::Read")]
    async fn prospect_industry_performance(
        &self,
        ctx: &Context<'_>,
    ) -> AppResult<Vec<IndustryPerformance>> {
        let rows = request_context(ctx)?
            .db
            .query(|conn, scope| {
                async move { ops::industry_performance(conn, scope).await }.scope_boxed()
            })
            .await?;
        Ok(rows.into_iter().map(IndustryPerformance::from).collect())
    }
}

// ---- mutations ------------------------------------------------------------------------------

#[derive(InputObject)]
pub struct RecordOutreachEventInput {
    pub email_id: ID,
    pub action: OutreachAction,
    pub occurred_at: Option<DateTime<Utc>>,
    /// What the prospect wrote back (a `REPLIED` event only).
    pub reply_content: Option<String>,
}

crate::payload!(RecordOutreachEventPayload { event: OutreachEvent } from model::OutreachEvent);

#[derive(InputObject)]
pub struct ProspectCandidateInput {
    pub business_name: String,
    /// Any spelling of the site (`https://www.cave.example/`): it is kept normalised.
    pub website: String,
    pub contact_email: Option<String>,
    pub industry: Option<String>,
    pub region: Option<String>,
    /// Default `EN`.
    pub language: Option<Language>,
    /// The contact form's https address.
    pub form_url: Option<String>,
    /// Where it was found and anything else (a JSON object; `contactName` is used as the
    /// `name` of outreach templates).
    pub metadata: Option<Json<serde_json::Value>>,
}

#[derive(SimpleObject)]
pub struct ImportProspectCandidatesPayload {
    /// The candidates imported, in the order of the input.
    pub candidates: Vec<ProspectCandidate>,
    /// One per row not imported, its index in the path (`["input", "3", "website"]`).
    pub user_errors: Vec<UserError>,
}

impl Payload for ImportProspectCandidatesPayload {
    /// The candidates imported and the rows refused.
    type Value = (Vec<model::ProspectCandidate>, Vec<UserError>);
    fn new(imported: Option<Self::Value>, mut user_errors: Vec<UserError>) -> Self {
        let (candidates, refused) = imported.unwrap_or_default();
        user_errors.extend(refused);
        ImportProspectCandidatesPayload {
            candidates: candidates
                .into_iter()
                .map(ProspectCandidate::from)
                .collect(),
            user_errors,
        }
    }
}

#[derive(InputObject)]
pub struct ProfileChunkInput {
    pub text: String,
    /// 1 536 numbers.
    pub embedding: Vec<f64>,
    /// Default `text-embedding-ada-002`.
    pub model: Option<String>,
    pub metadata: Option<Json<serde_json::Value>>,
}

#[derive(InputObject)]
pub struct ReplaceProfileEmbeddingsInput {
    /// At most 100; none clears the profile.
    pub chunks: Vec<ProfileChunkInput>,
}

#[derive(SimpleObject)]
pub struct ProfileEmbeddingsPayload {
    pub chunks: Vec<ProfileChunk>,
    pub user_errors: Vec<UserError>,
}

impl Payload for ProfileEmbeddingsPayload {
    type Value = Vec<model::ProfileChunk>;
    fn new(chunks: Option<Self::Value>, user_errors: Vec<UserError>) -> Self {
        ProfileEmbeddingsPayload {
            chunks: chunks
                .unwrap_or_default()
                .into_iter()
                .map(ProfileChunk::from)
                .collect(),
            user_errors,
        }
    }
}

#[derive(InputObject)]
pub struct SetProspectEmbeddingInput {
    pub prospect_id: ID,
    /// 1 536 numbers; null takes the embedding away.
    pub embedding: Option<Vec<f64>>,
}

crate::payload!(ProspectCandidatePayload {
    candidate: ProspectCandidate
} from Option<model::ProspectCandidate>);

#[derive(InputObject)]
pub struct RecordFormTestInput {
    pub prospect_id: ID,
    /// When the test message was sent through the form (default: now).
    pub submitted_at: Option<DateTime<Utc>>,
}

#[derive(InputObject)]
pub struct RecordFormTestResultInput {
    pub test_id: ID,
    /// `COMPLETED`, `FAILED` or `TIMEOUT`.
    pub status: FormTestStatus,
    /// When the answer came (a completed test only).
    pub response_received_at: Option<DateTime<Utc>>,
    #[graphql(default)]
    pub has_autoresponder: bool,
    pub autoresponder_tone: Option<AutoresponderTone>,
    pub autoresponder_content: Option<String>,
}

crate::payload!(FormTestPayload { form_test: FormTest } from Option<FormTest>);

#[derive(InputObject)]
pub struct OutreachTargetInput {
    pub industry: Option<String>,
    pub region: Option<String>,
    pub language: Option<Language>,
    pub score_min: Option<i32>,
    pub score_max: Option<i32>,
}

#[derive(InputObject)]
pub struct FollowUpInput {
    /// Days after the email before it.
    pub after_days: i32,
    /// Its own template; without one the campaign's is sent again as a reply (`Re: …`).
    pub template_id: Option<ID>,
}

#[derive(InputObject)]
pub struct OutreachCampaignInput {
    /// The campaign to change (none: a new campaign, `DRAFT`).
    pub id: Option<ID>,
    pub name: Option<String>,
    pub target: Option<OutreachTargetInput>,
    pub email_template_id: Option<ID>,
    pub follow_up_schedule: Option<Vec<FollowUpInput>>,
    /// `DRAFT → ACTIVE ⇄ PAUSED → COMPLETED`.
    pub status: Option<CampaignStatus>,
}

crate::payload!(OutreachCampaignPayload {
    campaign: OutreachCampaign
} from Option<OutreachCampaign>);

#[derive(SimpleObject)]
pub struct GenerateOutreachEmailsPayload {
    /// How many emails were written (`PENDING`).
    pub created: i32,
    pub campaign: Option<OutreachCampaign>,
    /// Candidates the template did not render for.
    pub user_errors: Vec<UserError>,
}

impl Payload for GenerateOutreachEmailsPayload {
    type Value = (ops::Generated, Option<OutreachCampaign>);
    fn new(generated: Option<Self::Value>, mut user_errors: Vec<UserError>) -> Self {
        let (generated, campaign) = generated.unwrap_or_default();
        user_errors.extend(generated.refused);
        GenerateOutreachEmailsPayload {
            created: generated.created as i32,
            campaign,
            user_errors,
        }
    }
}

crate::payload!(OutreachEmailPayload { email: OutreachEmail } from Option<OutreachEmail>);

fn campaign_change(input: OutreachCampaignInput) -> AppResult<ops::CampaignChange> {
    let template_id = input
        .email_template_id
        .map(|t| parse_id(&t, &["input", "emailTemplateId"]))
        .transpose()?;
    let follow_ups = input
        .follow_up_schedule
        .map(|steps| {
            steps
                .into_iter()
                .map(|s| {
                    Ok(ops::FollowUp {
                        after_days: s.after_days,
                        template_id: s
                            .template_id
                            .map(|t| parse_id(&t, &["input", "followUpSchedule"]))
                            .transpose()?,
                    })
                })
                .collect::<AppResult<Vec<_>>>()
        })
        .transpose()?;
    Ok(ops::CampaignChange {
        name: input.name,
        target: input.target.map(|t| ops::Target {
            industry: t.industry,
            region: t.region,
            language: t.language,
            score_min: t.score_min,
            score_max: t.score_max,
        }),
        template_id,
        follow_ups,
        status: input.status,
    })
}

async fn campaign_of(
    conn: &mut diesel_async::AsyncPgConnection,
    scope: crate::db::Tenant,
    id: Uuid,
) -> diesel::QueryResult<Option<OutreachCampaign>> {
    Ok(ops::outreach_campaigns_by_ids(conn, scope, &[id])
        .await?
        .pop()
        .map(OutreachCampaign::from))
}

async fn email_of(
    conn: &mut diesel_async::AsyncPgConnection,
    scope: crate::db::Tenant,
    id: Uuid,
) -> diesel::QueryResult<Option<OutreachEmail>> {
    Ok(ops::outreach_emails_by_ids(conn, scope, &[id])
        .await?
        .pop()
        .map(OutreachEmail::from))
}

async fn form_test_of(
    conn: &mut diesel_async::AsyncPgConnection,
    scope: crate::db::Tenant,
    id: Uuid,
) -> diesel::QueryResult<Option<FormTest>> {
    use crate::db::schema::prospect_form_tests as f;
    use diesel::prelude::*;
    use diesel_async::RunQueryDsl;
    Ok(f::table
        .filter(f::tenant_id.eq(scope.id()))
        .filter(f::id.eq(id))
        .select(model::FormTest::as_select())
        .first(conn)
        .await
        .optional()?
        .map(FormTest::from))
}

/// A person's decision on a pending email, and the email after it.
async fn decide(
    ctx: &Context<'_>,
    id: ID,
    decision: OutreachEmailStatus,
) -> AppResult<OutreachEmailPayload> {
    let id = parse_id(&id, &["id"])?;
    write_payload(ctx, |conn, scope| {
        async move {
            ops::decide_outreach_email(conn, scope, id, decision).await?;
            Ok(email_of(conn, scope, id).await?)
        }
        .scope_boxed()
    })
    .await
}

#[derive(Default)]
pub struct OutreachMutation;

#[Object]
impl OutreachMutation {
    /// Records an event of an outreach email (a provider's report, or a reply seen in
    /// the mailbox): it moves the email forward only, and counts once per step.
    #[graphql(guard = "Access::Ingest")]
    async fn record_outreach_event(
        &self,
        ctx: &Context<'_>,
        input: RecordOutreachEventInput,
    ) -> AppResult<RecordOutreachEventPayload> {
        let id = parse_id(&input.email_id, &["input", "emailId"])?;
        let at = input.occurred_at.unwrap_or_else(Utc::now);
        let action = input.action;
        let reply = input.reply_content;
        write_payload(ctx, |conn, scope| {
            async move {
                ops::record_outreach_event(conn, scope, id, action, at, reply.as_deref()).await
            }
            .scope_boxed()
        })
        .await
    }

    /// Imports up to 1 000 prospect candidates (admins and partners): each row that is
    /// invalid or names a known website is refused on its own.
    #[graphql(guard = "Access::Ingest")]
    async fn import_prospect_candidates(
        &self,
        ctx: &Context<'_>,
        input: Vec<ProspectCandidateInput>,
    ) -> AppResult<ImportProspectCandidatesPayload> {
        if input.len() > ops::MAX_IMPORT {
            return Err(AppError::bad_input(
                &["input"],
                format!("at most {} candidates per import", ops::MAX_IMPORT),
            ));
        }
        let rows = input
            .into_iter()
            .map(|row| ops::CandidateInput {
                business_name: row.business_name,
                website: row.website,
                contact_email: row.contact_email,
                industry: row.industry,
                region: row.region,
                language: row.language,
                form_url: row.form_url,
                metadata: row.metadata.map(|m| m.0),
            })
            .collect();
        write_payload(ctx, |conn, scope| {
            async move {
                let imported = ops::import_candidates(conn, scope, rows).await?;
                let mut found = ops::candidates_by_ids(conn, scope, &imported.ids).await?;
                found.sort_by_key(|c| imported.ids.iter().position(|id| *id == c.id));
                Ok((found, imported.refused))
            }
            .scope_boxed()
        })
        .await
    }

    /// Replaces the tenant's profile chunks (admins); every candidate's similarity to the
    /// profile is computed again.
    #[graphql(guard = "Access::Admin")]
    async fn replace_profile_embeddings(
        &self,
        ctx: &Context<'_>,
        input: ReplaceProfileEmbeddingsInput,
    ) -> AppResult<ProfileEmbeddingsPayload> {
        let chunks = input
            .chunks
            .into_iter()
            .map(|c| ops::ChunkInput {
                text: c.text,
                embedding: c.embedding,
                model: c.model,
                metadata: c.metadata.map(|m| m.0),
            })
            .collect();
        write_payload(ctx, |conn, scope| {
            async move {
                ops::replace_profile(conn, scope, chunks).await?;
                Ok(ops::profile_chunks(conn, scope).await?)
            }
            .scope_boxed()
        })
        .await
    }

    /// Gives a candidate its embedding (admins and partners), and with it its similarity
    /// to the profile.
    #[graphql(guard = "Access::Ingest")]
    async fn set_prospect_embedding(
        &self,
        ctx: &Context<'_>,
        input: SetProspectEmbeddingInput,
    ) -> AppResult<ProspectCandidatePayload> {
        let id = parse_id(&input.prospect_id, &["input", "prospectId"])?;
        let embedding = input.embedding;
        write_payload(ctx, |conn, scope| {
            async move {
                ops::set_candidate_embedding(conn, scope, id, embedding).await?;
                Ok(ops::candidates_by_ids(conn, scope, &[id]).await?.pop())
            }
            .scope_boxed()
        })
        .await
    }

    /// Starts a test of a candidate's contact form (`PENDING`; one at a time).
    #[graphql(guard = "Access::Ingest")]
    async fn record_form_test(
        &self,
        ctx: &Context<'_>,
        input: RecordFormTestInput,
    ) -> AppResult<FormTestPayload> {
        let prospect = parse_id(&input.prospect_id, &["input", "prospectId"])?;
        let at = input.submitted_at.unwrap_or_else(Utc::now);
        write_payload(ctx, |conn, scope| {
            async move {
                let id = ops::start_form_test(conn, scope, prospect, at).await?;
                Ok(form_test_of(conn, scope, id).await?)
            }
            .scope_boxed()
        })
        .await
    }

    /// Ends a pending form test (`COMPLETED`, `FAILED` or `TIMEOUT`, once); its score
    /// becomes the candidate's response score, and the candidate is scored again.
    #[graphql(guard = "Access::Ingest")]
    async fn record_form_test_result(
        &self,
        ctx: &Context<'_>,
        input: RecordFormTestResultInput,
    ) -> AppResult<FormTestPayload> {
        let test = parse_id(&input.test_id, &["input", "testId"])?;
        let result = ops::FormTestResult {
            status: input.status,
            response_received_at: input.response_received_at,
            has_autoresponder: input.has_autoresponder,
            autoresponder_tone: input.autoresponder_tone,
            autoresponder_content: input.autoresponder_content,
        };
        write_payload(ctx, |conn, scope| {
            async move {
                let id = ops::finish_form_test(conn, scope, test, result, Utc::now()).await?;
                Ok(form_test_of(conn, scope, id).await?)
            }
            .scope_boxed()
        })
        .await
    }

    /// Creates an outreach campaign (admins; `DRAFT`).
    #[graphql(guard = "Access::Admin")]
    async fn create_outreach_campaign(
        &self,
        ctx: &Context<'_>,
        input: OutreachCampaignInput,
    ) -> AppResult<OutreachCampaignPayload> {
        if input.id.is_some() {
            return Err(AppError::bad_input(
                &["input", "id"],
                "a new campaign has no id yet",
            ));
        }
        let change = campaign_change(input)?;
        write_payload(ctx, |conn, scope| {
            async move {
                let id = ops::create_outreach_campaign(conn, scope, change).await?;
                Ok(campaign_of(conn, scope, id).await?)
            }
            .scope_boxed()
        })
        .await
    }

    /// Changes an outreach campaign (admins); one becoming `ACTIVE` sends its approved emails.
    #[graphql(guard = "Access::Admin")]
    async fn update_outreach_campaign(
        &self,
        ctx: &Context<'_>,
        input: OutreachCampaignInput,
    ) -> AppResult<OutreachCampaignPayload> {
        let id = input
            .id
            .as_ref()
            .map(|id| parse_id(id, &["input", "id"]))
            .transpose()?
            .ok_or_else(|| AppError::bad_input(&["input", "id"], "which campaign to change"))?;
        let change = campaign_change(input)?;
        write_payload(ctx, |conn, scope| {
            async move {
                ops::update_outreach_campaign(conn, scope, id, change).await?;
                Ok(campaign_of(conn, scope, id).await?)
            }
            .scope_boxed()
        })
        .await
    }

    /// Writes one `PENDING` email per uncontacted candidate the campaign targets (admins;
    /// at most 1 000 per call, highest scores first).
    #[graphql(guard = "Access::Admin")]
    async fn generate_outreach_emails(
        &self,
        ctx: &Context<'_>,
        campaign_id: ID,
    ) -> AppResult<GenerateOutreachEmailsPayload> {
        let id = parse_id(&campaign_id, &["campaignId"])?;
        write_payload(ctx, |conn, scope| {
            async move {
                let generated = ops::generate_outreach_emails(conn, scope, id).await?;
                Ok((generated, campaign_of(conn, scope, id).await?))
            }
            .scope_boxed()
        })
        .await
    }

    /// Approves a pending email (admins): sent now if its campaign is active, else when
    /// it becomes active.
    #[graphql(guard = "Access::Admin")]
    async fn approve_outreach_email(
        &self,
        ctx: &Context<'_>,
        id: ID,
    ) -> AppResult<OutreachEmailPayload> {
        decide(ctx, id, OutreachEmailStatus::Approved).await
    }

    /// Rejects a pending email (admins): it is never sent.
    #[graphql(guard = "Access::Admin")]
    async fn reject_outreach_email(
        &self,
        ctx: &Context<'_>,
        id: ID,
    ) -> AppResult<OutreachEmailPayload> {
        decide(ctx, id, OutreachEmailStatus::Rejected).await
    }
}
