use async_graphql::connection::Connection;
use async_graphql::{Context, InputObject, Json, Object, SimpleObject, ID};
use chrono::{DateTime, Utc};
use scoped_futures::ScopedFutureExt;

use super::model::{SequenceSegment, SequenceStatus, TestimonialStatus};
use super::{model, ops};
use crate::auth::Access;
use crate::domain::write_payload;
use crate::error::AppResult;
use crate::graphql::connection::IntoConnection;
use crate::graphql::connection::{created_page, Cursor, PageRequest};
use crate::graphql::context::request_context;
use crate::graphql::scalars::{parse_id, parse_optional_id};

pub struct Testimonial(pub model::Testimonial);

impl From<model::Testimonial> for Testimonial {
    fn from(testimonial: model::Testimonial) -> Self {
        Testimonial(testimonial)
    }
}

#[Object]
impl Testimonial {
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    async fn content(&self) -> &str {
        &self.0.content
    }
    /// 1 to 5 stars.
    async fn rating(&self) -> Option<i32> {
        self.0.rating
    }
    async fn video_url(&self) -> Option<&str> {
        self.0.video_url.as_deref()
    }
    async fn published_at(&self) -> Option<DateTime<Utc>> {
        self.0.published_at
    }
    async fn status(&self) -> TestimonialStatus {
        self.0.status
    }
    /// Who gave it (null for widget keys).
    async fn contact_id(&self, ctx: &Context<'_>) -> AppResult<Option<ID>> {
        let widget = matches!(
            request_context(ctx)?.principal,
            crate::auth::Principal::Widget { .. }
        );
        Ok((!widget).then(|| ID(self.0.contact_id.to_string())))
    }
    async fn linkedin_shared_at(&self) -> Option<DateTime<Utc>> {
        self.0.linkedin_shared_at
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
}

/// Someone who gives testimonials, with their LinkedIn consent.
#[derive(SimpleObject)]
pub struct Contact {
    pub id: ID,
    pub customer_id: Option<ID>,
    pub name: String,
    pub email: Option<String>,
    pub company: Option<String>,
    pub job_title: Option<String>,
    pub linkedin_url: Option<String>,
    pub linkedin_consent: bool,
    /// When the consent was given (null without it).
    pub linkedin_consent_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

impl From<model::Contact> for Contact {
    fn from(c: model::Contact) -> Self {
        Contact {
            id: ID(c.id.to_string()),
            customer_id: c.customer_id.map(|id| ID(id.to_string())),
            name: c.name,
            email: c.email,
            company: c.company,
            job_title: c.job_title,
            linkedin_url: c.linkedin_url,
            linkedin_consent: c.linkedin_consent,
            linkedin_consent_at: c.linkedin_consent_at,
            created_at: c.created_at,
        }
    }
}

#[derive(InputObject)]
pub struct SaveContactInput {
    /// The contact to change; none: a new one.
    pub id: Option<ID>,
    pub name: String,
    pub email: Option<String>,
    pub company: Option<String>,
    pub job_title: Option<String>,
    /// An https URL.
    pub linkedin_url: Option<String>,
    pub customer_id: Option<ID>,
}

#[derive(InputObject)]
pub struct SetLinkedinConsentInput {
    pub contact_id: ID,
    pub consent: bool,
}

crate::payload!(ContactPayload { contact: Contact } from model::Contact);

#[derive(InputObject)]
pub struct CreateTestimonialInput {
    pub contact_id: ID,
    /// At most 5 000 characters.
    pub content: String,
    /// 1 to 5.
    pub rating: Option<i32>,
    /// An https URL.
    pub video_url: Option<String>,
}

#[derive(async_graphql::Enum, Clone, Copy, PartialEq, Eq)]
pub enum ModerationDecision {
    Publish,
    Reject,
}

#[derive(InputObject)]
pub struct ModerateTestimonialInput {
    pub id: ID,
    pub decision: ModerationDecision,
}

#[derive(InputObject)]
pub struct TestimonialIdInput {
    pub id: ID,
}

crate::payload!(TestimonialPayload { testimonial: Testimonial } from model::Testimonial);

/// A re-engagement email sequence for one recipient.
#[derive(SimpleObject)]
pub struct EmailSequence {
    pub id: ID,
    pub contact_id: Option<ID>,
    pub recipient_email: String,
    pub segment: SequenceSegment,
    pub status: SequenceStatus,
    /// The last step sent (0 before the first).
    pub current_step: i32,
    pub next_send_at: Option<DateTime<Utc>>,
    pub started_at: DateTime<Utc>,
    pub completed_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

impl From<model::EmailSequence> for EmailSequence {
    fn from(e: model::EmailSequence) -> Self {
        EmailSequence {
            id: ID(e.id.to_string()),
            contact_id: e.contact_id.map(|c| ID(c.to_string())),
            recipient_email: e.recipient_email,
            segment: e.segment,
            status: e.status,
            current_step: e.current_step,
            next_send_at: e.next_send_at,
            started_at: e.started_at,
            completed_at: e.completed_at,
            created_at: e.created_at,
        }
    }
}

/// A visitor's demo session (its token and IP hash are not exposed).
#[derive(SimpleObject)]
pub struct DemoSession {
    pub id: ID,
    pub visitor_email: Option<String>,
    pub video_url: Option<String>,
    pub share_count: i32,
    pub converted: bool,
    pub converted_at: Option<DateTime<Utc>>,
    pub expires_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
}

impl From<model::DemoSession> for DemoSession {
    fn from(d: model::DemoSession) -> Self {
        DemoSession {
            id: ID(d.id.to_string()),
            visitor_email: d.visitor_email,
            video_url: d.video_url,
            share_count: d.share_count,
            converted: d.converted,
            converted_at: d.converted_at,
            expires_at: d.expires_at,
            created_at: d.created_at,
        }
    }
}

/// The testimonial widget's settings.
#[derive(SimpleObject)]
pub struct WidgetConfig {
    /// The publishable, read-only widget key (`wgt_…`) embedded in the tenant's sites
    /// (null but for admins).
    pub api_key: Option<String>,
    pub theme: Json<serde_json::Value>,
    pub allowed_domains: Vec<String>,
    pub max_testimonials: i32,
    pub is_active: bool,
    pub updated_at: DateTime<Utc>,
}

impl From<model::WidgetConfig> for WidgetConfig {
    fn from(w: model::WidgetConfig) -> Self {
        WidgetConfig {
            api_key: Some(w.api_key),
            theme: Json(w.theme),
            allowed_domains: w.allowed_domains.into_iter().flatten().collect(),
            max_testimonials: w.max_testimonials,
            is_active: w.is_active,
            updated_at: w.updated_at,
        }
    }
}

#[derive(Default)]
pub struct AutomationsQuery;

#[Object]
impl AutomationsQuery {
    /// Published testimonials, newest first. Widget keys (`wgt_…`) may read this and
    /// nothing else.
    #[graphql(guard = "Access::Widget")]
    async fn published_testimonials(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
    ) -> AppResult<Connection<Cursor<DateTime<Utc>>, Testimonial>> {
        let request = request_context(ctx)?;
        // A widget shows its newest `maxTestimonials`: its key reads that first page only
        // (an inactive widget's key does not authenticate).
        let widget = match request.principal {
            crate::auth::Principal::Widget { .. } => Some(
                request
                    .db
                    .query(|conn, scope| ops::widget_config(conn, scope).scope_boxed())
                    .await?,
            ),
            _ => None,
        };
        let page = match &widget {
            None => PageRequest::either(first, after, last, before)?,
            Some(config) => {
                let Some(shown) = config.as_ref().map(|c| c.max_testimonials) else {
                    return Ok(Connection::new(false, false));
                };
                PageRequest::either(
                    Some(first.unwrap_or(shown).clamp(1, shown)),
                    None,
                    None,
                    None,
                )?
            }
        };
        let rows = request
            .db
            .query(|conn, scope| {
                let page = &page;
                async move { ops::published_testimonials(conn, scope, page).await }.scope_boxed()
            })
            .await?;
        let rows = match (&widget, rows) {
            // No next page for a widget: it shows what the first page holds.
            (Some(_), mut rows) => {
                rows.truncate((page.limit() - 1) as usize);
                rows
            }
            (None, rows) => rows,
        };
        Ok(page.into_connection(
            rows,
            |t| Cursor {
                key: t.published_at.unwrap_or(t.created_at),
                id: t.id,
            },
            Testimonial,
        ))
    }

