use chrono::{DateTime, Utc};
use diesel::prelude::*;
use uuid::Uuid;

use crate::db::schema::communication_log;

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
});

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
