use std::collections::HashMap;

use async_graphql::connection::Connection;
use async_graphql::dataloader::Loader;
use async_graphql::{Context, InputObject, Json, MaybeUndefined, Object, SimpleObject, ID};
use chrono::{DateTime, NaiveDate, NaiveTime, Utc};
use scoped_futures::ScopedFutureExt;
use uuid::Uuid;

use super::model::{
    self, AppointmentStatus, CallAgent, CallDirection, CallProvider, CallStatus, Channel,
    ChannelProvider, MessageStatus, ProspectStatus, TicketChannel, TicketPriority, TicketStatus,
};
use super::ops;
use crate::auth::Access;
use crate::db::children::ChildRelation;
use crate::domain::{write_payload, Payload, UserError};
use crate::error::{AppError, AppResult};
use crate::graphql::connection::{created_page, Cursor, PageRequest};
use crate::graphql::context::request_context;
use crate::graphql::loaders::{load_child_pages, ChildPage, TenantLoader};
use crate::graphql::scalars::{parse_id, parse_optional_id};
use crate::secrets::SecretKey;

/// One message sent to (or received from) a customer on any channel.
#[derive(SimpleObject, Clone)]
pub struct Communication {
    pub id: ID,
    pub channel: Channel,
    pub direction: String,
    pub provider: Option<String>,
    pub recipient: String,
    pub subject: Option<String>,
    pub status: MessageStatus,
    pub sent_at: Option<DateTime<Utc>>,
    pub delivered_at: Option<DateTime<Utc>>,
    pub opened_at: Option<DateTime<Utc>>,
    pub clicked_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

impl From<model::Communication> for Communication {
    fn from(c: model::Communication) -> Self {
        Communication {
            id: ID(c.id.to_string()),
            channel: c.channel,
            direction: c.direction,
            provider: c.provider,
            recipient: c.recipient,
            subject: c.subject,
            status: c.status,
            sent_at: c.sent_at,
            delivered_at: c.delivered_at,
            opened_at: c.opened_at,
            clicked_at: c.clicked_at,
            created_at: c.created_at,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CommunicationsOf;

pub(crate) const COMMUNICATIONS: ChildRelation = ChildRelation {
    table: "communication_log",
    parent_column: "customer_id",
    sort_column: "created_at",
    kind_column: None,
};

impl Loader<ChildPage<CommunicationsOf>> for TenantLoader {
    type Value = Vec<model::Communication>;
    type Error = AppError;

    async fn load(
        &self,
        keys: &[ChildPage<CommunicationsOf>],
    ) -> Result<HashMap<ChildPage<CommunicationsOf>, Self::Value>, AppError> {
        load_child_pages(
            self,
            keys,
            &COMMUNICATIONS,
            |_| None,
            |c: &model::Communication| c.customer_id.unwrap_or_default(),
        )
        .await
    }
}

fn id(uuid: Uuid) -> ID {
    ID(uuid.to_string())
}

/// A phone call handled by a voice agent.
#[derive(SimpleObject)]
pub struct Call {
    pub id: ID,
    pub customer_id: Option<ID>,
    /// vapi, twilio or retell.
    pub provider: String,
    /// inbound or outbound.
    pub direction: String,
    /// appointment, qualification or support.
    pub agent_type: Option<String>,
    pub from_number: Option<String>,
    pub to_number: Option<String>,
    pub status: CallStatus,
    pub duration_seconds: Option<i32>,
    pub summary: Option<String>,
    pub started_at: Option<DateTime<Utc>>,
    pub ended_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

impl From<model::Call> for Call {
    fn from(c: model::Call) -> Self {
        Call {
            id: id(c.id),
            customer_id: c.customer_id.map(id),
            provider: c.provider,
            direction: c.direction,
            agent_type: c.agent_type,
            from_number: c.from_number,
            to_number: c.to_number,
            status: c.status,
            duration_seconds: c.duration_seconds,
            summary: c.summary,
            started_at: c.started_at,
            ended_at: c.ended_at,
            created_at: c.created_at,
        }
    }
}

/// An appointment booked by the appointment agent (`rendez_vous`).
#[derive(SimpleObject)]
pub struct Appointment {
    pub id: ID,
    pub customer_id: Option<ID>,
    /// The call that booked it.
    pub call_id: Option<ID>,
    pub client_name: String,
    pub client_phone: Option<String>,
    pub client_email: Option<String>,
    pub date: NaiveDate,
    pub time: NaiveTime,
    pub duration_minutes: i32,
    pub service_type: Option<String>,
    pub notes: Option<String>,
    pub status: AppointmentStatus,
    /// Whether the 24 h reminder went out.
    pub reminder_sent: bool,
    pub created_at: DateTime<Utc>,
}

impl From<model::Appointment> for Appointment {
    fn from(a: model::Appointment) -> Self {
        Appointment {
            id: id(a.id),
            customer_id: a.customer_id.map(id),
            call_id: a.call_id.map(id),
            client_name: a.client_name,
            client_phone: a.client_phone,
            client_email: a.client_email,
            date: a.rdv_date,
            time: a.rdv_time,
            duration_minutes: a.duration_minutes,
            service_type: a.service_type,
            notes: a.notes,
            status: a.status,
            reminder_sent: a.reminder_24h_sent,
            created_at: a.created_at,
        }
    }
}

/// A support ticket, opened by the support agent or by hand.
#[derive(SimpleObject)]
pub struct Ticket {
    pub id: ID,
    pub customer_id: Option<ID>,
    pub call_id: Option<ID>,
    pub ticket_number: String,
    pub subject: String,
    pub description: Option<String>,
    pub category: Option<String>,
    /// phone, sms, email, whatsapp or web.
    pub channel: String,
    pub priority: TicketPriority,
    pub status: TicketStatus,
    pub assigned_to: Option<String>,
    pub resolved_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

impl From<model::Ticket> for Ticket {
    fn from(t: model::Ticket) -> Self {
        Ticket {
            id: id(t.id),
            customer_id: t.customer_id.map(id),
            call_id: t.call_id.map(id),
            ticket_number: t.ticket_number,
            subject: t.subject,
            description: t.description,
            category: t.category,
            channel: t.channel,
            priority: t.priority,
            status: t.status,
            assigned_to: t.assigned_to,
            resolved_at: t.resolved_at,
            created_at: t.created_at,
        }
    }
}

/// How a channel is set up. Its credentials are write-only: no field returns them.
#[derive(SimpleObject)]
pub struct ChannelConfiguration {
    pub id: ID,
    pub channel: Channel,
    /// twilio, vapi, retell, mailchimp, klaviyo, sendgrid, redchirp, smtp, resend or
    /// whatsapp_business.
    pub provider: String,
    pub enabled: bool,
    /// Whether credentials have been stored.
    pub configured: bool,
    /// The provider settings that are not secret.
    pub config_public: Json<serde_json::Value>,
    /// The voice agent's assistant (phone channels).
    pub assistant_id: Option<String>,
    pub from_address: Option<String>,
    pub from_name: Option<String>,
    pub updated_at: DateTime<Utc>,
}

impl From<model::ChannelConfiguration> for ChannelConfiguration {
    fn from(c: model::ChannelConfiguration) -> Self {
        ChannelConfiguration {
            id: id(c.id),
            channel: c.channel_type,
            provider: c.provider,
            enabled: c.enabled,
            configured: c.configured,
            config_public: Json(c.config_public),
            assistant_id: c.assistant_id,
            from_address: c.from_address,
            from_name: c.from_name,
            updated_at: c.updated_at,
        }
    }
}

/// A caller qualified by the qualification agent.
#[derive(SimpleObject)]
pub struct Prospect {
    pub id: ID,
    pub call_id: Option<ID>,
    pub name: String,
    pub phone: Option<String>,
    pub email: Option<String>,
    pub company: Option<String>,
    pub need: Option<String>,
    pub budget: Option<String>,
    pub timeline: Option<String>,
    /// 0–100.
    pub qualification_score: Option<i32>,
    pub status: ProspectStatus,
    /// phone, sms, email, whatsapp or web.
    pub source: String,
    pub notes: Option<String>,
    pub created_at: DateTime<Utc>,
}

impl From<model::Prospect> for Prospect {
    fn from(p: model::Prospect) -> Self {
        Prospect {
            id: id(p.id),
            call_id: p.call_id.map(id),
            name: p.name,
            phone: p.phone,
            email: p.email,
            company: p.company,
            need: p.need,
            budget: p.budget,
            timeline: p.timeline,
            qualification_score: p.qualification_score,
            status: p.status,
            source: p.source,
            notes: p.notes,
            created_at: p.created_at,
        }
    }
}

type Page<N> = Connection<Cursor<DateTime<Utc>>, N>;

#[derive(Default)]
pub struct CommsQuery;

/// The channels, and the voice agents' records newest first.
#[Object]
impl CommsQuery {
    #[graphql(guard = "Access::Read")]
    async fn channels(&self, ctx: &Context<'_>) -> AppResult<Vec<ChannelConfiguration>> {
        let rows = request_context(ctx)?
            .db
            .query(|conn, scope| ops::channels(conn, scope).scope_boxed())
            .await?;
        Ok(crate::graphql::connection::bounded(rows)
            .into_iter()
            .map(ChannelConfiguration::from)
            .collect())
    }

    #[graphql(guard = "Access::Read")]
    async fn prospects(
        &self,
        ctx: &Context<'_>,
        status: Option<ProspectStatus>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
    ) -> AppResult<Page<Prospect>> {
        created_page(
            ctx,
            PageRequest::either(first, after, last, before)?,
            |conn, scope, page| {
                async move { ops::list_prospects(conn, scope, status, &page).await }.scope_boxed()
            },
            Prospect::from,
        )
        .await
    }

    #[graphql(guard = "Access::Read")]
    async fn calls(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
    ) -> AppResult<Page<Call>> {
        created_page(
            ctx,
            PageRequest::either(first, after, last, before)?,
            |conn, scope, page| {
                async move { ops::list_calls(conn, scope, &page).await }.scope_boxed()
            },
            Call::from,
        )
        .await
    }

    #[graphql(guard = "Access::Read")]
    #[allow(clippy::too_many_arguments)]
    async fn appointments(
        &self,
        ctx: &Context<'_>,
        filter: Option<AppointmentFilter>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
    ) -> AppResult<Page<Appointment>> {
        let filter = filter.map_or_else(Default::default, |f| ops::AppointmentFilter {
            from: f.from,
            to: f.to,
            status: f.status,
        });
        created_page(
            ctx,
            PageRequest::either(first, after, last, before)?,
            |conn, scope, page| {
                async move { ops::list_appointments(conn, scope, &filter, &page).await }
                    .scope_boxed()
            },
            Appointment::from,
        )
        .await
    }

    #[graphql(guard = "Access::Read")]
    async fn tickets(
        &self,
        ctx: &Context<'_>,
        status: Option<TicketStatus>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
    ) -> AppResult<Page<Ticket>> {
        created_page(
            ctx,
            PageRequest::either(first, after, last, before)?,
            |conn, scope, page| {
                async move { ops::list_tickets(conn, scope, status, &page).await }.scope_boxed()
            },
            Ticket::from,
        )
        .await
    }
}

/// A channel's settings to change; what is left out keeps its value (or its default for
/// a new configuration: disabled, no public configuration, no credentials), `null`
/// clears it.
#[derive(InputObject)]
pub struct ConfigureChannelInput {
    pub channel: Channel,
    pub provider: ChannelProvider,
    pub enabled: Option<bool>,
    /// The provider settings that are not secret: a JSON object of at most 8 KiB.
    pub config_public: Option<Json<serde_json::Value>>,
    /// The voice agent's assistant (phone channels only).
    pub assistant_id: MaybeUndefined<String>,
    /// The sender: an email address for email channels, a number or id for the others.
    pub from_address: MaybeUndefined<String>,
    pub from_name: MaybeUndefined<String>,
    /// The provider's credentials (a JSON object of at most 8 KiB): write-only, sealed
    /// with the server's secret key before they are stored, never returned; `null`
    /// removes them.
    pub credentials: MaybeUndefined<Json<serde_json::Value>>,
    /// Replaces the status hook token (the old one stops working at once).
    #[graphql(default)]
    pub rotate_hook_token: bool,
}

#[derive(SimpleObject)]
pub struct ConfigureChannelPayload {
    pub channel_configuration: Option<ChannelConfiguration>,
    /// The token of the configuration's status hook, `POST /hooks/{provider}/{token}`
    /// (give it to the provider as its event webhook or status callback URL): shown only
    /// when it is made, with the first configuration or `rotateHookToken`.
    pub hook_token: Option<String>,
    pub user_errors: Vec<UserError>,
}

impl Payload for ConfigureChannelPayload {
    type Value = ops::Configured;
    fn new(configured: Option<ops::Configured>, user_errors: Vec<UserError>) -> Self {
        let (configuration, hook_token) = configured.map_or((None, None), |c| {
            (Some(c.configuration.into()), c.hook_token)
        });
        ConfigureChannelPayload {
            channel_configuration: configuration,
            hook_token,
            user_errors,
        }
    }
}

#[derive(InputObject)]
pub struct OpenTicketInput {
    pub subject: String,
    pub description: Option<String>,
    pub category: Option<String>,
    /// Default PHONE.
    pub channel: Option<TicketChannel>,
    /// Default MEDIUM.
    pub priority: Option<TicketPriority>,
    /// One of the tenant's customers, when the caller is one.
    pub customer_id: Option<ID>,
    /// The call it came from.
    pub call_id: Option<ID>,
    pub customer_name: Option<String>,
    pub customer_email: Option<String>,
    pub customer_phone: Option<String>,
}

#[derive(InputObject)]
pub struct UpdateTicketInput {
    pub id: ID,
    pub status: Option<TicketStatus>,
    pub priority: Option<TicketPriority>,
    /// `null` unassigns.
    pub assigned_to: MaybeUndefined<String>,
}

/// A voice provider's report of a call (several per call: ringing, in progress,
/// completed…).
#[derive(InputObject)]
pub struct RecordCallInput {
    pub provider: CallProvider,
    /// The provider's id of the call: reports with the same id update one call.
    pub provider_call_id: Option<String>,
    pub direction: CallDirection,
    /// Never moves a call back (a late RINGING after COMPLETED is ignored).
    pub status: CallStatus,
    pub agent_type: Option<CallAgent>,
    /// One of the tenant's customers, when the caller is one.
    pub customer_id: Option<ID>,
    pub from_number: Option<String>,
    pub to_number: Option<String>,
    pub duration_seconds: Option<i32>,
    pub recording_url: Option<String>,
    pub transcript: Option<String>,
    pub summary: Option<String>,
    pub started_at: Option<DateTime<Utc>>,
    pub ended_at: Option<DateTime<Utc>>,
}

crate::payload!(CallPayload { call: Call } from model::Call);

#[derive(InputObject)]
pub struct RecordProspectInput {
    pub name: String,
    pub phone: Option<String>,
    pub email: Option<String>,
    pub company: Option<String>,
    pub need: Option<String>,
    pub budget: Option<String>,
    pub timeline: Option<String>,
    /// 0 to 100.
    pub qualification_score: Option<i32>,
    /// Where the prospect came from; default PHONE.
    pub source: Option<TicketChannel>,
    pub notes: Option<String>,
    /// The call that qualified them.
    pub call_id: Option<ID>,
}

#[derive(InputObject)]
pub struct UpdateProspectInput {
    pub id: ID,
    pub status: Option<ProspectStatus>,
    /// 0 to 100; `null` clears it.
    pub qualification_score: MaybeUndefined<i32>,
    /// `null` clears them.
    pub notes: MaybeUndefined<String>,
}

crate::payload!(ProspectPayload { prospect: Prospect } from model::Prospect);

#[derive(InputObject)]
pub struct BookAppointmentInput {
    pub client_name: String,
    pub client_phone: Option<String>,
    pub client_email: Option<String>,
    pub date: NaiveDate,
    pub time: NaiveTime,
    /// 5 to 480; default 30.
    pub duration_minutes: Option<i32>,
    pub service_type: Option<String>,
    pub notes: Option<String>,
    /// One of the tenant's customers, when the client is one.
    pub customer_id: Option<ID>,
    /// The call that booked it.
    pub call_id: Option<ID>,
}

#[derive(InputObject)]
pub struct ChangeAppointmentInput {
    pub id: ID,
    pub status: AppointmentStatus,
}

/// Appointments on or after `from`, on or before `to` (dates), in `status`.
#[derive(InputObject)]
pub struct AppointmentFilter {
    pub from: Option<NaiveDate>,
    pub to: Option<NaiveDate>,
    pub status: Option<AppointmentStatus>,
}

#[derive(InputObject)]
pub struct RescheduleAppointmentInput {
    pub id: ID,
    pub date: NaiveDate,
    pub time: NaiveTime,
}

crate::payload!(AppointmentPayload { appointment: Appointment } from model::Appointment);

crate::payload!(TicketPayload { ticket: Ticket } from model::Ticket);

#[derive(Default)]
pub struct CommsMutation;

#[Object]
impl CommsMutation {
    /// Creates the tenant's configuration of a channel with a provider, or changes it
    /// (admins).
    #[graphql(guard = "Access::Admin")]
    async fn configure_channel(
        &self,
        ctx: &Context<'_>,
        input: ConfigureChannelInput,
    ) -> AppResult<ConfigureChannelPayload> {
        let (channel, provider) = (input.channel, input.provider);
        let fields = model::ChannelFields {
            enabled: input.enabled,
            config_public: input.config_public.map(|c| c.0),
            assistant_id: input.assistant_id.into(),
            from_address: input.from_address.into(),
            from_name: input.from_name.into(),
            ..Default::default()
        };
        let credentials = match input.credentials.into() {
            None => ops::Credentials::Keep,
            Some(None) => ops::Credentials::Remove,
            Some(Some(value)) => ops::Credentials::Store(value.0),
        };
        let key = ctx.data_opt::<SecretKey>();
        let rotate = input.rotate_hook_token;
        write_payload(ctx, |conn, scope| {
            ops::configure_channel(
                conn,
                scope,
                channel,
                provider,
                fields,
                credentials,
                rotate,
                key,
            )
            .scope_boxed()
        })
        .await
    }

    /// Opens a support ticket (numbered `TCK-0001`, `TCK-0002`… per tenant).
    #[graphql(guard = "Access::Ingest")]
    async fn open_ticket(
        &self,
        ctx: &Context<'_>,
        input: OpenTicketInput,
    ) -> AppResult<TicketPayload> {
        let fields = model::TicketFields {
            customer_id: parse_optional_id(&input.customer_id, &["input", "customerId"])?,
            call_id: parse_optional_id(&input.call_id, &["input", "callId"])?,
            subject: input.subject,
            description: input.description,
            category: input.category,
            channel: input.channel,
            priority: input.priority,
            customer_name: input.customer_name,
            customer_email: input.customer_email.map(|e| e.trim().to_lowercase()),
            customer_phone: input.customer_phone,
        };
        write_payload(ctx, |conn, scope| {
            ops::open_ticket(conn, scope, fields).scope_boxed()
        })
        .await
    }

    /// Records a voice provider's report of a call (reports of one provider call id
    /// update one call, whose status only moves forward).
    #[graphql(guard = "Access::Ingest")]
    async fn record_call(
        &self,
        ctx: &Context<'_>,
        input: RecordCallInput,
    ) -> AppResult<CallPayload> {
        let fields = model::CallFields {
            customer_id: parse_optional_id(&input.customer_id, &["input", "customerId"])?,
            agent_type: input.agent_type,
            from_number: input.from_number,
            to_number: input.to_number,
            duration_seconds: input.duration_seconds,
            recording_url: input.recording_url,
            transcript: input.transcript,
            summary: input.summary,
            started_at: input.started_at,
            ended_at: input.ended_at,
        };
        let (provider, direction, status) = (input.provider, input.direction, input.status);
        let provider_call_id = input.provider_call_id;
        write_payload(ctx, |conn, scope| {
            ops::record_call(
                conn,
                scope,
                provider,
                provider_call_id,
                direction,
                status,
                fields,
            )
            .scope_boxed()
        })
        .await
    }

    /// Records a prospect the qualification agent met (status NEW).
    #[graphql(guard = "Access::Ingest")]
    async fn record_prospect(
        &self,
        ctx: &Context<'_>,
        input: RecordProspectInput,
    ) -> AppResult<ProspectPayload> {
        let fields = model::ProspectFields {
            call_id: parse_optional_id(&input.call_id, &["input", "callId"])?,
            name: input.name,
            phone: input.phone,
            email: input.email.map(|e| e.trim().to_lowercase()),
            company: input.company,
            need: input.need,
            budget: input.budget,
            timeline: input.timeline,
            qualification_score: input.qualification_score,
            source: input.source,
            notes: input.notes,
        };
        write_payload(ctx, |conn, scope| {
            ops::record_prospect(conn, scope, fields).scope_boxed()
        })
        .await
    }

    /// Moves a prospect along (qualified, contacted, converted…) and rescores it.
    #[graphql(guard = "Access::Ingest")]
    async fn update_prospect(
        &self,
        ctx: &Context<'_>,
        input: UpdateProspectInput,
    ) -> AppResult<ProspectPayload> {
        let id = parse_id(&input.id, &["input", "id"])?;
        let status = input.status;
        let (score, notes) = (input.qualification_score.into(), input.notes.into());
        write_payload(ctx, |conn, scope| {
            ops::update_prospect(conn, scope, id, status, score, notes).scope_boxed()
        })
        .await
    }

    /// Books an appointment (pending); it may not overlap the tenant's pending or
    /// confirmed ones.
    #[graphql(guard = "Access::Ingest")]
    async fn book_appointment(
        &self,
        ctx: &Context<'_>,
        input: BookAppointmentInput,
    ) -> AppResult<AppointmentPayload> {
        let fields = model::AppointmentFields {
            customer_id: parse_optional_id(&input.customer_id, &["input", "customerId"])?,
            call_id: parse_optional_id(&input.call_id, &["input", "callId"])?,
            client_name: input.client_name,
            client_phone: input.client_phone,
            client_email: input.client_email.map(|e| e.trim().to_lowercase()),
            rdv_date: input.date,
            rdv_time: input.time,
            duration_minutes: input.duration_minutes,
            service_type: input.service_type,
            notes: input.notes,
        };
        write_payload(ctx, |conn, scope| {
            ops::book_appointment(conn, scope, fields).scope_boxed()
        })
        .await
    }

    /// Confirms, cancels, completes or marks a no-show.
    #[graphql(guard = "Access::Ingest")]
    async fn change_appointment(
        &self,
        ctx: &Context<'_>,
        input: ChangeAppointmentInput,
    ) -> AppResult<AppointmentPayload> {
        let id = parse_id(&input.id, &["input", "id"])?;
        let status = input.status;
        write_payload(ctx, |conn, scope| {
            ops::change_appointment(conn, scope, id, status).scope_boxed()
        })
        .await
    }

    /// Moves a pending or confirmed appointment to another date and time; its 24 h
    /// reminder goes out again before the new time.
    #[graphql(guard = "Access::Ingest")]
    async fn reschedule_appointment(
        &self,
        ctx: &Context<'_>,
        input: RescheduleAppointmentInput,
    ) -> AppResult<AppointmentPayload> {
        let id = parse_id(&input.id, &["input", "id"])?;
        let (date, time) = (input.date, input.time);
        write_payload(ctx, |conn, scope| {
            ops::reschedule_appointment(conn, scope, id, date, time).scope_boxed()
        })
        .await
    }

    /// Moves a ticket along (`open → in_progress → resolved → closed`, reopening a
    /// resolved one), reprioritises or assigns it.
    #[graphql(guard = "Access::Ingest")]
    async fn update_ticket(
        &self,
        ctx: &Context<'_>,
        input: UpdateTicketInput,
    ) -> AppResult<TicketPayload> {
        let id = parse_id(&input.id, &["input", "id"])?;
        let (status, priority) = (input.status, input.priority);
        let assigned_to = input.assigned_to.into();
        write_payload(ctx, |conn, scope| {
            ops::update_ticket(conn, scope, id, status, priority, assigned_to).scope_boxed()
        })
        .await
    }
}
