//! Outreach campaigns and their emails: a campaign targets candidates (industry,
//! region, language, score range), renders one email per uncontacted candidate from its
//! template (`pending`), sends each once a person approved it and the campaign is
//! active, and follows up (its `followUpSchedule`) until a reply or a bounce. Status:
//! `draft → active ⇄ paused → completed`.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{Timestamptz, Uuid as SqlUuid};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use uuid::Uuid;

use crate::db::filter::FilterSome;
use crate::db::page::PageRequest;
use crate::db::schema::{
    outreach_campaigns, outreach_emails, outreach_metrics, outreach_tracking, prospect_candidates,
};
use crate::db::Tenant;
use crate::domain::campaigns::model::CampaignStatus;
use crate::domain::comms::model::Channel;
use crate::domain::leads::model::Language;
use crate::domain::messages::model::{CommunicationType, EmailTemplate};
use crate::domain::messages::ops::{deliver_many, AnyTemplate, Content, Outgoing};
use crate::domain::outreach::model::*;
use crate::domain::{
    check_required_text, check_text, events, user_error, OpResult, UserError, UserErrorCode,
};
use crate::error::AppResult;

/// At most this many emails per generation, and follow-ups per tick.
pub const MAX_GENERATED: i64 = 1_000;
/// At most this many follow-up steps, each at most this many days after the last email.
pub const MAX_FOLLOW_UPS: usize = 5;
pub const MAX_FOLLOW_UP_DAYS: i32 = 90;

pub async fn outreach_campaigns_by_ids(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
    ids: &[Uuid],
) -> QueryResult<Vec<OutreachCampaign>> {
    outreach_campaigns::table
        .filter(outreach_campaigns::tenant_id.eq(scope.id()))
        .filter(outreach_campaigns::id.eq_any(ids))
        .select(OutreachCampaign::as_select())
        .load(conn)
        .await
}

pub async fn list_outreach_campaigns(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
    page: &PageRequest<DateTime<Utc>>,
) -> AppResult<Vec<OutreachCampaign>> {
    use outreach_campaigns as o;
    let mut query = o::table
        .filter(o::tenant_id.eq(scope.id()))
        .select(OutreachCampaign::as_select())
        .limit(page.limit())
        .into_boxed();
    query = crate::keyset!(query, page, o::created_at, o::id, desc);
    Ok(query.load(conn).await?)
}

pub async fn outreach_counters_of(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
    ids: &[Uuid],
) -> QueryResult<Vec<OutreachCounters>> {
    outreach_metrics::table
        .filter(outreach_metrics::tenant_id.eq(scope.id()))
        .filter(outreach_metrics::campaign_id.eq_any(ids))
        .select(OutreachCounters::as_select())
        .load(conn)
        .await
}

pub async fn outreach_emails(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
    campaign: Option<Uuid>,
    page: &PageRequest<DateTime<Utc>>,
) -> AppResult<Vec<OutreachEmail>> {
    use outreach_emails as e;
    let mut query = e::table
        .filter(e::tenant_id.eq(scope.id()))
        .select(OutreachEmail::as_select())
        .limit(page.limit())
        .into_boxed()
        .filter_some(campaign, |v| e::campaign_id.eq(v));
    query = crate::keyset!(query, page, e::created_at, e::id, asc);
    Ok(query.load(conn).await?)
}

pub async fn outreach_emails_by_ids(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
    ids: &[Uuid],
) -> QueryResult<Vec<OutreachEmail>> {
    outreach_emails::table
        .filter(outreach_emails::tenant_id.eq(scope.id()))
        .filter(outreach_emails::id.eq_any(ids))
        .select(OutreachEmail::as_select())
        .load(conn)
        .await
}

pub async fn outreach_events_of(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
    emails: &[Uuid],
) -> QueryResult<Vec<OutreachEvent>> {
    outreach_tracking::table
        .filter(outreach_tracking::tenant_id.eq(scope.id()))
        .filter(outreach_tracking::email_id.eq_any(emails))
        .select(OutreachEvent::as_select())
        .order((outreach_tracking::timestamp, outreach_tracking::id))
        .load(conn)
        .await
}

