use chrono::{DateTime, Utc};
use diesel::prelude::*;
use uuid::Uuid;

use super::metrics::FunnelCounts;
use crate::db::schema::{
    campaign_delivery_counters, campaign_executions, campaign_recipients, campaigns,
};

/// The fields of a campaign an update sets (`None`: left as it is).
#[derive(Debug, Default, PartialEq, AsChangeset)]
#[diesel(table_name = campaigns)]
pub struct CampaignChanges<'a> {
    pub name: Option<&'a str>,
    pub description: Option<&'a str>,
    pub channel: Option<CampaignChannel>,
    pub workflow_data: Option<&'a serde_json::Value>,
    pub target_group_id: Option<Uuid>,
    pub target_segment: Option<&'a str>,
    pub scheduled_at: Option<DateTime<Utc>>,
}

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

impl RecipientStatus {
    /// Position along `pending → sent → delivered → opened → clicked`.
    pub fn rank(self) -> u8 {
        match self {
            RecipientStatus::Pending => 0,
            RecipientStatus::Sent => 1,
            RecipientStatus::Delivered => 2,
            RecipientStatus::Opened => 3,
            RecipientStatus::Clicked => 4,
            RecipientStatus::Failed => 5,
        }
    }
}

text_enum!(pub CampaignChannel {
    Email => "email",
    Sms => "sms",
    Phone => "phone",
    Push => "push",
});

text_enum!(pub ExecutionStatus {
    Running => "running",
    Completed => "completed",
    Failed => "failed",
    Cancelled => "cancelled",
});

#[derive(Debug, Clone, Queryable, QueryableByName, Selectable, Identifiable)]
#[diesel(table_name = campaigns, check_for_backend(diesel::pg::Pg))]
pub struct Campaign {
    pub id: Uuid,
    pub name: String,
    pub description: Option<String>,
    pub status: CampaignStatus,
    pub channel: CampaignChannel,
    pub workflow_data: serde_json::Value,
    pub target_group_id: Option<Uuid>,
    pub target_segment: Option<String>,
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
    pub execution_id: Uuid,
    pub customer_id: Option<Uuid>,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub channel: CampaignChannel,
    pub status: RecipientStatus,
    pub sent_at: Option<DateTime<Utc>>,
    pub delivered_at: Option<DateTime<Utc>>,
    pub opened_at: Option<DateTime<Utc>>,
    pub clicked_at: Option<DateTime<Utc>>,
    pub failed_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Queryable, Selectable, Identifiable)]
#[diesel(table_name = campaign_executions, check_for_backend(diesel::pg::Pg))]
pub struct Execution {
    pub id: Uuid,
    pub campaign_id: Uuid,
    pub execution_type: String,
    pub status: ExecutionStatus,
    pub execution_data: serde_json::Value,
    pub metrics: serde_json::Value,
    pub started_at: DateTime<Utc>,
    pub completed_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = campaign_delivery_counters, check_for_backend(diesel::pg::Pg))]
pub struct Counters {
    pub campaign_id: Uuid,
    pub recipients: i64,
    pub sent: i64,
    pub delivered: i64,
    pub opened: i64,
    pub clicked: i64,
    pub failed: i64,
}

impl From<&Counters> for FunnelCounts {
    fn from(c: &Counters) -> Self {
        FunnelCounts {
            recipients: c.recipients,
            sent: c.sent,
            delivered: c.delivered,
            opened: c.opened,
            clicked: c.clicked,
            failed: c.failed,
            ..FunnelCounts::default()
        }
    }
}
