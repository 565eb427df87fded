use async_graphql::connection::Connection;
use async_graphql::{Context, InputObject, Json, Object, SimpleObject, ID};
use chrono::{DateTime, Utc};
use scoped_futures::ScopedFutureExt;
use serde_json::Value;

use super::model::{
    self, CommunicationTemplateFields, CommunicationType, EmailTemplateFields, TemplateLanguage,
    TemplateType,
};
use super::ops::{self, Content, MessageFilter, Outgoing};
use super::templates::Rendered;
use crate::auth::Access;
use crate::domain::comms::model::{Channel, MessageStatus};
use crate::domain::{payload, write_payload};
use crate::error::AppResult;
use crate::graphql::connection::{bounded, created_page, Cursor, PageRequest};
use crate::graphql::context::request_context;
use crate::graphql::scalars::{parse_id, parse_optional_id};

fn id(uuid: uuid::Uuid) -> ID {
    ID(uuid.to_string())
}

/// A club communication template (monthly status, expiration warning, …) of one channel.
#[derive(SimpleObject)]
pub struct CommunicationTemplate {
    pub id: ID,
    pub template_type: TemplateType,
    pub channel: Channel,
    pub name: String,
    pub subject: Option<String>,
    pub html_content: Option<String>,
    pub text_content: String,
    /// The variables the template may use.
    pub variables: Vec<String>,
    pub is_active: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<model::CommunicationTemplate> for CommunicationTemplate {
    fn from(t: model::CommunicationTemplate) -> Self {
        let (variables, _) = t.source();
        CommunicationTemplate {
            id: id(t.id),
            template_type: t.template_type,
            channel: t.channel,
            name: t.name,
            subject: t.subject,
            html_content: t.html_content,
            text_content: t.text_content,
            variables,
            is_active: t.is_active,
            created_at: t.created_at,
            updated_at: t.updated_at,
        }
    }
}

/// An outreach email template (seed 001).
#[derive(SimpleObject)]
pub struct EmailTemplate {
    pub id: ID,
    pub name: String,
    pub description: Option<String>,
    pub subject: String,
    pub html_content: String,
    pub plain_content: Option<String>,
    /// en or fr.
    pub language: String,
    pub category: Option<String>,
    pub variables: Vec<String>,
    pub is_active: bool,
    pub usage_count: i32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<model::EmailTemplate> for EmailTemplate {
    fn from(t: model::EmailTemplate) -> Self {
        let (variables, _) = t.source();
        EmailTemplate {
            id: id(t.id),
            name: t.name,
            description: t.description,
            subject: t.subject,
            html_content: t.html_content,
            plain_content: t.plain_content,
            language: t.language.as_str().to_owned(),
            category: t.category,
            variables,
            is_active: t.is_active,
            usage_count: t.usage_count,
            created_at: t.created_at,
            updated_at: t.updated_at,
        }
    }
}

/// One outgoing (or received) message and where its delivery stands.
#[derive(SimpleObject)]
pub struct Message {
    pub id: ID,
    pub customer_id: Option<ID>,
    pub template_id: Option<ID>,
    pub email_template_id: Option<ID>,
    pub channel: Channel,
    /// outbound or inbound.
    pub direction: String,
    pub communication_type: CommunicationType,
    /// Who carried it: smtp, sendgrid, resend, twilio, or local (kept in this database).
    pub provider: Option<String>,
    pub recipient: String,
    pub subject: Option<String>,
    /// The rendered text body.
    pub content: Option<String>,
    /// The rendered HTML body (email).
    pub html_content: Option<String>,
    pub status: MessageStatus,
    pub provider_message_id: Option<String>,
    /// Why it was not sent: not_configured, suppressed, rejected, unauthorized,
    /// invalid_recipient, provider_unsupported, retries_exhausted, outcome_unknown, or a
    /// final delivery status (bounced, failed, complained).
    pub failure_code: Option<String>,
    pub error_message: Option<String>,
    pub attempts: i32,
    pub campaign_recipient_id: Option<ID>,
    pub sent_at: Option<DateTime<Utc>>,
    pub delivered_at: Option<DateTime<Utc>>,
    pub opened_at: Option<DateTime<Utc>>,
    pub clicked_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<model::Message> for Message {
    fn from(m: model::Message) -> Self {
        Message {
            id: id(m.id),
            customer_id: m.customer_id.map(id),
            template_id: m.template_id.map(id),
            email_template_id: m.email_template_id.map(id),
            channel: m.channel,
            direction: m.direction,
            communication_type: m.communication_type,
            provider: m.provider,
            recipient: m.recipient,
            subject: m.subject,
            content: m.content,
            html_content: m.html_content,
            status: m.status,
            provider_message_id: m.provider_message_id,
            failure_code: m.failure_code,
            error_message: m.error_message,
            attempts: m.attempts,
            campaign_recipient_id: m.campaign_recipient_id.map(id),
            sent_at: m.sent_at,
            delivered_at: m.delivered_at,
            opened_at: m.opened_at,
            clicked_at: m.clicked_at,
            created_at: m.created_at,
            updated_at: m.updated_at,
        }
    }
}

/// One event of an email as its provider reported it.
#[derive(SimpleObject)]
pub struct EmailEvent {
    pub id: ID,
    pub message_id: Option<ID>,
    pub sequence_id: Option<ID>,
    pub recipient_email: String,
    /// sequence or notification.
    pub email_type: String,
    /// sent, delivered, opened, clicked, bounced or complained.
    pub status: String,
    pub provider_message_id: Option<String>,
    pub metadata: Json<Value>,
    pub occurred_at: DateTime<Utc>,
}

impl From<model::EmailEvent> for EmailEvent {
    fn from(e: model::EmailEvent) -> Self {
        EmailEvent {
            id: id(e.id),
            message_id: e.communication_log_id.map(id),
            sequence_id: e.sequence_id.map(id),
            recipient_email: e.recipient_email,
            email_type: e.email_type,
            status: e.status,
            provider_message_id: e.provider_message_id,
            metadata: Json(e.metadata),
            occurred_at: e.occurred_at,
        }
    }
}

/// What a template renders to.
#[derive(SimpleObject)]
pub struct RenderedTemplate {
    pub subject: Option<String>,
    pub text: Option<String>,
    pub html: Option<String>,
}

impl From<Rendered> for RenderedTemplate {
    fn from(r: Rendered) -> Self {
        RenderedTemplate {
            subject: r.subject,
            text: r.text,
            html: r.html,
        }
    }
}

crate::payload!(TemplatePreview { rendered: RenderedTemplate } from Rendered);

#[derive(Default)]
pub struct MessagesQuery;

#[Object]
impl MessagesQuery {
    /// The club communication templates, optionally of one channel or type.
    #[graphql(guard = "Access::Read")]
    async fn communication_templates(
        &self,
        ctx: &Context<'_>,
        channel: Option<Channel>,
        template_type: Option<TemplateType>,
    ) -> AppResult<Vec<CommunicationTemplate>> {
        let rows = request_context(ctx)?
            .db
            .query(move |conn, scope| {
                ops::communication_templates(conn, scope, channel, template_type).scope_boxed()
            })
            .await?;
        Ok(bounded(rows)
            .into_iter()
            .map(CommunicationTemplate::from)
            .collect())
    }

