//! Templates, queueing, sending and status. `deliver` is the one way a message leaves:
//! it renders the message and writes its `communication_log` row (`queued`) and its
//! delivery job in the caller's transaction. The job runner ([`run_due`]) checks consent
//! at send time, picks the tenant's enabled configuration of the channel, and sends; the
//! providers' status hooks ([`apply_reports`]) move the message forward only.
//!
//! At most one provider call per message: a job is claimed by one runner
//! (`FOR UPDATE SKIP LOCKED`), and before a provider is called the message is marked
//! (`sending_started_at`, committed). A job claimed again while that mark is set had a
//! runner stop between the call and the record of its answer: the message is then failed
//! as `outcome_unknown` rather than sent twice — except through providers that recognise a
//! repeat themselves (Resend's `Idempotency-Key`), where it is sent again safely.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use futures_util::StreamExt;
use scoped_futures::ScopedFutureExt;
use serde_json::{json, Value};
use uuid::Uuid;

use super::hooks::{MessageRef, Report};
use super::model::{
    CommunicationTemplate, CommunicationTemplateFields, CommunicationType, EmailEvent,
    EmailTemplate, EmailTemplateFields, Message, NewMessage, TemplateType,
};
use super::providers::{Envelope, Outcome, Providers, Route};
use super::templates::{self, Fields, Rendered, Source};
use crate::db::page::PageRequest;
use crate::db::schema::{
    channel_configurations, communication_log, communication_preferences, communication_templates,
    customers, email_events, email_templates, queue_jobs, tenants,
};
use crate::db::{Tenant, TenantDb};
use crate::domain::campaigns::model::{OutreachAction, RecipientStatus};
use crate::domain::comms::model::{Channel, ChannelProvider, MessageStatus};
use crate::domain::customers::ops::valid_email;
use crate::domain::{
    check_required_text, check_text, events, user_error, OpError, OpResult, UserError,
    UserErrorCode,
};
use crate::error::{AppError, AppResult};
use crate::secrets::SecretKey;

// ---- templates ----------------------------------------------------------------------------

/// Inserts a template's `fields` into table module `t`, or updates the tenant's row `id`
/// (`NOT_FOUND` on `input.id` when it has none); returns the row as `$row`.
macro_rules! save_template {
    ($conn:expr, $scope:expr, $t:ident, $id:expr, $fields:expr, $row:ty) => {
        match $id {
            None => {
                diesel::insert_into($t::table)
                    .values(($t::tenant_id.eq($scope.id()), $fields))
                    .returning(<$row>::as_returning())
                    .get_result($conn)
                    .await?
            }
            Some(id) => diesel::update(
                $t::table
                    .filter($t::tenant_id.eq($scope.id()))
                    .filter($t::id.eq(id)),
            )
            .set($fields)
            .returning(<$row>::as_returning())
            .get_result($conn)
            .await
            .optional()?
            .ok_or_else(|| {
                user_error(
                    UserErrorCode::NotFound,
                    &["input", "id"],
                    "no such template",
                )
            })?,
        }
    };
}

const COMMUNICATION_FIELDS: Fields = Fields {
    subject: "subject",
    text: "textContent",
    html: "htmlContent",
};
const EMAIL_FIELDS: Fields = Fields {
    subject: "subject",
    text: "plainContent",
    html: "htmlContent",
};