// ---- campaigns ----------------------------------------------------------------------------

/// Which candidates a campaign writes to (`target_criteria`); each part applies when given.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Target {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub industry: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language: Option<Language>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub score_min: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub score_max: Option<i32>,
}

/// One follow-up: `after_days` after the email before it, from its own template or the
/// campaign's (then as a reply, `Re: …`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FollowUp {
    pub after_days: i32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template_id: Option<Uuid>,
}

/// What creating a campaign gives, or updating it changes (`None`: unchanged).
#[derive(Debug, Clone, Default)]
pub struct CampaignChange {
    pub name: Option<String>,
    pub target: Option<Target>,
    pub template_id: Option<Uuid>,
    pub follow_ups: Option<Vec<FollowUp>>,
    pub status: Option<CampaignStatus>,
}

fn invalid(field: &str, message: &str) -> crate::domain::OpError {
    user_error(UserErrorCode::Invalid, &["input", field], message)
}

/// An active email template of the tenant.
async fn active_template(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
    id: Uuid,
    field: &[&str],
) -> OpResult<EmailTemplate> {
    let template: EmailTemplate = crate::tenant_row!(
        conn,
        scope,
        email_templates,
        id,
        EmailTemplate::as_select(),
        field,
        "no such email template"
    )?;
    if !template.is_active {
        return Err(user_error(
            UserErrorCode::Invalid,
            field,
            "this template is not active",
        ));
    }
    Ok(template)
}

async fn check_change(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
    change: &CampaignChange,
) -> OpResult<()> {
    if let Some(name) = &change.name {
        check_required_text("name", name, 200)?;
    }
    if let Some(target) = &change.target {
        for (field, value) in [("industry", &target.industry), ("region", &target.region)] {
            check_text(field, value.as_deref(), 100)?;
        }
        let score = |s: Option<i32>| s.is_none_or(|s| (0..=100).contains(&s));
        if !score(target.score_min) || !score(target.score_max) {
            return Err(invalid("target", "scores are between 0 and 100"));
        }
        if let (Some(min), Some(max)) = (target.score_min, target.score_max) {
            if min > max {
                return Err(invalid("target", "scoreMin is above scoreMax"));
            }
        }
    }
    if let Some(template) = change.template_id {
        active_template(conn, scope, template, &["input", "emailTemplateId"]).await?;
    }
    if let Some(steps) = &change.follow_ups {
        if steps.len() > MAX_FOLLOW_UPS {
            return Err(invalid(
                "followUpSchedule",
                &format!("at most {MAX_FOLLOW_UPS} follow-ups"),
            ));
        }
        for step in steps {
            if !(1..=MAX_FOLLOW_UP_DAYS).contains(&step.after_days) {
                return Err(invalid(
                    "followUpSchedule",
                    &format!("a follow-up comes 1 to {MAX_FOLLOW_UP_DAYS} days after the email before it"),
                ));
            }
            if let Some(template) = step.template_id {
                active_template(conn, scope, template, &["input", "followUpSchedule"]).await?;
            }
        }
    }
    Ok(())
}

/// Creates a campaign (`draft`).
pub async fn create_outreach_campaign(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
    change: CampaignChange,
) -> OpResult<Uuid> {
    let name = change
        .name
        .clone()
        .ok_or_else(|| invalid("name", "a campaign has a name"))?;
    check_change(conn, scope, &change).await?;
    use outreach_campaigns as c;
    let id = diesel::insert_into(c::table)
        .values((
            c::tenant_id.eq(scope.id()),
            c::name.eq(name.trim()),
            c::target_criteria.eq(json!(change.target.unwrap_or_default())),
            c::email_template_id.eq(change.template_id),
            c::follow_up_schedule.eq(json!(change.follow_ups.unwrap_or_default())),
        ))
        .returning(c::id)
        .get_result(conn)
        .await?;
    events::record(conn, scope, "outreach.campaign_created", id, json!({})).await?;
    Ok(id)
}