    /// Email sequences, optionally in one status, newest first.
    #[graphql(guard = "Access::Read")]
    async fn email_sequences(
        &self,
        ctx: &Context<'_>,
        status: Option<SequenceStatus>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
    ) -> AppResult<Connection<Cursor<DateTime<Utc>>, EmailSequence>> {
        created_page(
            ctx,
            PageRequest::either(first, after, last, before)?,
            |conn, scope, page| {
                async move { ops::list_email_sequences(conn, scope, status, &page).await }
                    .scope_boxed()
            },
            EmailSequence::from,
        )
        .await
    }

    /// The steps of a segment's email sequence, in order.
    #[graphql(guard = "Access::Read")]
    async fn email_sequence_steps(
        &self,
        ctx: &Context<'_>,
        segment: SequenceSegment,
    ) -> AppResult<Vec<SequenceStep>> {
        let steps = request_context(ctx)?
            .db
            .query(move |conn, scope| ops::sequence_steps(conn, scope, segment).scope_boxed())
            .await?;
        Ok(steps.into_iter().map(SequenceStep::from).collect())
    }

    /// Demo sessions, newest first.
    #[graphql(guard = "Access::Read")]
    async fn demo_sessions(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
    ) -> AppResult<Connection<Cursor<DateTime<Utc>>, DemoSession>> {
        created_page(
            ctx,
            PageRequest::either(first, after, last, before)?,
            |conn, scope, page| {
                async move { ops::list_demo_sessions(conn, scope, &page).await }.scope_boxed()
            },
            DemoSession::from,
        )
        .await
    }