fn declared(variables: &Value) -> Vec<String> {
    variables
        .as_array()
        .map(|names| {
            names
                .iter()
                .filter_map(|n| n.as_str().or_else(|| n["name"].as_str()))
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

impl CommunicationTemplate {
    pub fn source(&self) -> (Vec<String>, [Option<&str>; 3]) {
        (
            declared(&self.variables),
            [
                self.subject.as_deref(),
                Some(self.text_content.as_str()),
                self.html_content.as_deref(),
            ],
        )
    }
}

impl EmailTemplate {
    pub fn source(&self) -> (Vec<String>, [Option<&str>; 3]) {
        (
            declared(&self.variables),
            [
                Some(self.subject.as_str()),
                self.plain_content.as_deref(),
                Some(self.html_content.as_str()),
            ],
        )
    }
}

fn check_source(parts: [Option<&str>; 3], variables: &[String], fields: Fields) -> OpResult<()> {
    let [subject, text, html] = parts;
    templates::check(
        &Source {
            subject,
            text,
            html,
            variables,
        },
        fields,
    )
    .map_err(OpError::User)
}

pub async fn communication_templates(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
    channel: Option<Channel>,
    template_type: Option<TemplateType>,
) -> QueryResult<Vec<CommunicationTemplate>> {
    use communication_templates as t;
    let mut query = t::table
        .filter(t::tenant_id.eq(scope.id()))
        .select(CommunicationTemplate::as_select())
        .order((t::template_type, t::channel))
        .into_boxed();
    if let Some(channel) = channel {
        query = query.filter(t::channel.eq(channel));
    }
    if let Some(kind) = template_type {
        query = query.filter(t::template_type.eq(kind));
    }
    query.load(conn).await
}

pub async fn email_templates(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
) -> QueryResult<Vec<EmailTemplate>> {
    use email_templates as t;
    t::table
        .filter(t::tenant_id.eq(scope.id()))
        .select(EmailTemplate::as_select())
        .order((t::name, t::id))
        .load(conn)
        .await
}

/// Creates a club communication template, or replaces the one `id` names. Checked first:
/// syntax, declared variables, sizes; SMS and WhatsApp templates have no subject or HTML.
pub async fn save_communication_template(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
    id: Option<Uuid>,
    fields: CommunicationTemplateFields,
) -> OpResult<CommunicationTemplate> {
    use communication_templates as t;
    check_required_text("name", &fields.name, 200)?;
    if fields.channel == Channel::Phone {
        return Err(user_error(
            UserErrorCode::Invalid,
            &["input", "channel"],
            "templates are for email, SMS and WhatsApp",
        ));
    }
    if fields.channel != Channel::Email
        && (fields.subject.is_some() || fields.html_content.is_some())
    {
        return Err(user_error(
            UserErrorCode::Invalid,
            &["input", "htmlContent"],
            "only email templates have a subject and an HTML body",
        ));
    }
    let variables = declared(&fields.variables);
    check_source(
        [
            fields.subject.as_deref(),
            Some(&fields.text_content),
            fields.html_content.as_deref(),
        ],
        &variables,
        COMMUNICATION_FIELDS,
    )?;
    let saved = save_template!(conn, scope, t, id, fields, CommunicationTemplate);
    events::record(
        conn,
        scope,
        "template.saved",
        saved.id,
        json!({ "templateType": saved.template_type, "channel": saved.channel }),
    )
    .await?;
    Ok(saved)
}

/// Creates an outreach email template, or replaces the one `id` names (checked like
/// [`save_communication_template`]).
pub async fn save_email_template(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
    id: Option<Uuid>,
    fields: EmailTemplateFields,
) -> OpResult<EmailTemplate> {
    use email_templates as t;
    check_required_text("name", &fields.name, 200)?;
    check_text("description", fields.description.as_deref(), 2000)?;
    check_text("category", fields.category.as_deref(), 100)?;
    let variables = declared(&fields.variables);
    check_source(
        [
            Some(&fields.subject),
            fields.plain_content.as_deref(),
            Some(&fields.html_content),
        ],
        &variables,
        EMAIL_FIELDS,
    )?;
    let saved = save_template!(conn, scope, t, id, fields, EmailTemplate);
    events::record(
        conn,
        scope,
        "template.saved",
        saved.id,
        json!({ "kind": "email" }),
    )
    .await?;
    Ok(saved)
}

/// A template of either kind, as `deliver` and `previewTemplate` use it.
pub enum AnyTemplate {
    Communication(CommunicationTemplate),
    Email(EmailTemplate),
}

impl AnyTemplate {
    fn render(&self, variables: &Value) -> Result<Rendered, UserError> {
        let ((declared, [subject, text, html]), fields) = match self {
            AnyTemplate::Communication(t) => (t.source(), COMMUNICATION_FIELDS),
            AnyTemplate::Email(t) => (t.source(), EMAIL_FIELDS),
        };
        templates::render(
            &Source {
                subject,
                text,
                html,
                variables: &declared,
            },
            fields,
            variables,
        )
    }
}

/// The tenant's template `id`, of either kind (`field` names the input for the error).
pub async fn any_template(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
    id: Uuid,
    field: &[&str],
) -> OpResult<AnyTemplate> {
    let communication = communication_templates::table
        .filter(communication_templates::tenant_id.eq(scope.id()))
        .filter(communication_templates::id.eq(id))
        .select(CommunicationTemplate::as_select())
        .first(conn)
        .await
        .optional()?;
    if let Some(t) = communication {
        return Ok(AnyTemplate::Communication(t));
    }
    let email = email_templates::table
        .filter(email_templates::tenant_id.eq(scope.id()))
        .filter(email_templates::id.eq(id))
        .select(EmailTemplate::as_select())
        .first(conn)
        .await
        .optional()?;
    email
        .map(AnyTemplate::Email)
        .ok_or_else(|| user_error(UserErrorCode::NotFound, field, "no such template"))
}

/// What template `id` renders to with `variables` (nothing is written).
pub async fn preview(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
    id: Uuid,
    variables: &Value,
) -> OpResult<Rendered> {
    let template = any_template(conn, scope, id, &["templateId"]).await?;
    template.render(variables).map_err(OpError::User)
}

// ---- queueing -------------------------------------------------------------------------------

/// What a message says: a template and its variables, or its own text.
#[derive(Debug, Clone, serde::Serialize)]
pub enum Content {
    Template {
        id: Uuid,
        variables: Value,
    },
    Written {
        subject: Option<String>,
        text: String,
        html: Option<String>,
    },
}

/// A message to queue ([`deliver`]).
#[derive(Debug, Clone, serde::Serialize)]
pub struct Outgoing {
    pub channel: Channel,
    /// The customer it is for (their address or number is used unless `to` is given).
    pub customer_id: Option<Uuid>,
    pub to: Option<String>,
    pub content: Content,
    /// What it is for (consent); by default the template's purpose, else marketing.
    pub communication_type: Option<CommunicationType>,
    pub idempotency_key: Option<String>,
    /// The campaign recipient or outreach email whose funnel it moves.
    pub campaign_recipient_id: Option<Uuid>,
    pub outreach_email_id: Option<Uuid>,
    /// The email sequence it is a step of.
    pub email_sequence_id: Option<Uuid>,
}

impl Outgoing {
    /// A message of `template` with `variables` on `channel`, to whom and why left to the
    /// caller (`Outgoing { to, idempotency_key, .. Outgoing::of_template(…) }`).
    pub fn of_template(channel: Channel, template: Uuid, variables: Value) -> Outgoing {
        Outgoing {
            channel,
            customer_id: None,
            to: None,
            content: Content::Template {
                id: template,
                variables,
            },
            communication_type: None,
            idempotency_key: None,
            campaign_recipient_id: None,
            outreach_email_id: None,
            email_sequence_id: None,
        }
    }
}

fn invalid(field: &str, message: &str) -> OpError {
    user_error(UserErrorCode::Invalid, &["input", field], message)
}

/// A phone number in E.164 form (`+` and 8 to 15 digits).
pub fn valid_phone(number: &str) -> bool {
    let digits = number.strip_prefix('+').unwrap_or("");
    (8..=15).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit())
}

/// Queues a message: renders it, writes its `communication_log` row (`queued`), its
/// delivery job and a `message.queued` event, in the caller's transaction. The same
/// idempotency key queues one message (the first one's id is returned again).
pub async fn deliver(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
    outgoing: Outgoing,
) -> OpResult<Uuid> {
    use communication_log as m;
    if outgoing.channel == Channel::Phone {
        return Err(invalid("channel", "messages go by email, SMS or WhatsApp"));
    }
    if let Some(key) = &outgoing.idempotency_key {
        if key.is_empty() || key.len() > 200 || key.contains('\0') {
            return Err(invalid(
                "idempotencyKey",
                "idempotencyKey must be 1-200 characters",
            ));
        }
        let existing: Option<Uuid> = m::table
            .filter(m::tenant_id.eq(scope.id()))
            .filter(m::idempotency_key.eq(key))
            .select(m::id)
            .first(conn)
            .await
            .optional()?;
        if let Some(id) = existing {
            return Ok(id);
        }
    }
    type CustomerFields = (
        Option<String>,
        Option<String>,
        Option<String>,
        Option<String>,
        i64,
    );
    let customer: Option<CustomerFields> = match outgoing.customer_id {
        None => None,
        Some(id) => Some(crate::tenant_row!(
            conn,
            scope,
            customers,
            id,
            (
                customers::email,
                customers::phone,
                customers::name,
                customers::first_name,
                customers::points_balance
            ),
            &["input", "customerId"],
            "no such customer"
        )?),
    };
    let to = match (&outgoing.to, &customer) {
        (Some(to), _) => to.trim().to_owned(),
        (None, Some((email, phone, ..))) => match outgoing.channel {
            Channel::Email => email.clone(),
            _ => phone.clone(),
        }
        .ok_or_else(|| invalid("customerId", "the customer has no address on this channel"))?,
        (None, None) => return Err(invalid("to", "give a customerId or a to address")),
    };
    let fits = match outgoing.channel {
        Channel::Email => valid_email(&to),
        _ => valid_phone(to.strip_prefix("whatsapp:").unwrap_or(&to)),
    };
    if !fits {
        return Err(invalid("to", "not an address of this channel"));
    }
    let (rendered, template_id, email_template_id, purpose) = match &outgoing.content {
        Content::Template { id, variables } => {
            if !variables.is_object() || variables.to_string().len() > 64 * 1024 {
                return Err(invalid(
                    "variables",
                    "variables must be a JSON object of at most 64 KiB",
                ));
            }
            let mut variables = variables.clone();
            if let Some((email, _, name, first_name, points)) = &customer {
                // The customer's own fields, for templates that declare `customer`.
                variables.as_object_mut().expect("an object").entry("customer").or_insert(
                    json!({ "email": email, "name": name, "firstName": first_name, "pointsBalance": points }),
                );
            }
            let template = any_template(conn, scope, *id, &["input", "templateId"]).await?;
            let (active, channel_fits, purpose) = match &template {
                AnyTemplate::Communication(t) => (
                    t.is_active,
                    t.channel == outgoing.channel,
                    t.template_type.communication_type(),
                ),
                AnyTemplate::Email(t) => (
                    t.is_active,
                    outgoing.channel == Channel::Email,
                    CommunicationType::Marketing,
                ),
            };
            if !active {
                return Err(invalid("templateId", "this template is not active"));
            }
            if !channel_fits {
                return Err(invalid(
                    "templateId",
                    "this template is for another channel",
                ));
            }
            let rendered = template.render(&variables).map_err(OpError::User)?;
            let (communication, email) = match &template {
                AnyTemplate::Communication(t) => (Some(t.id), None),
                AnyTemplate::Email(t) => (None, Some(t.id)),
            };
            (rendered, communication, email, purpose)
        }
        Content::Written {
            subject,
            text,
            html,
        } => {
            check_text("subject", subject.as_deref(), 998)?;
            check_required_text("body", text, 100_000)?;
            check_text("html", html.as_deref(), 500_000)?;
            let rendered = Rendered {
                subject: subject.clone(),
                text: Some(text.clone()),
                html: html.clone(),
            };
            (rendered, None, None, CommunicationType::Marketing)
        }
    };
    if outgoing.channel != Channel::Email && rendered.text.as_deref().unwrap_or("").is_empty() {
        return Err(invalid(
            "body",
            "an SMS or WhatsApp message needs a text body",
        ));
    }
    let message = NewMessage {
        customer_id: outgoing.customer_id,
        template_id,
        email_template_id,
        channel: outgoing.channel,
        communication_type: outgoing.communication_type.unwrap_or(purpose),
        recipient: to,
        subject: rendered
            .subject
            .filter(|_| outgoing.channel == Channel::Email),
        content: rendered.text,
        html_content: rendered.html.filter(|_| outgoing.channel == Channel::Email),
        idempotency_key: outgoing.idempotency_key,
        campaign_recipient_id: outgoing.campaign_recipient_id,
        outreach_email_id: outgoing.outreach_email_id,
        email_sequence_id: outgoing.email_sequence_id,
        metadata: json!({}),
    };
    let id: Uuid = diesel::insert_into(m::table)
        .values((m::tenant_id.eq(scope.id()), &message))
        .returning(m::id)
        .get_result(conn)
        .await?;
    if let Some(template) = email_template_id {
        diesel::update(
            email_templates::table
                .filter(email_templates::tenant_id.eq(scope.id()))
                .filter(email_templates::id.eq(template)),
        )
        .set(email_templates::usage_count.eq(email_templates::usage_count + 1))
        .execute(conn)
        .await?;
    }
    diesel::insert_into(queue_jobs::table)
        .values((
            queue_jobs::tenant_id.eq(scope.id()),
            queue_jobs::job_type.eq("message_delivery"),
            queue_jobs::payload.eq(json!({ "messageId": id })),
        ))
        .execute(conn)
        .await?;
    events::record(
        conn,
        scope,
        "message.queued",
        id,
        json!({ "channel": message.channel, "customerId": message.customer_id, "communicationType": message.communication_type }),
    )
    .await?;
    Ok(id)
}

// ---- reads --------------------------------------------------------------------------------

/// The tenant's message log, newest first, optionally on one channel, of one status or
/// one customer.
pub async fn messages(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
    filter: &MessageFilter,
    page: &PageRequest<DateTime<Utc>>,
) -> QueryResult<Vec<Message>> {
    use communication_log as m;
    let mut query = m::table
        .filter(m::tenant_id.eq(scope.id()))
        .select(Message::as_select())
        .limit(page.limit())
        .into_boxed();
    if let Some(channel) = filter.channel {
        query = query.filter(m::channel.eq(channel));
    }
    if let Some(status) = filter.status {
        query = query.filter(m::status.eq(status));
    }
    if let Some(customer) = filter.customer_id {
        query = query.filter(m::customer_id.eq(customer));
    }
    crate::keyset!(query, page, m::created_at, m::id, desc)
        .load(conn)
        .await
}

#[derive(Debug, Clone, Default)]
pub struct MessageFilter {
    pub channel: Option<Channel>,
    pub status: Option<MessageStatus>,
    pub customer_id: Option<Uuid>,
}

pub async fn message(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
    id: Uuid,
) -> QueryResult<Option<Message>> {
    use communication_log as m;
    m::table
        .filter(m::tenant_id.eq(scope.id()))
        .filter(m::id.eq(id))
        .select(Message::as_select())
        .first(conn)
        .await
        .optional()
}

/// The email events of one message (or of all), oldest first, at most `limit`.
pub async fn email_events_of(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
    message: Option<Uuid>,
    limit: i64,
) -> QueryResult<Vec<EmailEvent>> {
    use email_events as e;
    let mut query = e::table
        .filter(e::tenant_id.eq(scope.id()))
        .select(EmailEvent::as_select())
        .order((e::occurred_at, e::id))
        .limit(limit)
        .into_boxed();
    if let Some(message) = message {
        query = query.filter(e::communication_log_id.eq(message));
    }
    query.load(conn).await
}

// ---- sending ------------------------------------------------------------------------------

/// What the runner does with one claimed message.
enum Plan {
    Send {
        route: Route,
        configuration: Option<Uuid>,
        credentials: Value,
        envelope: Envelope,
    },
    Done(Resolution),
}

/// How a message ends without (another) provider call.
enum Resolution {
    /// Already sent, failed or suppressed (a repeated job): nothing to do.
    Settled,
    Suppressed(String),
    Failed {
        route: Option<Route>,
        code: &'static str,
        reason: String,
    },
}

struct Claimed {
    job: crate::jobs::ClaimedJob,
    message: Option<Uuid>,
    customer: Option<Uuid>,
    channel: Channel,
    to: String,
    recipient_id: Option<Uuid>,
    outreach_email_id: Option<Uuid>,
    plan: Plan,
}

#[derive(Queryable)]
struct Pending {
    id: Uuid,
    customer_id: Option<Uuid>,
    channel: Channel,
    communication_type: CommunicationType,
    recipient: String,
    subject: Option<String>,
    content: Option<String>,
    html_content: Option<String>,
    status: MessageStatus,
    sending_started_at: Option<DateTime<Utc>>,
    campaign_recipient_id: Option<Uuid>,
    outreach_email_id: Option<Uuid>,
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = channel_configurations, check_for_backend(diesel::pg::Pg))]
struct Configuration {
    id: Uuid,
    #[diesel(column_name = channel_type)]
    channel: Channel,
    provider: String,
    config_encrypted: Option<Vec<u8>>,
    from_address: Option<String>,
    from_name: Option<String>,
    hook_token_sealed: Option<Vec<u8>>,
}

/// Why a message may not be sent now, if it may not: the customer's preference for this
/// channel and kind (opted out or unsubscribed), or the tenant's own email preferences
/// (seed 000 `email_preferences.marketing`).
fn consent_refusal(
    message: &Pending,
    preferences: &HashMap<(Uuid, String, String), bool>,
    tenant_preferences: &Value,
) -> Option<String> {
    if let Some(customer) = message.customer_id {
        let key = (
            customer,
            message.channel.as_str().to_owned(),
            message.communication_type.as_str().to_owned(),
        );
        if preferences.get(&key) == Some(&false) {
            return Some(format!(
                "the customer opted out of {} messages by {}",
                key.2, key.1
            ));
        }
    }
    if message.channel == Channel::Email
        && message.communication_type == CommunicationType::Marketing
        && tenant_preferences["marketing"] == json!(false)
    {
        return Some("the tenant turned marketing emails off".into());
    }
    None
}

/// What sealed credentials of a configuration open to (`Value::Null` if none).
fn credentials(
    tenant: Uuid,
    config: &Configuration,
    provider: ChannelProvider,
    key: Option<&SecretKey>,
) -> Result<Value, String> {
    let Some(sealed) = &config.config_encrypted else {
        return Ok(Value::Null);
    };
    let key = key.ok_or("this server has no secret key to open the channel's credentials")?;
    let context = crate::domain::comms::ops::credentials_context(tenant, config.channel, provider);
    let plain = key
        .open(&context, sealed)
        .ok_or("the channel's credentials do not open with this server's secret key")?;
    serde_json::from_slice(&plain).map_err(|_| "the channel's credentials are not JSON".into())
}

/// The status callback a message names (Twilio), when the server knows its public URL
/// and can open the configuration's hook token.
fn status_callback(
    providers: &Providers,
    tenant: Uuid,
    config: &Configuration,
    route: Route,
    key: Option<&SecretKey>,
) -> Option<String> {
    let base = providers.settings.public_url.as_deref()?;
    let token = key?.open(
        &hook_token_context(tenant, config.id),
        config.hook_token_sealed.as_deref()?,
    )?;
    let token = String::from_utf8(token).ok()?;
    Some(format!(
        "{}/hooks/{}/{token}",
        base.trim_end_matches('/'),
        route.name()
    ))
}

/// What a configuration's sealed hook token is bound to.
pub fn hook_token_context(tenant: Uuid, configuration: Uuid) -> String {
    format!("channel_hook/{tenant}/{configuration}")
}

/// Email providers in the order they are preferred when several are enabled.
fn preference(route: Route) -> u8 {
    match route {
        Route::Sendgrid => 0,
        Route::Resend => 1,
        Route::Smtp => 2,
        Route::Twilio => 0,
        Route::Local => 9,
    }
}

fn plan(
    scope: Tenant,
    message: &Pending,
    configurations: &[Configuration],
    providers: &Providers,
    key: Option<&SecretKey>,
    refusal: Option<String>,
) -> Plan {
    if message.status != MessageStatus::Queued {
        return Plan::Done(Resolution::Settled);
    }
    if let Some(reason) = refusal {
        return Plan::Done(Resolution::Suppressed(reason));
    }
    let mut candidates: Vec<(Route, &Configuration, ChannelProvider)> = configurations
        .iter()
        .filter(|c| c.channel == message.channel)
        .filter_map(|c| {
            let provider = ChannelProvider::parse(&c.provider)?;
            Some((Route::of(provider, message.channel)?, c, provider))
        })
        .collect();
    candidates.sort_by_key(|(route, ..)| preference(*route));
    let enabled_here = configurations.iter().any(|c| c.channel == message.channel);
    let (route, config, credentials) = match candidates.into_iter().next() {
        Some((route, config, provider)) => match credentials(scope.id(), config, provider, key) {
            Ok(credentials) => (route, Some(config), credentials),
            Err(reason) => {
                return Plan::Done(Resolution::Failed {
                    route: Some(route),
                    code: "not_configured",
                    reason,
                })
            }
        },
        None if enabled_here => {
            return Plan::Done(Resolution::Failed {
                route: None,
                code: "provider_unsupported",
                reason: "no enabled provider of this channel can send from this server".into(),
            })
        }
        None if providers.settings.local_delivery => (Route::Local, None, Value::Null),
        None => {
            return Plan::Done(Resolution::Failed {
                route: None,
                code: "not_configured",
                reason: format!(
                    "the tenant has no enabled {} channel",
                    message.channel.as_str()
                ),
            })
        }
    };
    if message.sending_started_at.is_some() && !route.repeatable() {
        return Plan::Done(Resolution::Failed {
            route: Some(route),
            code: "outcome_unknown",
            reason: "an earlier attempt stopped before the provider's answer was recorded; not sent again".into(),
        });
    }
    let envelope = Envelope {
        message_id: message.id,
        channel: message.channel,
        to: message.recipient.clone(),
        from_address: config.and_then(|c| c.from_address.clone()),
        from_name: config.and_then(|c| c.from_name.clone()),
        subject: message.subject.clone(),
        text: message.content.clone(),
        html: message.html_content.clone(),
        status_callback: config.and_then(|c| status_callback(providers, scope.id(), c, route, key)),
    };
    Plan::Send {
        route,
        configuration: config.map(|c| c.id),
        credentials,
        envelope,
    }
}

/// Claims up to `limit` due deliveries and decides each in one transaction: consent
/// checked, configuration chosen, and the messages about to be sent marked.
async fn claim(
    db: &TenantDb,
    providers: &Providers,
    key: Option<&SecretKey>,
    limit: i64,
) -> AppResult<Vec<Claimed>> {
    db.run(|conn, scope| {
        async move {
            let jobs = crate::jobs::claim_in(conn, scope, "message_delivery", limit).await?;
            let ids: Vec<Uuid> = jobs
                .iter()
                .filter_map(|j| j.payload["messageId"].as_str()?.parse().ok())
                .collect();
            use communication_log as m;
            let pending: Vec<Pending> = m::table
                .filter(m::tenant_id.eq(scope.id()))
                .filter(m::id.eq_any(&ids))
                .select((
                    m::id,
                    m::customer_id,
                    m::channel,
                    m::communication_type,
                    m::recipient,
                    m::subject,
                    m::content,
                    m::html_content,
                    m::status,
                    m::sending_started_at,
                    m::campaign_recipient_id,
                    m::outreach_email_id,
                ))
                .for_update()
                .load(conn)
                .await?;
            let customers: Vec<Uuid> = pending.iter().filter_map(|p| p.customer_id).collect();
            let preferences: HashMap<(Uuid, String, String), bool> =
                communication_preferences::table
                    .filter(communication_preferences::tenant_id.eq(scope.id()))
                    .filter(communication_preferences::customer_id.eq_any(&customers))
                    .select((
                        communication_preferences::customer_id,
                        communication_preferences::channel,
                        communication_preferences::communication_type,
                        communication_preferences::opted_in,
                        communication_preferences::unsubscribed_at,
                    ))
                    .load::<(Uuid, String, String, bool, Option<DateTime<Utc>>)>(conn)
                    .await?
                    .into_iter()
                    .map(|(c, ch, t, opted, unsub)| ((c, ch, t), opted && unsub.is_none()))
                    .collect();
            let tenant_preferences: Value = tenants::table
                .filter(tenants::id.eq(scope.id()))
                .select(tenants::email_preferences)
                .first(conn)
                .await
                .optional()?
                .unwrap_or(Value::Null);
            use channel_configurations as c;
            let configurations: Vec<Configuration> = c::table
                .filter(c::tenant_id.eq(scope.id()))
                .filter(c::enabled.eq(true))
                .select(Configuration::as_select())
                .load(conn)
                .await?;
            let by_id: HashMap<Uuid, &Pending> = pending.iter().map(|p| (p.id, p)).collect();
            let mut claimed = Vec::with_capacity(jobs.len());
            let mut sending = Vec::new();
            for job in jobs {
                let message = job.payload["messageId"]
                    .as_str()
                    .and_then(|id| id.parse::<Uuid>().ok())
                    .and_then(|id| by_id.get(&id).copied());
                let Some(message) = message else {
                    claimed.push(Claimed {
                        job,
                        message: None,
                        customer: None,
                        channel: Channel::Email,
                        to: String::new(),
                        recipient_id: None,
                        outreach_email_id: None,
                        plan: Plan::Done(Resolution::Settled),
                    });
                    continue;
                };
                let refusal = consent_refusal(message, &preferences, &tenant_preferences);
                let plan = plan(scope, message, &configurations, providers, key, refusal);
                if matches!(plan, Plan::Send { .. }) {
                    sending.push(message.id);
                }
                claimed.push(Claimed {
                    job,
                    message: Some(message.id),
                    customer: message.customer_id,
                    channel: message.channel,
                    to: message.recipient.clone(),
                    recipient_id: message.campaign_recipient_id,
                    outreach_email_id: message.outreach_email_id,
                    plan,
                });
            }
            diesel::update(
                m::table
                    .filter(m::tenant_id.eq(scope.id()))
                    .filter(m::id.eq_any(&sending)),
            )
            .set((
                m::sending_started_at.eq(Utc::now()),
                m::attempts.eq(m::attempts + 1),
            ))
            .execute(conn)
            .await?;
            Ok::<_, AppError>(claimed)
        }
        .scope_boxed()
    })
    .await
}

/// A provider call: through which route and configuration, and what it answered.
type Attempt = (Route, Option<Uuid>, Outcome);

/// How many provider calls one runner has in flight.
const IN_FLIGHT: usize = 32;

/// Sends the tenant's due messages (at most `limit`); returns how many jobs ran.
pub async fn run_due(
    db: &TenantDb,
    providers: &Providers,
    key: Option<&SecretKey>,
    limit: i64,
) -> AppResult<usize> {
    let claimed = claim(db, providers, key, limit).await?;
    if claimed.is_empty() {
        return Ok(0);
    }
    let count = claimed.len();
    let results: Vec<(Claimed, Option<Attempt>)> = futures_util::stream::iter(claimed)
        .map(|c| async move {
            let outcome = match &c.plan {
                Plan::Send {
                    route,
                    configuration,
                    credentials,
                    envelope,
                } => Some((
                    *route,
                    *configuration,
                    providers.send(*route, credentials, envelope).await,
                )),
                Plan::Done(_) => None,
            };
            (c, outcome)
        })
        .buffer_unordered(IN_FLIGHT)
        .collect()
        .await;
    db.run(|conn, scope| {
        async move {
            let mut sent = Vec::new();
            for (claimed, outcome) in &results {
                match outcome {
                    Some((
                        route,
                        configuration,
                        Outcome::Sent {
                            provider_message_id,
                        },
                    )) if claimed.message.is_some() => {
                        sent.push((
                            claimed,
                            *route,
                            *configuration,
                            provider_message_id.as_str(),
                        ));
                    }
                    _ => record(conn, scope, claimed, outcome.as_ref()).await?,
                }
            }
            record_sent(conn, scope, &sent).await
        }
        .scope_boxed()
    })
    .await
    .map_err(AppError::from)?;
    Ok(count)
}

/// Records what became of one claimed message, and finishes its job.
async fn record(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
    claimed: &Claimed,
    outcome: Option<&Attempt>,
) -> OpResult<()> {
    use communication_log as m;
    let Some(message) = claimed.message else {
        crate::jobs::finish(conn, scope, &claimed.job, Err("no such message".into())).await?;
        return Ok(());
    };
    let target = m::table
        .filter(m::tenant_id.eq(scope.id()))
        .filter(m::id.eq(message))
        .filter(m::status.eq(MessageStatus::Queued));
    let job = &claimed.job;
    let resolution = match (&claimed.plan, outcome) {
        (Plan::Done(Resolution::Settled), _) | (Plan::Send { .. }, None) => None,
        (Plan::Done(Resolution::Suppressed(reason)), _) => Some((
            MessageStatus::Suppressed,
            None,
            "suppressed",
            reason.clone(),
        )),
        (
            Plan::Done(Resolution::Failed {
                route,
                code,
                reason,
            }),
            _,
        ) => Some((MessageStatus::Failed, *route, *code, reason.clone())),
        (Plan::Send { .. }, Some((route, configuration, outcome))) => match outcome {
            Outcome::Sent {
                provider_message_id,
            } => {
                let sent = [(
                    claimed,
                    *route,
                    *configuration,
                    provider_message_id.as_str(),
                )];
                return record_sent(conn, scope, &sent).await;
            }
            Outcome::Retry { reason } => {
                let gave_up = crate::jobs::finish(conn, scope, job, Err(reason.clone())).await?;
                if !gave_up {
                    diesel::update(target)
                        .set((
                            m::sending_started_at.eq(None::<DateTime<Utc>>),
                            m::error_message.eq(reason),
                        ))
                        .execute(conn)
                        .await?;
                    return Ok(());
                }
                let resolution = (
                    MessageStatus::Failed,
                    Some(*route),
                    "retries_exhausted",
                    reason.clone(),
                );
                return settle(conn, scope, claimed, resolution).await;
            }
            Outcome::Failed { code, reason } => {
                Some((MessageStatus::Failed, Some(*route), *code, reason.clone()))
            }
            Outcome::Unknown { reason } => Some((
                MessageStatus::Failed,
                Some(*route),
                "outcome_unknown",
                reason.clone(),
            )),
        },
    };
    crate::jobs::finish(conn, scope, job, Ok(())).await?;
    match resolution {
        Some(resolution) => settle(conn, scope, claimed, resolution).await,
        None => Ok(()),
    }
}

/// Records messages the providers accepted, a batch at a time: one statement each for the
/// messages, their jobs, their email events and their `message.sent` events; the
/// campaign recipients and outreach emails they serve move one by one.
async fn record_sent(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
    sent: &[(&Claimed, Route, Option<Uuid>, &str)],
) -> OpResult<()> {
    use diesel::sql_types::{Array, Nullable, Text, Uuid as SqlUuid};
    if sent.is_empty() {
        return Ok(());
    }
    #[derive(QueryableByName)]
    struct Updated {
        #[diesel(sql_type = SqlUuid)]
        id: Uuid,
    }
    let now = Utc::now();
    let ids: Vec<Uuid> = sent.iter().filter_map(|(c, ..)| c.message).collect();
    let updated: Vec<Updated> = diesel::sql_query(
        "UPDATE communication_log m SET status = 'sent', provider = v.provider,
                provider_message_id = v.provider_message_id, channel_configuration_id = v.configuration,
                sent_at = $2, sending_started_at = NULL, failure_code = NULL, error_message = NULL
         FROM unnest($3::uuid[], $4::text[], $5::text[], $6::uuid[])
              AS v(id, provider, provider_message_id, configuration)
         WHERE m.tenant_id = $1 AND m.id = v.id AND m.status = 'queued'
         RETURNING m.id",
    )
    .bind::<SqlUuid, _>(scope.id())
    .bind::<diesel::sql_types::Timestamptz, _>(now)
    .bind::<Array<SqlUuid>, _>(&ids)
    .bind::<Array<Text>, _>(sent.iter().map(|(_, r, ..)| r.name()).collect::<Vec<_>>())
    .bind::<Array<Text>, _>(sent.iter().map(|(.., p)| *p).collect::<Vec<_>>())
    .bind::<Array<Nullable<SqlUuid>>, _>(sent.iter().map(|(_, _, c, _)| *c).collect::<Vec<_>>())
    .load(conn)
    .await?;
    let jobs: Vec<Uuid> = sent.iter().map(|(c, ..)| c.job.id).collect();
    crate::jobs::complete(conn, scope, &jobs).await?;
    let updated: std::collections::HashSet<Uuid> = updated.into_iter().map(|u| u.id).collect();
    let moved: Vec<_> = sent
        .iter()
        .filter(|(c, ..)| c.message.is_some_and(|m| updated.contains(&m)))
        .collect();
    let emails: Vec<_> = moved
        .iter()
        .filter(|(c, ..)| c.channel == Channel::Email)
        .collect();
    diesel::sql_query(
        "INSERT INTO email_events (tenant_id, communication_log_id, recipient_email, email_type,
                                   status, provider_message_id, metadata, occurred_at)
         SELECT $1, e.id, e.recipient, 'notification', 'sent', e.provider_message_id,
                '{\"event\": \"sent\"}', $2
         FROM unnest($3::uuid[], $4::text[], $5::text[]) AS e(id, recipient, provider_message_id)",
    )
    .bind::<SqlUuid, _>(scope.id())
    .bind::<diesel::sql_types::Timestamptz, _>(now)
    .bind::<Array<SqlUuid>, _>(
        emails
            .iter()
            .filter_map(|(c, ..)| c.message)
            .collect::<Vec<_>>(),
    )
    .bind::<Array<Text>, _>(
        emails
            .iter()
            .map(|(c, ..)| c.to.as_str())
            .collect::<Vec<_>>(),
    )
    .bind::<Array<Text>, _>(emails.iter().map(|(.., p)| *p).collect::<Vec<_>>())
    .execute(conn)
    .await?;
    let report = |message: Uuid| Report {
        message: MessageRef::Id(message),
        status: Some(MessageStatus::Sent),
        unsubscribe: false,
        at: now,
        detail: None,
        event: "sent".into(),
    };
    let mut events = Vec::with_capacity(moved.len());
    for (claimed, route, _, provider_message_id) in &moved {
        let message = claimed.message.expect("a sent message");
        if claimed.recipient_id.is_some() || claimed.outreach_email_id.is_some() {
            move_funnels(
                conn,
                scope,
                claimed.recipient_id,
                claimed.outreach_email_id,
                &report(message),
            )
            .await?;
        }
        events.push((
            "message.sent".to_owned(),
            message,
            json!({ "provider": route.name(), "providerMessageId": provider_message_id, "customerId": claimed.customer }),
        ));
    }
    events::record_many(conn, scope, events).await?;
    Ok(())
}

