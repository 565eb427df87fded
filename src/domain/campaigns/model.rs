use chrono::{DateTime, Utc};
use diesel::prelude::*;
use uuid::Uuid;

use crate::db::schema::{campaign_recipients, campaigns};

text_enum!(pub CampaignStatus {
    Draft => "draft",
    Active => "active",
    Paused => "paused",
    Completed => "completed",
});

text_enum!(pub RecipientStatus {
    Pending => "pending",
    Sent => "sent",
    Delivered => "delivered",
    Opened => "opened",
    Clicked => "clicked",
    Failed => "failed",
});

text_enum!(pub CampaignChannel {
    Email => "email",
    Sms => "sms",
    Phone => "phone",
    Push => "push",
});

#[derive(Debug, Clone, Queryable, Selectable, Identifiable)]
#[diesel(table_name = campaigns, check_for_backend(diesel::pg::Pg))]
pub struct Campaign {
    pub id: Uuid,
    pub name: String,
    pub description: Option<String>,
    pub status: CampaignStatus,
    pub channel: CampaignChannel,
    pub workflow_data: serde_json::Value,
    pub scheduled_at: Option<DateTime<Utc>>,
    pub started_at: Option<DateTime<Utc>>,
    pub completed_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Queryable, QueryableByName, Selectable, Identifiable)]
#[diesel(table_name = campaign_recipients, check_for_backend(diesel::pg::Pg))]
pub struct Recipient {
    pub id: Uuid,
    pub campaign_id: Uuid,
    pub customer_id: Option<Uuid>,
    pub channel: CampaignChannel,
    pub status: RecipientStatus,
    pub sent_at: Option<DateTime<Utc>>,
    pub delivered_at: Option<DateTime<Utc>>,
    pub opened_at: Option<DateTime<Utc>>,
    pub clicked_at: Option<DateTime<Utc>>,
    pub failed_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}