/// Changes a campaign. A status moves `draft → active ⇄ paused → completed` (`draft`
/// may be completed too); a campaign becoming active sends its approved emails.
pub async fn update_outreach_campaign(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
    id: Uuid,
    change: CampaignChange,
) -> OpResult<Uuid> {
    use outreach_campaigns as c;
    let status: CampaignStatus = crate::tenant_row!(
        locked conn,
        scope,
        outreach_campaigns,
        id,
        c::status,
        &["input", "id"],
        "no such outreach campaign"
    )?;
    check_change(conn, scope, &change).await?;
    if let Some(next) = change.status {
        use CampaignStatus::*;
        let allowed = matches!(
            (status, next),
            (Draft, Active | Completed)
                | (Active, Paused | Completed)
                | (Paused, Active | Completed)
        );
        if !allowed && next != status {
            return Err(user_error(
                UserErrorCode::InvalidTransition,
                &["input", "status"],
                &format!(
                    "a {} campaign cannot become {}",
                    status.as_str(),
                    next.as_str()
                ),
            ));
        }
    }
    let next = change.status.filter(|next| *next != status);
    let changes = OutreachCampaignChanges {
        name: change.name.as_deref().map(str::trim),
        status: next,
        target_criteria: change.target.as_ref().map(|target| json!(target)),
        email_template_id: change.template_id,
        follow_up_schedule: change.follow_ups.as_ref().map(|steps| json!(steps)),
    };
    crate::tenant_row!(change conn, scope, outreach_campaigns, id, changes);
    if let Some(next) = next {
        events::record(
            conn,
            scope,
            "outreach.campaign_status_changed",
            id,
            json!({ "from": status, "to": next }),
        )
        .await?;
        if next == CampaignStatus::Active {
            let approved: Vec<OutreachEmail> = outreach_emails::table
                .filter(outreach_emails::tenant_id.eq(scope.id()))
                .filter(outreach_emails::campaign_id.eq(id))
                .filter(outreach_emails::status.eq(OutreachEmailStatus::Approved))
                .select(OutreachEmail::as_select())
                .load(conn)
                .await?;
            send(conn, scope, &approved).await?;
        }
    }
    Ok(id)
}

// ---- emails -------------------------------------------------------------------------------

/// What a generation did: how many emails it wrote, and the candidates it could not
/// write to (their template did not render for them).
#[derive(Debug, Default)]
pub struct Generated {
    pub created: usize,
    pub refused: Vec<UserError>,
}

/// The variables an outreach template renders with, from its candidate.
fn variables_of(candidate: &ProspectCandidate, follow_up: i32) -> Value {
    let name = candidate
        .metadata
        .get("contactName")
        .and_then(Value::as_str)
        .unwrap_or(&candidate.business_name);
    json!({
        "name": name,
        "company": candidate.business_name,
        "businessName": candidate.business_name,
        "website": candidate.website,
        "industry": candidate.industry,
        "region": candidate.region,
        "language": candidate.language,
        "followUp": follow_up,
    })
}

/// An email rendered for a candidate, ready to insert.
struct Draft {
    prospect: Uuid,
    email: Option<String>,
    company: String,
    website: String,
    template: Uuid,
    subject: String,
    content: String,
    text: String,
    sequence: i32,
    status: OutreachEmailStatus,
}

fn render(
    template: &EmailTemplate,
    candidate: &ProspectCandidate,
    sequence: i32,
    reply_to: Option<&str>,
    status: OutreachEmailStatus,
) -> Result<Draft, UserError> {
    let rendered =
        AnyTemplate::Email(template.clone()).render(&variables_of(candidate, sequence))?;
    let text = rendered
        .text
        .clone()
        .or_else(|| rendered.html.clone())
        .unwrap_or_default();
    let subject = match reply_to {
        Some(first) if first.starts_with("Re: ") => first.to_owned(),
        Some(first) => format!("Re: {first}"),
        None => rendered.subject.unwrap_or_else(|| template.subject.clone()),
    };
    Ok(Draft {
        prospect: candidate.id,
        email: candidate.contact_email.clone(),
        company: candidate.business_name.clone(),
        website: candidate.website.clone(),
        template: template.id,
        subject,
        content: rendered.html.unwrap_or_else(|| text.clone()),
        text,
        sequence,
        status,
    })
}

