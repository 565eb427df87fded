use bigdecimal::BigDecimal;
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use uuid::Uuid;

use crate::db::schema::{
    avenir_profile_embeddings, outreach_campaigns, outreach_emails, outreach_metrics,
    outreach_tracking, prospect_candidates, prospect_form_tests, prospect_industry_performance,
};
use crate::domain::campaigns::metrics::FunnelCounts;
use crate::domain::campaigns::model::CampaignStatus;
use crate::domain::leads::model::Language;

/// The fields of an outreach campaign an update sets (`None`: left as it is).
#[derive(Debug, Default, PartialEq, AsChangeset)]
#[diesel(table_name = outreach_campaigns)]
pub struct OutreachCampaignChanges<'a> {
    pub name: Option<&'a str>,
    pub status: Option<CampaignStatus>,
    pub target_criteria: Option<serde_json::Value>,
    pub email_template_id: Option<Uuid>,
    pub follow_up_schedule: Option<serde_json::Value>,
}

text_enum!(pub OutreachAction {
    Sent => "sent",
    Delivered => "delivered",
    Opened => "opened",
    Clicked => "clicked",
    Replied => "replied",
    Bounced => "bounced",
    Unsubscribed => "unsubscribed",
});

#[derive(Debug, Clone, Queryable, Selectable, Identifiable)]
#[diesel(table_name = outreach_campaigns, check_for_backend(diesel::pg::Pg))]
pub struct OutreachCampaign {
    pub id: Uuid,
    pub name: String,
    pub status: CampaignStatus,
    pub target_criteria: serde_json::Value,
    pub email_template_id: Option<Uuid>,
    pub follow_up_schedule: serde_json::Value,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Queryable, Selectable, Identifiable)]
#[diesel(table_name = outreach_emails, check_for_backend(diesel::pg::Pg))]
pub struct OutreachEmail {
    pub id: Uuid,
    pub campaign_id: Uuid,
    pub prospect_id: Option<Uuid>,
    pub prospect_email: Option<String>,
    pub prospect_name: Option<String>,
    pub company_name: Option<String>,
    pub website: Option<String>,
    pub subject: String,
    pub content: String,
    pub status: OutreachEmailStatus,
    pub sent_at: Option<DateTime<Utc>>,
    pub opened_at: Option<DateTime<Utc>>,
    pub replied_at: Option<DateTime<Utc>>,
    pub follow_up_sequence: i32,
    pub sender_email: Option<String>,
    pub missing_email: bool,
    /// `text`: the plain body written with the HTML one.
    pub metadata: serde_json::Value,
    pub created_at: DateTime<Utc>,
}

impl OutreachEmail {
    /// The plain body sent beside the HTML one (the HTML itself when none was written).
    pub fn text(&self) -> String {
        self.metadata["text"]
            .as_str()
            .map_or_else(|| self.content.clone(), str::to_owned)
    }
}

#[derive(Debug, Clone, Queryable, Selectable, Identifiable)]
#[diesel(table_name = outreach_tracking, check_for_backend(diesel::pg::Pg))]
pub struct OutreachEvent {
    pub id: Uuid,
    pub email_id: Uuid,
    pub action: OutreachAction,
    pub timestamp: DateTime<Utc>,
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = outreach_metrics, check_for_backend(diesel::pg::Pg))]
pub struct OutreachCounters {
    pub campaign_id: Uuid,
    pub total_emails_sent: i32,
    pub total_emails_delivered: i32,
    pub total_emails_opened: i32,
    pub total_emails_clicked: i32,
    pub total_emails_replied: i32,
    pub total_emails_bounced: i32,
    pub total_emails_unsubscribed: i32,
}

impl From<&OutreachCounters> for FunnelCounts {
    fn from(c: &OutreachCounters) -> Self {
        FunnelCounts {
            recipients: 0,
            sent: c.total_emails_sent.into(),
            delivered: c.total_emails_delivered.into(),
            opened: c.total_emails_opened.into(),
            clicked: c.total_emails_clicked.into(),
            failed: 0,
            replied: c.total_emails_replied.into(),
            bounced: c.total_emails_bounced.into(),
            unsubscribed: c.total_emails_unsubscribed.into(),
        }
    }
}