/// Ends a queued message without it being sent: suppressed or failed, with the reason.
async fn settle(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
    claimed: &Claimed,
    (status, route, code, reason): (MessageStatus, Option<Route>, &'static str, String),
) -> OpResult<()> {
    use communication_log as m;
    let Some(message) = claimed.message else {
        return Ok(());
    };
    let target = m::table
        .filter(m::tenant_id.eq(scope.id()))
        .filter(m::id.eq(message))
        .filter(m::status.eq(MessageStatus::Queued));
    let changed = diesel::update(target)
        .set((
            m::status.eq(status),
            m::provider.eq(route.map(|r| r.name())),
            m::failure_code.eq(code),
            m::error_message.eq(&reason),
            m::sending_started_at.eq(None::<DateTime<Utc>>),
        ))
        .execute(conn)
        .await?;
    if changed == 0 {
        return Ok(());
    }
    let report = Report {
        message: MessageRef::Id(message),
        status: Some(status),
        unsubscribe: false,
        at: Utc::now(),
        detail: Some(reason.clone()),
        event: status.as_str().into(),
    };
    follow(conn, scope, claimed, &report, None).await?;
    events::record(
        conn,
        scope,
        &format!("message.{}", status.as_str()),
        message,
        json!({ "code": code, "reason": reason, "customerId": claimed.customer }),
    )
    .await?;
    Ok(())
}

/// Moves what a message serves along with it: the campaign recipient's funnel, the
/// outreach email's, and the email event stream.
async fn follow(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
    claimed: &Claimed,
    report: &Report,
    provider_message_id: Option<&str>,
) -> OpResult<()> {
    let Some(message) = claimed.message else {
        return Ok(());
    };
    let target = Target {
        id: message,
        channel: claimed.channel,
        recipient: claimed.to.clone(),
        recipient_id: claimed.recipient_id,
        outreach_email_id: claimed.outreach_email_id,
        customer_id: claimed.customer,
        communication_type: CommunicationType::Transactional,
        email_sequence_id: None,
    };
    funnel(conn, scope, &target, report, provider_message_id).await
}

/// The message a report is about, and what it serves.
#[derive(Queryable)]
struct Target {
    id: Uuid,
    channel: Channel,
    recipient: String,
    recipient_id: Option<Uuid>,
    outreach_email_id: Option<Uuid>,
    customer_id: Option<Uuid>,
    communication_type: CommunicationType,
    email_sequence_id: Option<Uuid>,
}

async fn funnel(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
    target: &Target,
    report: &Report,
    provider_message_id: Option<&str>,
) -> OpResult<()> {
    let Some(status) = report.status else {
        return Ok(());
    };
    move_funnels(
        conn,
        scope,
        target.recipient_id,
        target.outreach_email_id,
        report,
    )
    .await?;
    let email_status = match status {
        MessageStatus::Sent => Some("sent"),
        MessageStatus::Delivered => Some("delivered"),
        MessageStatus::Opened => Some("opened"),
        MessageStatus::Clicked => Some("clicked"),
        MessageStatus::Bounced => Some("bounced"),
        MessageStatus::Complained => Some("complained"),
        _ => None,
    };
    if let (Channel::Email, Some(email_status)) = (target.channel, email_status) {
        use email_events as e;
        diesel::insert_into(e::table)
            .values((
                e::tenant_id.eq(scope.id()),
                e::communication_log_id.eq(target.id),
                e::recipient_email.eq(&target.recipient),
                e::email_type.eq("notification"),
                e::status.eq(email_status),
                e::provider_message_id.eq(provider_message_id),
                e::metadata.eq(json!({ "event": report.event, "detail": report.detail })),
                e::occurred_at.eq(report.at),
            ))
            .execute(conn)
            .await?;
    }
    Ok(())
}

/// Moves the campaign recipient and the outreach email a message serves along with what
/// `report` says of it (their own rules: forward only, `failed` from any state).
async fn move_funnels(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
    recipient_id: Option<Uuid>,
    outreach_email_id: Option<Uuid>,
    report: &Report,
) -> OpResult<()> {
    let Some(status) = report.status else {
        return Ok(());
    };
    if let Some(recipient) = recipient_id {
        let moved = match status {
            MessageStatus::Sent => Some(RecipientStatus::Sent),
            MessageStatus::Delivered => Some(RecipientStatus::Delivered),
            MessageStatus::Opened => Some(RecipientStatus::Opened),
            MessageStatus::Clicked => Some(RecipientStatus::Clicked),
            MessageStatus::Bounced | MessageStatus::Failed | MessageStatus::Suppressed => {
                Some(RecipientStatus::Failed)
            }
            // A spam complaint comes after delivery: the funnel keeps what was reached.
            MessageStatus::Complained | MessageStatus::Queued | MessageStatus::Received => None,
        };
        if let Some(moved) = moved {
            let detail = report
                .detail
                .as_deref()
                .map(|d| d.chars().take(1000).collect::<String>());
            crate::domain::campaigns::ops::record_delivery_event(
                conn,
                scope,
                recipient,
                moved,
                report.at,
                detail.as_deref(),
            )
            .await?;
        }
    }
    if let Some(email) = outreach_email_id {
        let action = match status {
            MessageStatus::Sent => Some(OutreachAction::Sent),
            MessageStatus::Delivered => Some(OutreachAction::Delivered),
            MessageStatus::Opened => Some(OutreachAction::Opened),
            MessageStatus::Clicked => Some(OutreachAction::Clicked),
            MessageStatus::Bounced => Some(OutreachAction::Bounced),
            _ => None,
        };
        if let Some(action) = action {
            crate::domain::campaigns::ops::record_outreach_event(
                conn, scope, email, action, report.at,
            )
            .await?;
        }
    }
    Ok(())
}

/// A message follows its delivery job's fate at an admin's hand: retried, a failed
/// message is queued again (its earlier outcome forgotten); cancelled, a queued one fails
/// as `cancelled`.
pub async fn follow_job(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
    message: Uuid,
    retried: bool,
) -> QueryResult<()> {
    use communication_log as m;
    let row = m::table
        .filter(m::tenant_id.eq(scope.id()))
        .filter(m::id.eq(message));
    if retried {
        diesel::update(row.filter(m::status.eq(MessageStatus::Failed)))
            .set((
                m::status.eq(MessageStatus::Queued),
                m::sending_started_at.eq(None::<DateTime<Utc>>),
                m::failure_code.eq(None::<String>),
                m::error_message.eq(None::<String>),
            ))
            .execute(conn)
            .await?;
    } else {
        diesel::update(row.filter(m::status.eq(MessageStatus::Queued)))
            .set((
                m::status.eq(MessageStatus::Failed),
                m::failure_code.eq("cancelled"),
                m::sending_started_at.eq(None::<DateTime<Utc>>),
            ))
            .execute(conn)
            .await?;
    }
    Ok(())
}

// ---- status reports -----------------------------------------------------------------------

/// Applies a provider's status reports for messages sent through `configuration`: each
/// moves its message forward only (queued → sent → delivered → opened → clicked; bounced,
/// failed and complained are final), appends the email event, moves the campaign
/// recipient or outreach email along, and records `message.<status>`. An unsubscribe
/// withdraws the customer's consent for that kind of message on that channel. Reports
/// naming no message of this configuration are skipped. Returns how many moved a message.
pub async fn apply_reports(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
    configuration: Uuid,
    reports: &[Report],
) -> OpResult<usize> {
    use communication_log as m;
    let mut moved = 0;
    for report in reports {
        let found = find_reported(conn, scope, configuration, &report.message).await?;
        let Some((target, current, provider_id)) = found else {
            continue;
        };
        if report.unsubscribe {
            withdraw_consent(conn, scope, &target).await?;
            if let Some(sequence) = target.email_sequence_id {
                crate::domain::automations::ops::stop_email_sequence(
                    conn,
                    scope,
                    sequence,
                    "unsubscribed",
                )
                .await?;
            }
        }
        let Some(status) = report.status else {
            continue;
        };
        let forward = current.stage() < 5 && status.stage() > current.stage();
        if forward {
            // Reaching a state stamps it (once), and `sent_at` if the send was not seen.
            let stamp = match status {
                MessageStatus::Delivered => ", delivered_at = coalesce(delivered_at, $2)",
                MessageStatus::Opened => ", opened_at = coalesce(opened_at, $2)",
                MessageStatus::Clicked => ", clicked_at = coalesce(clicked_at, $2)",
                _ => "",
            };
            diesel::sql_query(format!(
                "UPDATE communication_log SET status = $1, sent_at = coalesce(sent_at, $2){stamp} \
                 WHERE tenant_id = $3 AND id = $4"
            ))
            .bind::<diesel::sql_types::Text, _>(status.as_str())
            .bind::<diesel::sql_types::Timestamptz, _>(report.at)
            .bind::<diesel::sql_types::Uuid, _>(scope.id())
            .bind::<diesel::sql_types::Uuid, _>(target.id)
            .execute(conn)
            .await?;
            if status.stage() == 5 {
                diesel::update(
                    m::table
                        .filter(m::tenant_id.eq(scope.id()))
                        .filter(m::id.eq(target.id)),
                )
                .set((
                    m::failure_code.eq(status.as_str()),
                    m::error_message.eq(report.detail.as_deref()),
                ))
                .execute(conn)
                .await?;
            }
            events::record(
                conn,
                scope,
                &format!("message.{}", status.as_str()),
                target.id,
                json!({ "providerEvent": report.event, "customerId": target.customer_id }),
            )
            .await?;
            moved += 1;
        }
        // The event stream keeps every report; the funnels move forward only themselves.
        funnel(conn, scope, &target, report, provider_id.as_deref()).await?;
    }
    Ok(moved)
}

/// The message a report names among those sent through `configuration`, locked.
async fn find_reported(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
    configuration: Uuid,
    message: &MessageRef,
) -> QueryResult<Option<(Target, MessageStatus, Option<String>)>> {
    use communication_log as m;
    let query = m::table
        .filter(m::tenant_id.eq(scope.id()))
        .filter(m::channel_configuration_id.eq(configuration))
        .select((
            (
                m::id,
                m::channel,
                m::recipient,
                m::campaign_recipient_id,
                m::outreach_email_id,
                m::customer_id,
                m::communication_type,
                m::email_sequence_id,
            ),
            m::status,
            m::provider_message_id,
        ))
        .for_update();
    match message {
        MessageRef::Id(id) => query.filter(m::id.eq(*id)).first(conn).await.optional(),
        MessageRef::Provider(id) => query
            .filter(m::provider_message_id.eq(id))
            .first(conn)
            .await
            .optional(),
    }
}

/// Records that the customer a message went to does not want that kind of message on
/// that channel any more.
async fn withdraw_consent(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
    target: &Target,
) -> QueryResult<()> {
    let Some(customer) = target.customer_id else {
        return Ok(());
    };
    use communication_preferences as p;
    diesel::insert_into(p::table)
        .values((
            p::tenant_id.eq(scope.id()),
            p::customer_id.eq(customer),
            p::channel.eq(target.channel.as_str()),
            p::communication_type.eq(target.communication_type.as_str()),
            p::opted_in.eq(false),
            p::unsubscribed_at.eq(Utc::now()),
            p::unsubscribe_reason.eq("unsubscribed through the provider"),
        ))
        .on_conflict((
            p::tenant_id,
            p::customer_id,
            p::channel,
            p::communication_type,
        ))
        .do_update()
        .set((
            p::opted_in.eq(false),
            p::unsubscribed_at.eq(Utc::now()),
            p::unsubscribe_reason.eq("unsubscribed through the provider"),
        ))
        .execute(conn)
        .await?;
    Ok(())
}

/// The configuration a hook token names, across tenants (see the migration's reviewed
/// `channel_hook_target`): its id, tenant and provider.
pub async fn hook_target(
    pool: &crate::db::PgPool,
    token: &str,
) -> AppResult<Option<(Uuid, Uuid, String)>> {
    #[derive(QueryableByName)]
    struct Row {
        #[diesel(sql_type = diesel::sql_types::Uuid)]
        configuration_id: Uuid,
        #[diesel(sql_type = diesel::sql_types::Uuid)]
        tenant_id: Uuid,
        #[diesel(sql_type = diesel::sql_types::Text)]
        provider: String,
    }
    let mut conn = pool.get().await?;
    let row: Option<Row> = diesel::sql_query(
        "SELECT configuration_id, tenant_id, provider FROM channel_hook_target($1)",
    )
    .bind::<diesel::sql_types::Bytea, _>(crate::auth::hash_key(token))
    .get_result(&mut conn)
    .await
    .optional()?;
    Ok(row.map(|r| (r.configuration_id, r.tenant_id, r.provider)))
}

/// The credentials of the configuration a hook names (to verify its signature).
pub async fn hook_credentials(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
    configuration: Uuid,
    key: Option<&SecretKey>,
) -> AppResult<Option<Value>> {
    use channel_configurations as c;
    let config: Option<Configuration> = c::table
        .filter(c::tenant_id.eq(scope.id()))
        .filter(c::id.eq(configuration))
        .select(Configuration::as_select())
        .first(conn)
        .await
        .optional()?;
    let Some(config) = config else {
        return Ok(None);
    };
    let Some(provider) = ChannelProvider::parse(&config.provider) else {
        return Ok(None);
    };
    Ok(credentials(scope.id(), &config, provider, key)
        .ok()
        .filter(|v| v.is_object()))
}