/// Inserts drafts (one per candidate, campaign and step: a step already written is
/// skipped) and answers the emails written.
async fn insert_drafts(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
    campaign: Uuid,
    drafts: Vec<Draft>,
) -> QueryResult<Vec<OutreachEmail>> {
    if drafts.is_empty() {
        return Ok(Vec::new());
    }
    use outreach_emails as e;
    let rows: Vec<_> = drafts
        .iter()
        .map(|d| {
            (
                e::tenant_id.eq(scope.id()),
                e::campaign_id.eq(campaign),
                e::prospect_id.eq(d.prospect),
                e::prospect_email.eq(d.email.as_deref()),
                e::prospect_name.eq(&d.company),
                e::company_name.eq(&d.company),
                e::website.eq(&d.website),
                e::template_id.eq(d.template),
                e::subject.eq(&d.subject),
                e::content.eq(&d.content),
                e::status.eq(d.status),
                e::follow_up_sequence.eq(d.sequence),
                e::missing_email.eq(d.email.is_none()),
                e::metadata.eq(json!({ "text": d.text })),
            )
        })
        .collect();
    diesel::insert_into(e::table)
        .values(rows)
        .on_conflict_do_nothing()
        .returning(OutreachEmail::as_returning())
        .get_results(conn)
        .await
}

/// Writes one email (`pending`, first of its sequence) per candidate the campaign
/// targets that was never contacted and has no email of this campaign yet, the highest
/// scores first, at most [`MAX_GENERATED`] per call. Racing generations write each
/// email once.
pub async fn generate_outreach_emails(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
    campaign: Uuid,
) -> OpResult<Generated> {
    use prospect_candidates as p;
    let (status, target, template): (CampaignStatus, Value, Option<Uuid>) = crate::tenant_row!(
        locked conn,
        scope,
        outreach_campaigns,
        campaign,
        (
            outreach_campaigns::status,
            outreach_campaigns::target_criteria,
            outreach_campaigns::email_template_id
        ),
        &["input", "campaignId"],
        "no such outreach campaign"
    )?;
    if !matches!(status, CampaignStatus::Draft | CampaignStatus::Active) {
        return Err(user_error(
            UserErrorCode::InvalidTransition,
            &["input", "campaignId"],
            &format!("a {} campaign writes no more emails", status.as_str()),
        ));
    }
    let template =
        template.ok_or_else(|| invalid("campaignId", "the campaign has no email template"))?;
    let template = active_template(conn, scope, template, &["input", "campaignId"]).await?;
    let target: Target = serde_json::from_value(target).unwrap_or_default();
    let query = p::table
        .filter(p::tenant_id.eq(scope.id()))
        .filter(p::contacted.eq(false))
        .filter(diesel::dsl::not(diesel::dsl::exists(
            outreach_emails::table
                .filter(outreach_emails::tenant_id.eq(scope.id()))
                .filter(outreach_emails::campaign_id.eq(campaign))
                .filter(outreach_emails::prospect_id.eq(p::id.nullable())),
        )))
        .select(ProspectCandidate::as_select())
        .order((
            p::automation_need_score.desc().nulls_last(),
            p::created_at,
            p::id,
        ))
        .limit(MAX_GENERATED)
        .into_boxed()
        .filter_some(target.industry, |v| p::industry.eq(v))
        .filter_some(target.region, |v| p::region.eq(v))
        .filter_some(target.language, |v| p::language.eq(v))
        .filter_some(target.score_min, |v| p::automation_need_score.ge(v))
        .filter_some(target.score_max, |v| p::automation_need_score.le(v));
    let candidates: Vec<ProspectCandidate> = query.load(conn).await?;
    let mut generated = Generated::default();
    let mut drafts = Vec::with_capacity(candidates.len());
    for candidate in &candidates {
        match render(&template, candidate, 1, None, OutreachEmailStatus::Pending) {
            Ok(draft) => drafts.push(draft),
            Err(refusal) => generated.refused.push(UserError::new(
                refusal.code,
                &["input", "campaignId"],
                format!("{}: {}", candidate.business_name, refusal.message),
            )),
        }
    }
    generated.created = insert_drafts(conn, scope, campaign, drafts).await?.len();
    if generated.created > 0 {
        events::record(
            conn,
            scope,
            "outreach.emails_generated",
            campaign,
            json!({ "created": generated.created }),
        )
        .await?;
    }
    Ok(generated)
}