crate::created_row!(OutreachCampaign);

text_enum!(pub OutreachEmailStatus {
    Pending => "pending",
    Approved => "approved",
    Rejected => "rejected",
    Sent => "sent",
    Delivered => "delivered",
    Opened => "opened",
    Replied => "replied",
    Bounced => "bounced",
});

impl OutreachEmailStatus {
    /// How far along the funnel: a status moves only to a higher rank. `bounced` is
    /// terminal and reachable only before the email was opened; `rejected` only from
    /// `pending`.
    pub fn rank(self) -> u8 {
        match self {
            Self::Pending => 0,
            Self::Approved | Self::Rejected => 1,
            Self::Sent => 2,
            Self::Delivered => 3,
            Self::Opened => 4,
            Self::Replied => 5,
            Self::Bounced => 6,
        }
    }

    /// Whether an email of this status may move to `next`.
    pub fn may_become(self, next: Self) -> bool {
        match (self, next) {
            (Self::Rejected | Self::Bounced | Self::Replied, _) => false,
            (_, Self::Bounced) => self.rank() <= Self::Delivered.rank(),
            (Self::Pending, Self::Approved | Self::Rejected) => true,
            (_, Self::Approved | Self::Rejected | Self::Pending) => false,
            _ => next.rank() > self.rank(),
        }
    }
}

text_enum!(pub FormTestStatus {
    Pending => "pending",
    Completed => "completed",
    Failed => "failed",
    Timeout => "timeout",
});

text_enum!(pub AutoresponderTone {
    Robotic => "robotic",
    Human => "human",
    Personalized => "personalized",
    None => "none",
});

#[derive(Debug, Clone, Queryable, Selectable, Identifiable)]
#[diesel(table_name = prospect_candidates, check_for_backend(diesel::pg::Pg))]
pub struct ProspectCandidate {
    pub id: Uuid,
    pub business_name: String,
    pub website: String,
    pub contact_email: Option<String>,
    pub industry: Option<String>,
    pub region: Option<String>,
    pub language: Language,
    pub form_url: Option<String>,
    pub last_tested: Option<DateTime<Utc>>,
    pub response_score: Option<i32>,
    pub automation_need_score: Option<i32>,
    pub contacted: bool,
    pub metadata: serde_json::Value,
    pub created_at: DateTime<Utc>,
    pub profile_similarity: Option<f64>,
}

#[derive(Debug, Clone, Queryable, Selectable, Identifiable)]
#[diesel(table_name = prospect_form_tests, check_for_backend(diesel::pg::Pg))]
pub struct FormTest {
    pub id: Uuid,
    pub prospect_id: Uuid,
    pub test_submitted_at: DateTime<Utc>,
    pub response_received_at: Option<DateTime<Utc>>,
    pub response_time_minutes: Option<i32>,
    pub has_autoresponder: bool,
    pub autoresponder_tone: AutoresponderTone,
    pub autoresponder_content: Option<String>,
    pub score: Option<i32>,
    pub test_status: FormTestStatus,
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = prospect_industry_performance, check_for_backend(diesel::pg::Pg))]
pub struct IndustryPerformance {
    pub industry: String,
    pub total_contacted: i32,
    pub total_opened: i32,
    pub total_replied: i32,
    pub open_rate: BigDecimal,
    pub reply_rate: BigDecimal,
    pub avg_response_time_hours: Option<BigDecimal>,
    pub priority_score: i32,
    pub last_updated: DateTime<Utc>,
}

/// A chunk of the tenant's own profile, embedded (its vector is not read back).
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = avenir_profile_embeddings, check_for_backend(diesel::pg::Pg))]
pub struct ProfileChunk {
    pub id: Uuid,
    pub chunk_text: String,
    pub embedding_model: String,
    pub metadata: serde_json::Value,
    pub created_at: DateTime<Utc>,
}

crate::created_row!(ProspectCandidate);