    /// The tenant's testimonial givers, newest first.
    #[graphql(guard = "Access::Read")]
    async fn contacts(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
    ) -> AppResult<Connection<Cursor<DateTime<Utc>>, Contact>> {
        created_page(
            ctx,
            PageRequest::either(first, after, last, before)?,
            |conn, scope, page| {
                async move { super::audience::list_contacts(conn, scope, &page).await }
                    .scope_boxed()
            },
            Contact::from,
        )
        .await
    }

    /// The tenant's testimonials in every status (or one), newest first.
    #[graphql(guard = "Access::Read")]
    #[allow(clippy::too_many_arguments)]
    async fn testimonials(
        &self,
        ctx: &Context<'_>,
        status: Option<TestimonialStatus>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
    ) -> AppResult<Connection<Cursor<DateTime<Utc>>, Testimonial>> {
        created_page(
            ctx,
            PageRequest::either(first, after, last, before)?,
            |conn, scope, page| {
                async move { super::audience::list_testimonials(conn, scope, status, &page).await }
                    .scope_boxed()
            },
            Testimonial,
        )
        .await
    }

    /// The testimonial widget's settings, when the tenant has a widget; its key for
    /// admins only.
    #[graphql(guard = "Access::Read")]
    async fn widget_config(&self, ctx: &Context<'_>) -> AppResult<Option<WidgetConfig>> {
        let context = request_context(ctx)?;
        let admin = Access::Admin.allows(&context.principal);
        let config = context
            .db
            .query(|conn, scope| ops::widget_config(conn, scope).scope_boxed())
            .await?;
        Ok(config.map(|c| {
            let mut config = WidgetConfig::from(c);
            if !admin {
                config.api_key = None;
            }
            config
        }))
    }
}

/// The testimonial widget's settings to change; what is left out keeps its value (or, for
/// a new widget, its default: the default theme, no domain restriction, 10 testimonials,
/// active).
#[derive(InputObject)]
pub struct ConfigureWidgetInput {
    /// A JSON object (at most 8 KiB): colours, layout, options.
    pub theme: Option<Json<serde_json::Value>>,
    /// Host names the widget may be embedded on (at most 50; `*.example.com` allows the
    /// subdomains of example.com); empty: anywhere.
    pub allowed_domains: Option<Vec<String>>,
    /// 1 to 100.
    pub max_testimonials: Option<i32>,
    pub is_active: Option<bool>,
    /// A new widget key; the old one stops working at once.
    #[graphql(default)]
    pub rotate_key: bool,
}

crate::payload!(ConfigureWidgetPayload { widget_config: WidgetConfig } from model::WidgetConfig);

#[derive(InputObject)]
pub struct StartEmailSequenceInput {
    pub recipient_email: String,
    pub segment: SequenceSegment,
    /// One of the tenant's contacts, when the recipient is one.
    pub contact_id: Option<ID>,
}

/// One step of a segment's email sequence.
#[derive(SimpleObject)]
pub struct SequenceStep {
    pub step_number: i32,
    /// Hours after the previous step (after the start, for the first).
    pub delay_hours: i32,
    /// The outreach email template it sends.
    pub template_id: ID,
}

impl From<(i32, i32, uuid::Uuid)> for SequenceStep {
    fn from((step_number, delay_hours, template): (i32, i32, uuid::Uuid)) -> Self {
        SequenceStep {
            step_number,
            delay_hours,
            template_id: ID(template.to_string()),
        }
    }
}

#[derive(InputObject)]
pub struct SequenceStepInput {
    pub delay_hours: i32,
    pub template_id: ID,
}

#[derive(InputObject)]
pub struct SaveEmailSequenceStepsInput {
    pub segment: SequenceSegment,
    /// 1 to 20 steps, in order.
    pub steps: Vec<SequenceStepInput>,
}

crate::payload!(SaveEmailSequenceStepsPayload { steps: Vec<SequenceStep> } from Vec<SequenceStep>);

#[derive(InputObject)]
pub struct EmailSequenceIdInput {
    pub id: ID,
}

crate::payload!(EmailSequencePayload { email_sequence: EmailSequence } from model::EmailSequence);

crate::payload!(CleanupExpiredDemoSessionsPayload { deleted_count: i32 } from i32);

#[derive(Default)]
pub struct AutomationsMutation;

impl AutomationsMutation {
    async fn change_sequence(
        &self,
        ctx: &Context<'_>,
        input: EmailSequenceIdInput,
        change: ops::SequenceChange,
    ) -> AppResult<EmailSequencePayload> {
        let id = parse_id(&input.id, &["input", "id"])?;
        write_payload(ctx, |conn, scope| {
            ops::change_email_sequence(conn, scope, id, change).scope_boxed()
        })
        .await
    }
}

#[Object]
impl AutomationsMutation {
    /// Creates the tenant's testimonial widget, with its publishable `wgt_` key, or
    /// changes its settings (admins).
    #[graphql(guard = "Access::Admin")]
    async fn configure_widget(
        &self,
        ctx: &Context<'_>,
        input: ConfigureWidgetInput,
    ) -> AppResult<ConfigureWidgetPayload> {
        let fields = model::WidgetFields {
            theme: input.theme.map(|t| t.0),
            allowed_domains: input
                .allowed_domains
                .map(|d| d.into_iter().map(Some).collect()),
            max_testimonials: input.max_testimonials,
            is_active: input.is_active,
        };
        let rotate_key = input.rotate_key;
        write_payload(ctx, |conn, scope| {
            ops::configure_widget(conn, scope, fields, rotate_key).scope_boxed()
        })
        .await
    }

