//! Sending: the runner claims due deliveries, checks consent, picks the configuration,
//! calls the providers and records what they answered.

#[allow(unused_imports)]
use super::*;

/// What the runner does with one claimed message.
pub(crate) enum Plan {
    Send {
        route: Route,
        configuration: Option<Uuid>,
        credentials: Value,
        envelope: Envelope,
    },
    Done(Resolution),
}

/// How a message ends without (another) provider call.
pub(crate) enum Resolution {
    /// Already sent, failed or suppressed (a repeated job): nothing to do.
    Settled,
    Suppressed(String),
    Failed {
        route: Option<Route>,
        code: &'static str,
        reason: String,
    },
}

pub(crate) struct Claimed {
    pub(crate) job: crate::jobs::ClaimedJob,
    pub(crate) message: Option<Uuid>,
    pub(crate) customer: Option<Uuid>,
    pub(crate) channel: Channel,
    pub(crate) to: String,
    pub(crate) recipient_id: Option<Uuid>,
    pub(crate) outreach_email_id: Option<Uuid>,
    pub(crate) plan: Plan,
}

#[derive(Queryable)]
pub(crate) struct Pending {
    pub(crate) id: Uuid,
    pub(crate) customer_id: Option<Uuid>,
    pub(crate) channel: Channel,
    pub(crate) communication_type: CommunicationType,
    pub(crate) recipient: String,
    pub(crate) subject: Option<String>,
    pub(crate) content: Option<String>,
    pub(crate) html_content: Option<String>,
    pub(crate) status: MessageStatus,
    pub(crate) sending_started_at: Option<DateTime<Utc>>,
    pub(crate) campaign_recipient_id: Option<Uuid>,
    pub(crate) outreach_email_id: Option<Uuid>,
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = channel_configurations, check_for_backend(diesel::pg::Pg))]
pub(crate) struct Configuration {
    pub(crate) id: Uuid,
    #[diesel(column_name = channel_type)]
    pub(crate) channel: Channel,
    pub(crate) provider: String,
    pub(crate) config_encrypted: Option<Vec<u8>>,
    pub(crate) from_address: Option<String>,
    pub(crate) from_name: Option<String>,
    pub(crate) hook_token_sealed: Option<Vec<u8>>,
}

/// Why a message may not be sent now, if it may not: the customer's preference for this
/// channel and kind (opted out or unsubscribed), or the tenant's own email preferences
/// (seed 000 `email_preferences.marketing`).
pub(crate) fn consent_refusal(
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
pub(crate) fn credentials(
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
pub(crate) fn status_callback(
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
pub(crate) fn preference(route: Route) -> u8 {
    match route {
        Route::Sendgrid => 0,
        Route::Resend => 1,
        Route::Smtp => 2,
        Route::Twilio => 0,
        Route::Local => 9,
    }
}

pub(crate) fn plan(
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
pub(crate) async fn claim(
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
            let tenant_preferences =
                crate::domain::tenancy::ops::email_preferences(conn, scope).await?;
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
pub(crate) type Attempt = (Route, Option<Uuid>, Outcome);

/// How many provider calls one runner has in flight.
pub(crate) const IN_FLIGHT: usize = 32;

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
            let recipients: Vec<Uuid> =
                results.iter().filter_map(|(c, _)| c.recipient_id).collect();
            crate::domain::campaigns::ops::lock_funnels(conn, scope, &recipients).await?;
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
pub(crate) async fn record(
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
pub(crate) async fn record_sent(
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
pub(crate) async fn settle(
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
pub(crate) async fn follow(
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
pub(crate) struct Target {
    pub(crate) id: Uuid,
    pub(crate) channel: Channel,
    pub(crate) recipient: String,
    pub(crate) recipient_id: Option<Uuid>,
    pub(crate) outreach_email_id: Option<Uuid>,
    pub(crate) customer_id: Option<Uuid>,
    pub(crate) communication_type: CommunicationType,
    pub(crate) email_sequence_id: Option<Uuid>,
}

pub(crate) async fn funnel(
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
pub(crate) async fn move_funnels(
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
            crate::domain::outreach::ops::record_outreach_event(
                conn, scope, email, action, report.at, None,
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
