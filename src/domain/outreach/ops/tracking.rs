//! The funnel of an outreach email. Every event is kept (`outreach_tracking`); each
//! funnel step counts once per email in its campaign's metrics and its industry's
//! performance, whether recorded or implied by a later step (an open implies the send
//! and the delivery; a reply, the open), so every rate over `sent` stays within 0–1. The
//! email's status moves forward only (`approved → sent → delivered → opened → replied`;
//! `bounced` before an open, terminal). All of it in the transaction of the event.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{Integer, Nullable, Numeric, Text, Uuid as SqlUuid};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use serde_json::json;
use uuid::Uuid;

use super::candidates::{rescore, Rescore};
use crate::db::schema::{
    outreach_emails, outreach_tracking, prospect_candidates, prospect_outreach_log,
};
use crate::db::Tenant;
use crate::domain::outreach::model::{OutreachAction, OutreachEmailStatus, OutreachEvent};
use crate::domain::{check_text, events, user_error, OpResult, UserErrorCode};

/// The funnel steps an event of `action` reaches: itself and the steps it implies.
pub fn funnel_steps(action: OutreachAction) -> &'static [OutreachAction] {
    use OutreachAction::*;
    match action {
        Sent => &[Sent],
        Delivered => &[Sent, Delivered],
        Opened => &[Sent, Delivered, Opened],
        Clicked => &[Sent, Delivered, Opened, Clicked],
        Replied => &[Sent, Delivered, Opened, Replied],
        Bounced => &[Sent, Bounced],
        Unsubscribed => &[Sent, Delivered, Unsubscribed],
    }
}

/// The funnel steps an event reached first for its email.
struct Newly(Vec<OutreachAction>);

impl Newly {
    /// 1 when `step` is one of them, else 0 (what a counter adds).
    fn count(&self, step: OutreachAction) -> i32 {
        i32::from(self.0.contains(&step))
    }
}

/// The status an event moves its email to (when the email may move there).
fn status_after(action: OutreachAction) -> Option<OutreachEmailStatus> {
    match action {
        OutreachAction::Sent => Some(OutreachEmailStatus::Sent),
        OutreachAction::Delivered => Some(OutreachEmailStatus::Delivered),
        OutreachAction::Opened | OutreachAction::Clicked => Some(OutreachEmailStatus::Opened),
        OutreachAction::Replied => Some(OutreachEmailStatus::Replied),
        OutreachAction::Bounced => Some(OutreachEmailStatus::Bounced),
        OutreachAction::Unsubscribed => None,
    }
}

/// `numerator / denominator` rounded as the rate columns keep it; 0 over 0.
fn rate_sql(numerator: &str, denominator: &str) -> String {
    format!(
        "round(CASE WHEN ({denominator}) = 0 THEN 0 ELSE least(1, ({numerator})::numeric / ({denominator})) END, 4)"
    )
}