    /// The outreach email templates.
    #[graphql(guard = "Access::Read")]
    async fn email_templates(&self, ctx: &Context<'_>) -> AppResult<Vec<EmailTemplate>> {
        let rows = request_context(ctx)?
            .db
            .query(|conn, scope| ops::email_templates(conn, scope).scope_boxed())
            .await?;
        Ok(bounded(rows).into_iter().map(EmailTemplate::from).collect())
    }

    /// What a template (of either kind) renders to with `variables`; nothing is sent.
    #[graphql(guard = "Access::Read")]
    async fn preview_template(
        &self,
        ctx: &Context<'_>,
        template_id: ID,
        variables: Option<Json<Value>>,
    ) -> AppResult<TemplatePreview> {
        let template = parse_id(&template_id, &["templateId"])?;
        let variables = variables
            .map(|v| v.0)
            .unwrap_or_else(|| serde_json::json!({}));
        let result = request_context(ctx)?
            .db
            .query(move |conn, scope| {
                async move {
                    Ok::<_, crate::error::AppError>(
                        ops::preview(conn, scope, template, &variables).await,
                    )
                }
                .scope_boxed()
            })
            .await?;
        payload(result)
    }

    #[graphql(guard = "Access::Read")]
    async fn message(&self, ctx: &Context<'_>, id: ID) -> AppResult<Option<Message>> {
        let message = parse_id(&id, &["id"])?;
        let row = request_context(ctx)?
            .db
            .query(move |conn, scope| ops::message(conn, scope, message).scope_boxed())
            .await?;
        Ok(row.map(Message::from))
    }

