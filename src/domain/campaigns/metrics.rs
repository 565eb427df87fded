//! The one delivery-funnel machinery, shared by CRM campaigns (seed 003) and outreach
//! campaigns (seed 001): counters kept exact by the operations that move messages, and
//! the rates derived from them. Every rate is over `sent` except click-to-open (over
//! `opened`); a rate whose denominator is 0 is 0.

use async_graphql::SimpleObject;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FunnelCounts {
    pub recipients: i64,
    pub sent: i64,
    pub delivered: i64,
    pub opened: i64,
    pub clicked: i64,
    pub failed: i64,
    pub replied: i64,
    pub bounced: i64,
    pub unsubscribed: i64,
}

fn rate(numerator: i64, denominator: i64) -> f64 {
    if denominator == 0 {
        0.0
    } else {
        numerator as f64 / denominator as f64
    }
}

/// Counts and rates of one campaign's funnel.
#[derive(SimpleObject, Clone, Debug, PartialEq)]
pub struct CampaignMetrics {
    pub recipients: i64,
    /// Recipients that reached `sent` or any later state.
    pub sent: i64,
    pub delivered: i64,
    pub opened: i64,
    pub clicked: i64,
    pub failed: i64,
    pub delivery_rate: f64,
    pub open_rate: f64,
    pub click_rate: f64,
    pub click_to_open_rate: f64,
    pub failure_rate: f64,
}

impl From<FunnelCounts> for CampaignMetrics {
    fn from(c: FunnelCounts) -> Self {
        CampaignMetrics {
            recipients: c.recipients,
            sent: c.sent,
            delivered: c.delivered,
            opened: c.opened,
            clicked: c.clicked,
            failed: c.failed,
            delivery_rate: rate(c.delivered, c.sent),
            open_rate: rate(c.opened, c.sent),
            click_rate: rate(c.clicked, c.sent),
            click_to_open_rate: rate(c.clicked, c.opened),
            failure_rate: rate(c.failed, c.sent),
        }
    }
}

/// The outreach funnel: the campaign metrics plus replies, bounces, unsubscribes.
#[derive(SimpleObject, Clone, Debug, PartialEq)]
pub struct OutreachMetrics {
    pub sent: i64,
    pub delivered: i64,
    pub opened: i64,
    pub clicked: i64,
    pub replied: i64,
    pub bounced: i64,
    pub unsubscribed: i64,
    pub delivery_rate: f64,
    pub open_rate: f64,
    pub click_rate: f64,
    pub click_to_open_rate: f64,
    pub reply_rate: f64,
    pub bounce_rate: f64,
}

impl From<FunnelCounts> for OutreachMetrics {
    fn from(c: FunnelCounts) -> Self {
        let base = CampaignMetrics::from(c);
        OutreachMetrics {
            sent: c.sent,
            delivered: c.delivered,
            opened: c.opened,
            clicked: c.clicked,
            replied: c.replied,
            bounced: c.bounced,
            unsubscribed: c.unsubscribed,
            delivery_rate: base.delivery_rate,
            open_rate: base.open_rate,
            click_rate: base.click_rate,
            click_to_open_rate: base.click_to_open_rate,
            reply_rate: rate(c.replied, c.sent),
            bounce_rate: rate(c.bounced, c.sent),
        }
    }
}