/// Records one event of an outreach email (the provider's, through the delivery path,
/// or a partner's): see the module. A reply may carry its text (kept on the send's log
/// row). Events of an email never approved are refused.
pub async fn record_outreach_event(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
    email_id: Uuid,
    action: OutreachAction,
    at: DateTime<Utc>,
    reply: Option<&str>,
) -> OpResult<OutreachEvent> {
    use outreach_emails as e;
    check_text("replyContent", reply, 100_000)?;
    if reply.is_some() && action != OutreachAction::Replied {
        return Err(user_error(
            UserErrorCode::Invalid,
            &["input", "replyContent"],
            "only a reply has reply content",
        ));
    }
    type Email = (
        Uuid,
        Option<Uuid>,
        OutreachEmailStatus,
        Vec<Option<String>>,
        Option<DateTime<Utc>>,
        String,
        String,
    );
    let (campaign, prospect, status, counted, sent_at, subject, content): Email = crate::tenant_row!(
        locked conn,
        scope,
        outreach_emails,
        email_id,
        (e::campaign_id, e::prospect_id, e::status, e::funnel_counted, e::sent_at, e::subject, e::content),
        &["input", "emailId"],
        "no such outreach email"
    )?;
    if matches!(
        status,
        OutreachEmailStatus::Pending | OutreachEmailStatus::Rejected
    ) {
        return Err(user_error(
            UserErrorCode::InvalidTransition,
            &["input", "emailId"],
            "this outreach email was never approved, so it was never sent",
        ));
    }
    let event = diesel::insert_into(outreach_tracking::table)
        .values((
            outreach_tracking::tenant_id.eq(scope.id()),
            outreach_tracking::email_id.eq(email_id),
            outreach_tracking::prospect_id.eq(prospect),
            outreach_tracking::campaign_id.eq(campaign),
            outreach_tracking::action.eq(action),
            outreach_tracking::timestamp.eq(at),
        ))
        .returning(OutreachEvent::as_returning())
        .get_result(conn)
        .await?;
    let new: Vec<OutreachAction> = funnel_steps(action)
        .iter()
        .copied()
        .filter(|step| !counted.iter().any(|c| c.as_deref() == Some(step.as_str())))
        .collect();
    let counts = Newly(new.clone());
    if !new.is_empty() {
        count_in_campaign(conn, scope, campaign, &counts).await?;
    }
    let next = status_after(action).filter(|next| status.may_become(*next));
    let mut now_counted = counted;
    now_counted.extend(new.iter().map(|s| Some(s.as_str().to_owned())));
    let first_sent = sent_at.is_none() && new.contains(&OutreachAction::Sent);
    diesel::update(
        e::table
            .filter(e::tenant_id.eq(scope.id()))
            .filter(e::id.eq(email_id)),
    )
    .set((
        e::status.eq(next.unwrap_or(status)),
        e::funnel_counted.eq(&now_counted),
        e::sent_at.eq(sent_at.or(first_sent.then_some(at))),
        e::opened_at.eq(diesel::dsl::case_when(
            e::opened_at.is_null().and(
                counts
                    .count(OutreachAction::Opened)
                    .into_sql::<Integer>()
                    .eq(1),
            ),
            Some(at),
        )
        .otherwise(e::opened_at)),
        e::replied_at.eq(diesel::dsl::case_when(
            e::replied_at.is_null().and(
                counts
                    .count(OutreachAction::Replied)
                    .into_sql::<Integer>()
                    .eq(1),
            ),
            Some(at),
        )
        .otherwise(e::replied_at)),
    ))
    .execute(conn)
    .await?;
    if let Some(prospect) = prospect {
        if first_sent {
            log_send(conn, scope, prospect, email_id, &subject, &content, at).await?;
        }
        if let Some(next) = next {
            move_log(conn, scope, email_id, next, at, reply).await?;
        }
        count_in_industry(conn, scope, prospect, &counts, sent_at.unwrap_or(at), at).await?;
    }
    events::record(
        conn,
        scope,
        "outreach.event_recorded",
        campaign,
        json!({ "emailId": email_id, "action": action }),
    )
    .await?;
    Ok(event)
}

