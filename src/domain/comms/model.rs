use chrono::{DateTime, NaiveDate, NaiveTime, Utc};
use diesel::prelude::*;
use uuid::Uuid;

use crate::db::schema::{
    call_logs, channel_configurations, communication_log, prospects, rendez_vous, tickets,
};

text_enum!(pub Channel {
    Email => "email",
    Sms => "sms",
    Whatsapp => "whatsapp",
    Phone => "phone",
});

text_enum!(pub MessageStatus {
    Queued => "queued",
    Sent => "sent",
    Delivered => "delivered",
    Opened => "opened",
    Clicked => "clicked",
    Bounced => "bounced",
    Failed => "failed",
    Received => "received",
    /// Not sent: consent was missing at send time (the reason is in `errorMessage`).
    Suppressed => "suppressed",
    /// The recipient marked it as spam.
    Complained => "complained",
});

impl MessageStatus {
    /// How far along an outgoing message is: reports only move it forward, and the final
    /// states (bounced, failed, complained, suppressed) are final.
    pub fn stage(self) -> u8 {
        match self {
            MessageStatus::Queued | MessageStatus::Received => 0,
            MessageStatus::Sent => 1,
            MessageStatus::Delivered => 2,
            MessageStatus::Opened => 3,
            MessageStatus::Clicked => 4,
            MessageStatus::Bounced
            | MessageStatus::Failed
            | MessageStatus::Complained
            | MessageStatus::Suppressed => 5,
        }
    }
}

#[derive(Debug, Clone, Queryable, QueryableByName, Selectable, Identifiable)]
#[diesel(table_name = communication_log, check_for_backend(diesel::pg::Pg))]
pub struct Communication {
    pub id: Uuid,
    pub customer_id: Option<Uuid>,
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

text_enum!(pub CallStatus {
    Queued => "queued",
    Ringing => "ringing",
    InProgress => "in_progress",
    Completed => "completed",
    Failed => "failed",
    Busy => "busy",
    NoAnswer => "no_answer",
});

impl CallStatus {
    /// How far along a call is: a report never moves it back (the final states, 3, are
    /// final).
    pub fn stage(self) -> u8 {
        match self {
            CallStatus::Queued => 0,
            CallStatus::Ringing => 1,
            CallStatus::InProgress => 2,
            CallStatus::Completed
            | CallStatus::Failed
            | CallStatus::Busy
            | CallStatus::NoAnswer => 3,
        }
    }
}

text_enum!(pub CallProvider {
    Vapi => "vapi",
    Twilio => "twilio",
    Retell => "retell",
});

text_enum!(pub CallDirection {
    Inbound => "inbound",
    Outbound => "outbound",
});

text_enum!(pub CallAgent {
    Appointment => "appointment",
    Qualification => "qualification",
    Support => "support",
});

/// What a call report (`recordCall`) writes besides its identity and status: on a call
/// already recorded, a field left `None` keeps its value.
#[derive(Debug, Clone, Default, Insertable, AsChangeset)]
#[diesel(table_name = call_logs)]
pub struct CallFields {
    pub customer_id: Option<Uuid>,
    pub agent_type: Option<CallAgent>,
    pub from_number: Option<String>,
    pub to_number: Option<String>,
    pub duration_seconds: Option<i32>,
    pub recording_url: Option<String>,
    pub transcript: Option<String>,
    pub summary: Option<String>,
    pub started_at: Option<DateTime<Utc>>,
    pub ended_at: Option<DateTime<Utc>>,
}

/// A phone call handled by a voice agent (seed 002 `call_logs`).
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = call_logs, check_for_backend(diesel::pg::Pg))]
pub struct Call {
    pub id: Uuid,
    pub customer_id: Option<Uuid>,
    pub provider: String,
    pub direction: String,
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

text_enum!(pub AppointmentStatus {
    Pending => "pending",
    Confirmed => "confirmed",
    Cancelled => "cancelled",
    Completed => "completed",
    NoShow => "no_show",
});

/// What `bookAppointment` writes (a field left `None` takes its default).
#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = rendez_vous)]
pub struct AppointmentFields {
    pub client_name: String,
    pub client_phone: Option<String>,
    pub client_email: Option<String>,
    pub rdv_date: NaiveDate,
    pub rdv_time: NaiveTime,
    pub duration_minutes: Option<i32>,
    pub service_type: Option<String>,
    pub notes: Option<String>,
    pub customer_id: Option<Uuid>,
    pub call_id: Option<Uuid>,
}

/// An appointment booked by the appointment agent (seed 002 `rendez_vous`).
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = rendez_vous, check_for_backend(diesel::pg::Pg))]
pub struct Appointment {
    pub id: Uuid,
    pub customer_id: Option<Uuid>,
    pub call_id: Option<Uuid>,
    pub client_name: String,
    pub client_phone: Option<String>,
    pub client_email: Option<String>,
    pub rdv_date: NaiveDate,
    pub rdv_time: NaiveTime,
    pub duration_minutes: i32,
    pub service_type: Option<String>,
    pub notes: Option<String>,
    pub status: AppointmentStatus,
    pub reminder_24h_sent: bool,
    pub created_at: DateTime<Utc>,
}