    /// Replaces a segment's email sequence (admins): each step an outreach email template
    /// sent its delay after the previous one.
    #[graphql(guard = "Access::Admin")]
    async fn save_email_sequence_steps(
        &self,
        ctx: &Context<'_>,
        input: SaveEmailSequenceStepsInput,
    ) -> AppResult<SaveEmailSequenceStepsPayload> {
        let mut steps = Vec::with_capacity(input.steps.len());
        for (i, step) in input.steps.iter().enumerate() {
            let field = ["input", "steps", &i.to_string(), "templateId"];
            steps.push((step.delay_hours, parse_id(&step.template_id, &field)?));
        }
        let segment = input.segment;
        write_payload(ctx, move |conn, scope| {
            async move {
                let saved = ops::save_sequence_steps(conn, scope, segment, &steps).await?;
                Ok(saved.into_iter().map(SequenceStep::from).collect())
            }
            .scope_boxed()
        })
        .await
    }

    /// Starts a re-engagement email sequence (active, its first step due its delay after
    /// now); a recipient follows at most one open sequence per segment.
    #[graphql(guard = "Access::Ingest")]
    async fn start_email_sequence(
        &self,
        ctx: &Context<'_>,
        input: StartEmailSequenceInput,
    ) -> AppResult<EmailSequencePayload> {
        let contact_id = parse_optional_id(&input.contact_id, &["input", "contactId"])?;
        let (email, segment) = (input.recipient_email, input.segment);
        write_payload(ctx, |conn, scope| {
            ops::start_email_sequence(conn, scope, &email, segment, contact_id).scope_boxed()
        })
        .await
    }

    /// Pauses an active sequence: nothing more is sent until it is resumed.
    #[graphql(guard = "Access::Admin")]
    async fn pause_email_sequence(
        &self,
        ctx: &Context<'_>,
        input: EmailSequenceIdInput,
    ) -> AppResult<EmailSequencePayload> {
        self.change_sequence(ctx, input, ops::SequenceChange::Pause)
            .await
    }