/// Queues emails through the delivery path (once each: the email's id is the message's
/// idempotency key); the send moves them to `sent`.
async fn send(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
    emails: &[OutreachEmail],
) -> OpResult<()> {
    let batch = emails
        .iter()
        .filter_map(|email| {
            let to = email.prospect_email.clone()?;
            let text = email.text();
            Some(Outgoing {
                channel: Channel::Email,
                customer_id: None,
                to: Some(to),
                content: Content::Written {
                    subject: Some(email.subject.clone()),
                    text,
                    html: Some(email.content.clone()),
                },
                communication_type: Some(CommunicationType::Marketing),
                idempotency_key: Some(format!("outreach/{}", email.id)),
                campaign_recipient_id: None,
                outreach_email_id: Some(email.id),
                email_sequence_id: None,
            })
        })
        .collect();
    for answer in deliver_many(conn, scope, batch).await? {
        answer?;
    }
    Ok(())
}

/// A person's decision on a pending email: `approved` (it is sent at once when its
/// campaign is active, else when the campaign becomes active; an email without an address
/// is not approved) or `rejected` (it is never sent). Each email is decided once.
pub async fn decide_outreach_email(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
    id: Uuid,
    decision: OutreachEmailStatus,
) -> OpResult<Uuid> {
    let email = decide(conn, scope, id, decision).await?;
    if decision != OutreachEmailStatus::Approved {
        return Ok(id);
    }
    if email.missing_email {
        return Err(user_error(
            UserErrorCode::Invalid,
            &["id"],
            "this prospect has no email address to send to",
        ));
    }
    let active: CampaignStatus = outreach_campaigns::table
        .filter(outreach_campaigns::tenant_id.eq(scope.id()))
        .filter(outreach_campaigns::id.eq(email.campaign_id))
        .select(outreach_campaigns::status)
        .first(conn)
        .await?;
    if active == CampaignStatus::Active {
        send(conn, scope, &[email]).await?;
    }
    Ok(id)
}

/// Records a decision on a pending email (`INVALID_TRANSITION` once decided).
async fn decide(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
    id: Uuid,
    decision: OutreachEmailStatus,
) -> OpResult<OutreachEmail> {
    use outreach_emails as e;
    let email: OutreachEmail = crate::tenant_row!(
        locked conn,
        scope,
        outreach_emails,
        id,
        OutreachEmail::as_select(),
        &["id"],
        "no such outreach email"
    )?;
    if email.status != OutreachEmailStatus::Pending {
        return Err(user_error(
            UserErrorCode::InvalidTransition,
            &["id"],
            &format!("this email is {}, not pending", email.status.as_str()),
        ));
    }
    diesel::update(
        e::table
            .filter(e::tenant_id.eq(scope.id()))
            .filter(e::id.eq(id)),
    )
    .set(e::status.eq(decision))
    .execute(conn)
    .await?;
    events::record(
        conn,
        scope,
        "outreach.email_decided",
        email.campaign_id,
        json!({ "emailId": id, "status": decision }),
    )
    .await?;
    Ok(OutreachEmail {
        status: decision,
        ..email
    })
}

#[derive(QueryableByName)]
struct DueFollowUp {
    #[diesel(sql_type = SqlUuid)]
    campaign_id: Uuid,
    #[diesel(sql_type = SqlUuid)]
    prospect_id: Uuid,
    #[diesel(sql_type = diesel::sql_types::Integer)]
    follow_up_sequence: i32,
    #[diesel(sql_type = diesel::sql_types::Jsonb)]
    follow_up_schedule: Value,
    #[diesel(sql_type = diesel::sql_types::Nullable<SqlUuid>)]
    email_template_id: Option<Uuid>,
    #[diesel(sql_type = diesel::sql_types::Text)]
    first_subject: String,
}