    /// The message log across customers, newest first.
    #[graphql(guard = "Access::Read")]
    #[allow(clippy::too_many_arguments)]
    async fn messages(
        &self,
        ctx: &Context<'_>,
        channel: Option<Channel>,
        status: Option<MessageStatus>,
        customer_id: Option<ID>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
    ) -> AppResult<Connection<Cursor<DateTime<Utc>>, Message>> {
        let filter = MessageFilter {
            channel,
            status,
            customer_id: parse_optional_id(&customer_id, &["customerId"])?,
        };
        created_page(
            ctx,
            PageRequest::either(first, after, last, before)?,
            |conn, scope, page| {
                async move { ops::messages(conn, scope, &filter, &page).await }.scope_boxed()
            },
            Message::from,
        )
        .await
    }

    /// The email events providers reported, of one message or of all, oldest first (at
    /// most `first`, 50 by default, 100 at most).
    #[graphql(guard = "Access::Read")]
    async fn email_events(
        &self,
        ctx: &Context<'_>,
        message_id: Option<ID>,
        first: Option<i32>,
    ) -> AppResult<Vec<EmailEvent>> {
        let message = parse_optional_id(&message_id, &["messageId"])?;
        let limit = i64::from(first.unwrap_or(50).clamp(0, 100));
        let rows = request_context(ctx)?
            .db
            .query(move |conn, scope| {
                ops::email_events_of(conn, scope, message, limit).scope_boxed()
            })
            .await?;
        Ok(rows.into_iter().map(EmailEvent::from).collect())
    }
}

#[derive(InputObject)]
pub struct SaveCommunicationTemplateInput {
    /// The template to replace; without it a template is created.
    pub id: Option<ID>,
    pub template_type: TemplateType,
    pub channel: Channel,
    pub name: String,
    /// Email only.
    pub subject: Option<String>,
    /// Email only; HTML-escaped where variables are inserted.
    pub html_content: Option<String>,
    pub text_content: String,
    /// The variables the template may use (names).
    #[graphql(default)]
    pub variables: Vec<String>,
    #[graphql(default = true)]
    pub is_active: bool,
}

crate::payload!(SaveCommunicationTemplatePayload {
    template: CommunicationTemplate
} from model::CommunicationTemplate);

#[derive(InputObject)]
pub struct SaveEmailTemplateInput {
    /// The template to replace; without it a template is created.
    pub id: Option<ID>,
    pub name: String,
    pub description: Option<String>,
    pub subject: String,
    pub html_content: String,
    pub plain_content: Option<String>,
    #[graphql(default_with = "TemplateLanguage::En")]
    pub language: TemplateLanguage,
    pub category: Option<String>,
    #[graphql(default)]
    pub variables: Vec<String>,
    #[graphql(default = true)]
    pub is_active: bool,
}

crate::payload!(SaveEmailTemplatePayload { template: EmailTemplate } from model::EmailTemplate);

/// A message to send: to a customer (their address or number on the channel) or to an
/// address, with a template and its variables or with its own subject and body.
#[derive(InputObject)]
pub struct SendMessageInput {
    pub channel: Channel,
    pub customer_id: Option<ID>,
    pub to: Option<String>,
    pub template_id: Option<ID>,
    pub variables: Option<Json<Value>>,
    pub subject: Option<String>,
    pub body: Option<String>,
    pub html: Option<String>,
    /// What the message is for (consent): by default the template's purpose, else
    /// MARKETING.
    pub communication_type: Option<CommunicationType>,
    pub idempotency_key: Option<String>,
}

crate::payload!(SendMessagePayload { message: Message } from Option<model::Message>);

#[derive(Default)]
pub struct MessagesMutation;

#[Object]
impl MessagesMutation {
    /// Creates or replaces a club communication template (admins); checked first.
    #[graphql(guard = "Access::Admin")]
    async fn save_communication_template(
        &self,
        ctx: &Context<'_>,
        input: SaveCommunicationTemplateInput,
    ) -> AppResult<SaveCommunicationTemplatePayload> {
        let id = parse_optional_id(&input.id, &["input", "id"])?;
        let fields = CommunicationTemplateFields {
            template_type: input.template_type,
            channel: input.channel,
            name: input.name,
            subject: input.subject,
            html_content: input.html_content,
            text_content: input.text_content,
            variables: serde_json::json!(input.variables),
            is_active: input.is_active,
        };
        write_payload(ctx, |conn, scope| {
            ops::save_communication_template(conn, scope, id, fields).scope_boxed()
        })
        .await
    }