    /// Resumes a paused sequence: its next step is due now.
    #[graphql(guard = "Access::Admin")]
    async fn resume_email_sequence(
        &self,
        ctx: &Context<'_>,
        input: EmailSequenceIdInput,
    ) -> AppResult<EmailSequencePayload> {
        self.change_sequence(ctx, input, ops::SequenceChange::Resume)
            .await
    }

    /// Deletes the demo sessions past their 24 hours now (the scheduler's retention does
    /// this daily); how many (admins).
    #[graphql(guard = "Access::Admin")]
    async fn cleanup_expired_demo_sessions(
        &self,
        ctx: &Context<'_>,
    ) -> AppResult<CleanupExpiredDemoSessionsPayload> {
        write_payload(ctx, |conn, scope| {
            async move {
                let deleted = super::demo::purge_expired(conn, scope, Utc::now()).await?;
                Ok(deleted as i32)
            }
            .scope_boxed()
        })
        .await
    }

    /// Creates a testimonial giver (no `id`) or changes one (admin and partner keys).
    #[graphql(guard = "Access::Ingest")]
    async fn save_contact(
        &self,
        ctx: &Context<'_>,
        input: SaveContactInput,
    ) -> AppResult<ContactPayload> {
        let id = parse_optional_id(&input.id, &["input", "id"])?;
        let fields = super::audience::ContactFields {
            name: input.name,
            email: input.email,
            company: input.company,
            job_title: input.job_title,
            linkedin_url: input.linkedin_url,
            customer_id: parse_optional_id(&input.customer_id, &["input", "customerId"])?,
        };
        write_payload(ctx, |conn, scope| {
            super::audience::save_contact(conn, scope, id, fields).scope_boxed()
        })
        .await
    }

    /// Records a contact's explicit consent to share their testimonials on LinkedIn
    /// (stamped when given) or its withdrawal.
    #[graphql(guard = "Access::Ingest")]
    async fn set_linkedin_consent(
        &self,
        ctx: &Context<'_>,
        input: SetLinkedinConsentInput,
    ) -> AppResult<ContactPayload> {
        let id = parse_id(&input.contact_id, &["input", "contactId"])?;
        write_payload(ctx, |conn, scope| {
            super::audience::set_linkedin_consent(conn, scope, id, input.consent).scope_boxed()
        })
        .await
    }

    /// A contact's testimonial, pending review (admin and partner keys).
    #[graphql(guard = "Access::Ingest")]
    async fn create_testimonial(
        &self,
        ctx: &Context<'_>,
        input: CreateTestimonialInput,
    ) -> AppResult<TestimonialPayload> {
        let contact = parse_id(&input.contact_id, &["input", "contactId"])?;
        let (content, rating, video) = (input.content, input.rating, input.video_url);
        write_payload(ctx, move |conn, scope| {
            async move {
                super::audience::create_testimonial(conn, scope, contact, &content, rating, video)
                    .await
            }
            .scope_boxed()
        })
        .await
    }

    /// Publishes or rejects a testimonial pending review (admins).
    #[graphql(guard = "Access::Admin")]
    async fn moderate_testimonial(
        &self,
        ctx: &Context<'_>,
        input: ModerateTestimonialInput,
    ) -> AppResult<TestimonialPayload> {
        let id = parse_id(&input.id, &["input", "id"])?;
        let publish = input.decision == ModerationDecision::Publish;
        write_payload(ctx, |conn, scope| {
            super::audience::moderate_testimonial(conn, scope, id, publish).scope_boxed()
        })
        .await
    }

    /// Marks a published testimonial shared on LinkedIn; its contact must have consented
    /// (admins).
    #[graphql(guard = "Access::Admin")]
    async fn share_testimonial_on_linkedin(
        &self,
        ctx: &Context<'_>,
        input: TestimonialIdInput,
    ) -> AppResult<TestimonialPayload> {
        let id = parse_id(&input.id, &["input", "id"])?;
        write_payload(ctx, |conn, scope| {
            super::audience::share_on_linkedin(conn, scope, id).scope_boxed()
        })
        .await
    }

    /// Cancels an active or paused sequence, for good.
    #[graphql(guard = "Access::Admin")]
    async fn cancel_email_sequence(
        &self,
        ctx: &Context<'_>,
        input: EmailSequenceIdInput,
    ) -> AppResult<EmailSequencePayload> {
        self.change_sequence(ctx, input, ops::SequenceChange::Cancel)
            .await
    }
}