text_enum!(pub TicketStatus {
    Open => "open",
    InProgress => "in_progress",
    Resolved => "resolved",
    Closed => "closed",
});

text_enum!(pub TicketPriority {
    Low => "low",
    Medium => "medium",
    High => "high",
    Urgent => "urgent",
});

text_enum!(
    /// Where a ticket came from.
    pub TicketChannel {
    Phone => "phone",
    Sms => "sms",
    Email => "email",
    Whatsapp => "whatsapp",
    Web => "web",
});

/// What `openTicket` writes (a field left `None` takes its default).
#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = tickets)]
pub struct TicketFields {
    pub subject: String,
    pub description: Option<String>,
    pub category: Option<String>,
    pub channel: Option<TicketChannel>,
    pub priority: Option<TicketPriority>,
    pub customer_id: Option<Uuid>,
    pub call_id: Option<Uuid>,
    pub customer_name: Option<String>,
    pub customer_email: Option<String>,
    pub customer_phone: Option<String>,
}

/// A support ticket (seed 002 `tickets`).
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = tickets, check_for_backend(diesel::pg::Pg))]
pub struct Ticket {
    pub id: Uuid,
    pub customer_id: Option<Uuid>,
    pub call_id: Option<Uuid>,
    pub ticket_number: String,
    pub subject: String,
    pub description: Option<String>,
    pub category: Option<String>,
    pub channel: String,
    pub priority: TicketPriority,
    pub status: TicketStatus,
    pub assigned_to: Option<String>,
    pub resolved_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

text_enum!(
    /// Who carries a channel: `configureChannel` accepts phone: twilio, vapi, retell; sms:
    /// twilio, redchirp; email: sendgrid, mailchimp, klaviyo, smtp, resend; whatsapp:
    /// twilio, whatsapp_business.
    pub ChannelProvider {
    Twilio => "twilio",
    Vapi => "vapi",
    Retell => "retell",
    Mailchimp => "mailchimp",
    Klaviyo => "klaviyo",
    Sendgrid => "sendgrid",
    Redchirp => "redchirp",
    Smtp => "smtp",
    Resend => "resend",
    WhatsappBusiness => "whatsapp_business",
});

impl ChannelProvider {
    /// Whether this provider carries `channel`.
    pub fn carries(self, channel: Channel) -> bool {
        use ChannelProvider::*;
        match channel {
            Channel::Phone => matches!(self, Twilio | Vapi | Retell),
            Channel::Sms => matches!(self, Twilio | Redchirp),
            Channel::Email => matches!(self, Sendgrid | Mailchimp | Klaviyo | Smtp | Resend),
            Channel::Whatsapp => matches!(self, Twilio | WhatsappBusiness),
        }
    }
}

/// What `configureChannel` writes: a field left `None` keeps its value (or its default
/// for a new configuration); `Some(None)` clears it. The sealed credentials and
/// `configured` change together.
#[derive(Debug, Clone, Default, AsChangeset, Insertable)]
#[diesel(table_name = channel_configurations)]
pub struct ChannelFields {
    pub enabled: Option<bool>,
    pub config_public: Option<serde_json::Value>,
    pub assistant_id: Option<Option<String>>,
    pub from_address: Option<Option<String>>,
    pub from_name: Option<Option<String>>,
    pub config_encrypted: Option<Option<Vec<u8>>>,
    pub configured: Option<bool>,
}

/// A channel's configuration; the encrypted credentials are never selected.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = channel_configurations, check_for_backend(diesel::pg::Pg))]
pub struct ChannelConfiguration {
    pub id: Uuid,
    pub channel_type: Channel,
    pub provider: String,
    pub enabled: bool,
    pub configured: bool,
    pub config_public: serde_json::Value,
    pub assistant_id: Option<String>,
    pub from_address: Option<String>,
    pub from_name: Option<String>,
    pub updated_at: DateTime<Utc>,
}

text_enum!(pub ProspectStatus {
    New => "new",
    Qualified => "qualified",
    Unqualified => "unqualified",
    Contacted => "contacted",
    Converted => "converted",
});

/// What `recordProspect` writes (a field left `None` takes its default). The source is
/// where the prospect came from, as for tickets.
#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = prospects)]
pub struct ProspectFields {
    pub name: String,
    pub phone: Option<String>,
    pub email: Option<String>,
    pub company: Option<String>,
    pub need: Option<String>,
    pub budget: Option<String>,
    pub timeline: Option<String>,
    pub qualification_score: Option<i32>,
    pub source: Option<TicketChannel>,
    pub notes: Option<String>,
    pub call_id: Option<Uuid>,
}

/// A caller qualified by the qualification agent (seed 002 `prospects`).
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = prospects, check_for_backend(diesel::pg::Pg))]
pub struct Prospect {
    pub id: Uuid,
    pub call_id: Option<Uuid>,
    pub name: String,
    pub phone: Option<String>,
    pub email: Option<String>,
    pub company: Option<String>,
    pub need: Option<String>,
    pub budget: Option<String>,
    pub timeline: Option<String>,
    pub qualification_score: Option<i32>,
    pub status: ProspectStatus,
    pub source: String,
    pub notes: Option<String>,
    pub created_at: DateTime<Utc>,
}

crate::created_row!(Communication, Call, Appointment, Ticket, Prospect);