    /// Creates or replaces an outreach email template (admins); checked first.
    #[graphql(guard = "Access::Admin")]
    async fn save_email_template(
        &self,
        ctx: &Context<'_>,
        input: SaveEmailTemplateInput,
    ) -> AppResult<SaveEmailTemplatePayload> {
        let id = parse_optional_id(&input.id, &["input", "id"])?;
        let fields = EmailTemplateFields {
            name: input.name,
            description: input.description,
            subject: input.subject,
            html_content: input.html_content,
            plain_content: input.plain_content,
            language: input.language,
            category: input.category,
            variables: serde_json::json!(input.variables),
            is_active: input.is_active,
        };
        write_payload(ctx, |conn, scope| {
            ops::save_email_template(conn, scope, id, fields).scope_boxed()
        })
        .await
    }

    /// Queues a message (admins and partners): it is rendered now and sent by the job
    /// runner through the tenant's enabled configuration of the channel, once per
    /// idempotency key.
    #[graphql(guard = "Access::Ingest")]
    async fn send_message(
        &self,
        ctx: &Context<'_>,
        input: SendMessageInput,
    ) -> AppResult<SendMessagePayload> {
        let template = parse_optional_id(&input.template_id, &["input", "templateId"])?;
        let content = match template {
            Some(id) => Content::Template {
                id,
                variables: input
                    .variables
                    .map(|v| v.0)
                    .unwrap_or_else(|| serde_json::json!({})),
            },
            None => Content::Written {
                subject: input.subject,
                text: input.body.unwrap_or_default(),
                html: input.html,
            },
        };
        let outgoing = Outgoing {
            channel: input.channel,
            customer_id: parse_optional_id(&input.customer_id, &["input", "customerId"])?,
            to: input.to,
            content,
            communication_type: input.communication_type,
            idempotency_key: input.idempotency_key,
            campaign_recipient_id: None,
            outreach_email_id: None,
            email_sequence_id: None,
        };
        write_payload(ctx, |conn, scope| {
            async move {
                let key = outgoing.idempotency_key.clone();
                let id = crate::domain::idempotency::once(
                    conn,
                    scope,
                    key.as_deref(),
                    "sendMessage",
                    &outgoing,
                    async |conn| ops::deliver(conn, scope, outgoing.clone()).await,
                )
                .await?;
                Ok(ops::message(conn, scope, id).await?)
            }
            .scope_boxed()
        })
        .await
    }
}