/// Writes and sends the follow-ups due at `now` (the scheduler's task): for each
/// prospect of an active campaign whose latest email was sent, neither replied to,
/// bounced nor unsubscribed from, once its step's days have passed; at most [`MAX_GENERATED`] per call.
/// Racing ticks write each follow-up once.
pub async fn send_follow_ups(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
    now: DateTime<Utc>,
) -> OpResult<usize> {
    let due: Vec<DueFollowUp> = diesel::sql_query(
        "SELECT e.campaign_id, e.prospect_id, e.follow_up_sequence, c.follow_up_schedule,
                c.email_template_id, f.subject AS first_subject
         FROM outreach_emails e
         JOIN outreach_campaigns c ON c.tenant_id = e.tenant_id AND c.id = e.campaign_id
         JOIN outreach_emails f ON f.tenant_id = e.tenant_id AND f.campaign_id = e.campaign_id
              AND f.prospect_id = e.prospect_id AND f.follow_up_sequence = 1
         WHERE e.tenant_id = $1 AND c.status = 'active' AND e.prospect_id IS NOT NULL
           AND e.status IN ('sent', 'delivered', 'opened') AND e.sent_at IS NOT NULL
           AND jsonb_typeof(c.follow_up_schedule) = 'array'
           AND jsonb_array_length(c.follow_up_schedule) >= e.follow_up_sequence
           AND e.sent_at + make_interval(days => CASE
                   WHEN (c.follow_up_schedule -> (e.follow_up_sequence - 1) ->> 'afterDays') ~ '^[0-9]{1,3}$'
                   THEN (c.follow_up_schedule -> (e.follow_up_sequence - 1) ->> 'afterDays')::integer END) <= $2
           AND NOT EXISTS (
               SELECT 1 FROM outreach_emails n
               WHERE n.tenant_id = e.tenant_id AND n.campaign_id = e.campaign_id
                 AND n.prospect_id = e.prospect_id
                 AND (n.follow_up_sequence > e.follow_up_sequence OR n.status IN ('replied', 'bounced')
                      OR 'unsubscribed' = ANY(n.funnel_counted)))
         ORDER BY e.sent_at, e.id
         LIMIT 1000",
    )
    .bind::<SqlUuid, _>(scope.id())
    .bind::<Timestamptz, _>(now)
    .load(conn)
    .await?;
    if due.is_empty() {
        return Ok(0);
    }
    let prospects: Vec<Uuid> = due.iter().map(|d| d.prospect_id).collect();
    let candidates = super::candidates_by_ids(conn, scope, &prospects).await?;
    let mut sent = 0;
    let mut templates: std::collections::HashMap<Uuid, Option<EmailTemplate>> = Default::default();
    let mut by_campaign: std::collections::BTreeMap<Uuid, Vec<Draft>> = Default::default();
    for step in &due {
        let Some(candidate) = candidates.iter().find(|c| c.id == step.prospect_id) else {
            continue;
        };
        let schedule: Vec<FollowUp> =
            serde_json::from_value(step.follow_up_schedule.clone()).unwrap_or_default();
        let Some(follow_up) = schedule.get(step.follow_up_sequence as usize - 1) else {
            continue;
        };
        let Some(template_id) = follow_up.template_id.or(step.email_template_id) else {
            continue;
        };
        if let std::collections::hash_map::Entry::Vacant(slot) = templates.entry(template_id) {
            // A template retired or deactivated since: no follow-up from it.
            slot.insert(match active_template(conn, scope, template_id, &[]).await {
                Ok(template) => Some(template),
                Err(crate::domain::OpError::User(_)) => None,
                Err(error) => return Err(error),
            });
        }
        let Some(Some(template)) = templates.get(&template_id) else {
            continue;
        };
        let reply_to = follow_up
            .template_id
            .is_none()
            .then_some(step.first_subject.as_str());
        if let Ok(draft) = render(
            template,
            candidate,
            step.follow_up_sequence + 1,
            reply_to,
            OutreachEmailStatus::Approved,
        ) {
            by_campaign.entry(step.campaign_id).or_default().push(draft);
        }
    }
    for (campaign, drafts) in by_campaign {
        let written = insert_drafts(conn, scope, campaign, drafts).await?;
        sent += written.len();
        send(conn, scope, &written).await?;
    }
    Ok(sent)
}