/// Adds an email's newly reached steps to its campaign's counters and rates.
async fn count_in_campaign(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
    campaign: Uuid,
    counts: &Newly,
) -> diesel::QueryResult<()> {
    use OutreachAction::*;
    let sent = "total_emails_sent + $3";
    let sql = format!(
        "UPDATE outreach_metrics m SET
             total_emails_sent = m.total_emails_sent + $3,
             total_emails_delivered = m.total_emails_delivered + $4,
             total_emails_opened = m.total_emails_opened + $5,
             total_emails_clicked = m.total_emails_clicked + $6,
             total_emails_replied = m.total_emails_replied + $7,
             total_emails_bounced = m.total_emails_bounced + $8,
             total_emails_unsubscribed = m.total_emails_unsubscribed + $9,
             open_rate = {open}, click_rate = {click}, reply_rate = {reply}, bounce_rate = {bounce}
         WHERE m.tenant_id = $1 AND m.campaign_id = $2",
        open = rate_sql("m.total_emails_opened + $5", &format!("m.{sent}")),
        click = rate_sql("m.total_emails_clicked + $6", &format!("m.{sent}")),
        reply = rate_sql("m.total_emails_replied + $7", &format!("m.{sent}")),
        bounce = rate_sql("m.total_emails_bounced + $8", &format!("m.{sent}")),
    );
    // The row is made first (counters 0), then moved.
    diesel::sql_query(
        "INSERT INTO outreach_metrics (tenant_id, campaign_id) VALUES ($1, $2)
         ON CONFLICT (tenant_id, campaign_id) DO NOTHING",
    )
    .bind::<SqlUuid, _>(scope.id())
    .bind::<SqlUuid, _>(campaign)
    .execute(conn)
    .await?;
    diesel::sql_query(sql)
        .bind::<SqlUuid, _>(scope.id())
        .bind::<SqlUuid, _>(campaign)
        .bind::<Integer, _>(counts.count(Sent))
        .bind::<Integer, _>(counts.count(Delivered))
        .bind::<Integer, _>(counts.count(Opened))
        .bind::<Integer, _>(counts.count(Clicked))
        .bind::<Integer, _>(counts.count(Replied))
        .bind::<Integer, _>(counts.count(Bounced))
        .bind::<Integer, _>(counts.count(Unsubscribed))
        .execute(conn)
        .await?;
    Ok(())
}

/// The send's row of `prospect_outreach_log` (once per email).
async fn log_send(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
    prospect: Uuid,
    email: Uuid,
    subject: &str,
    body: &str,
    at: DateTime<Utc>,
) -> diesel::QueryResult<()> {
    use prospect_outreach_log as l;
    diesel::insert_into(l::table)
        .values((
            l::tenant_id.eq(scope.id()),
            l::prospect_id.eq(prospect),
            l::email_id.eq(email),
            l::subject.eq(subject),
            l::email_body.eq(body),
            l::sent_at.eq(at),
        ))
        .on_conflict((l::tenant_id, l::email_id))
        .do_nothing()
        .execute(conn)
        .await?;
    Ok(())
}

/// Moves the send's log row forward with its email (`sent → opened → replied`,
/// `bounced` from `sent`).
async fn move_log(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
    email: Uuid,
    status: OutreachEmailStatus,
    at: DateTime<Utc>,
    reply: Option<&str>,
) -> diesel::QueryResult<()> {
    use prospect_outreach_log as l;
    let row = l::table
        .filter(l::tenant_id.eq(scope.id()))
        .filter(l::email_id.eq(email));
    match status {
        OutreachEmailStatus::Opened => {
            diesel::update(row.filter(l::status.eq("sent")))
                .set((l::status.eq("opened"), l::opened_at.eq(at)))
                .execute(conn)
                .await?
        }
        OutreachEmailStatus::Replied => {
            diesel::update(row.filter(l::status.eq_any(["sent", "opened", "ignored"])))
                .set((
                    l::status.eq("replied"),
                    l::opened_at.eq(diesel::dsl::case_when(l::opened_at.is_null(), Some(at))
                        .otherwise(l::opened_at)),
                    l::replied_at.eq(at),
                    l::reply_content.eq(reply),
                ))
                .execute(conn)
                .await?
        }
        OutreachEmailStatus::Bounced => {
            diesel::update(row.filter(l::status.eq("sent")))
                .set(l::status.eq("bounced"))
                .execute(conn)
                .await?
        }
        _ => 0,
    };
    Ok(())
}

/// Adds an email's newly reached steps to its prospect's industry (contacted, opened,
/// replied, the mean time to a reply), marks the prospect contacted, and scores the
/// industry's candidates again when its priority moves by a tenth.
async fn count_in_industry(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
    prospect: Uuid,
    counts: &Newly,
    sent_at: DateTime<Utc>,
    at: DateTime<Utc>,
) -> diesel::QueryResult<()> {
    use OutreachAction::*;
    let (contacted, opened, replied) = (
        counts.count(Sent),
        counts.count(Opened),
        counts.count(Replied),
    );
    let industry: Option<String> = prospect_candidates::table
        .filter(prospect_candidates::tenant_id.eq(scope.id()))
        .filter(prospect_candidates::id.eq(prospect))
        .select(prospect_candidates::industry)
        .first(conn)
        .await
        .optional()?
        .flatten();
    let mut moved = false;
    if let (Some(industry), true) = (&industry, contacted + opened + replied > 0) {
        diesel::sql_query(
            "INSERT INTO prospect_industry_performance (tenant_id, industry) VALUES ($1, $2)
             ON CONFLICT (tenant_id, industry) DO NOTHING",
        )
        .bind::<SqlUuid, _>(scope.id())
        .bind::<Text, _>(industry)
        .execute(conn)
        .await?;
        let hours = (replied == 1).then(|| {
            let hours = (at - sent_at).num_seconds().max(0) as f64 / 3600.0;
            bigdecimal::BigDecimal::try_from(hours.min(999_999.0)).unwrap_or_default()
        });
        #[derive(QueryableByName)]
        struct Priority {
            #[diesel(sql_type = Integer)]
            before: i32,
            #[diesel(sql_type = Integer)]
            after: i32,
        }
        let contacted_sql = "p.total_contacted + $3";
        let sql = format!(
            "UPDATE prospect_industry_performance p SET
                 total_contacted = {contacted_sql},
                 total_opened = p.total_opened + $4,
                 total_replied = p.total_replied + $5,
                 open_rate = {open}, reply_rate = {reply},
                 avg_response_time_hours = CASE WHEN $6::numeric IS NULL THEN p.avg_response_time_hours
                     ELSE round((coalesce(p.avg_response_time_hours, 0) * p.total_replied + $6) / (p.total_replied + 1), 2) END,
                 priority_score = CASE WHEN {contacted_sql} < 10 THEN 50
                     ELSE round(100 * (0.3 * {open} + 0.7 * {reply}))::integer END,
                 last_updated = now()
             FROM (SELECT priority_score FROM prospect_industry_performance
                   WHERE tenant_id = $1 AND industry = $2 FOR UPDATE) old
             WHERE p.tenant_id = $1 AND p.industry = $2
             RETURNING old.priority_score AS before, p.priority_score AS after",
            open = rate_sql("p.total_opened + $4", contacted_sql),
            reply = rate_sql("p.total_replied + $5", contacted_sql),
        );
        let priority: Priority = diesel::sql_query(sql)
            .bind::<SqlUuid, _>(scope.id())
            .bind::<Text, _>(industry)
            .bind::<Integer, _>(contacted)
            .bind::<Integer, _>(opened)
            .bind::<Integer, _>(replied)
            .bind::<Nullable<Numeric>, _>(hours)
            .get_result(conn)
            .await?;
        moved = (priority.before + 5) / 10 != (priority.after + 5) / 10;
    }
    if contacted == 1 {
        diesel::update(
            prospect_candidates::table
                .filter(prospect_candidates::tenant_id.eq(scope.id()))
                .filter(prospect_candidates::id.eq(prospect))
                .filter(prospect_candidates::contacted.eq(false)),
        )
        .set(prospect_candidates::contacted.eq(true))
        .execute(conn)
        .await?;
    }
    if let (Some(industry), true) = (&industry, moved) {
        rescore(conn, scope, Rescore::Industry(industry)).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_move_forward_only() {
        use OutreachEmailStatus::*;
        assert!(Approved.may_become(Sent));
        assert!(Sent.may_become(Opened));
        assert!(Delivered.may_become(Bounced));
        assert!(!Opened.may_become(Delivered));
        assert!(!Opened.may_become(Bounced));
        assert!(!Replied.may_become(Opened));
        assert!(!Bounced.may_become(Delivered));
        assert!(!Sent.may_become(Approved));
        assert!(Pending.may_become(Rejected));
        assert!(!Approved.may_become(Rejected));
    }

    #[test]
    fn every_step_implies_the_send() {
        for action in OutreachAction::ALL {
            assert_eq!(funnel_steps(*action)[0], OutreachAction::Sent);
            assert_eq!(funnel_steps(*action).last(), Some(action));
        }
    }
}
