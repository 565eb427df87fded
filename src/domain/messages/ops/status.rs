//! Status reports from the providers, and admins acting on delivery jobs.

#[allow(unused_imports)]
use super::*;

/// Applies a provider's status reports for messages sent through `configuration`: each
/// moves its message forward only (queued → sent → delivered → opened → clicked; bounced,
/// failed and complained are final), appends the email event, moves the campaign
/// recipient or outreach email along, and records `message.<status>`. An unsubscribe
/// withdraws the customer's consent for that kind of message on that channel. Reports
/// naming no message of this configuration are skipped. Returns how many moved a message.
pub async fn apply_reports(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
    configuration: Uuid,
    reports: &[Report],
) -> OpResult<usize> {
    use communication_log as m;
    // The funnels these reports may move, locked first (see `campaigns::ops::lock_funnels`).
    let (ids, provider_ids): (Vec<Uuid>, Vec<String>) = reports.iter().fold(
        (Vec::new(), Vec::new()),
        |(mut ids, mut provider_ids), r| {
            match &r.message {
                MessageRef::Id(id) => ids.push(*id),
                MessageRef::Provider(id) => provider_ids.push(id.clone()),
            }
            (ids, provider_ids)
        },
    );
    let recipients: Vec<Option<Uuid>> = m::table
        .filter(m::tenant_id.eq(scope.id()))
        .filter(m::channel_configuration_id.eq(configuration))
        .filter(
            m::id
                .eq_any(&ids)
                .or(m::provider_message_id.eq_any(&provider_ids)),
        )
        .select(m::campaign_recipient_id)
        .load(conn)
        .await?;
    let recipients: Vec<Uuid> = recipients.into_iter().flatten().collect();
    crate::domain::campaigns::ops::lock_funnels(conn, scope, &recipients).await?;
    let mut moved = 0;
    for report in reports {
        let found = find_reported(conn, scope, configuration, &report.message).await?;
        let Some((target, current, provider_id)) = found else {
            continue;
        };
        if report.unsubscribe {
            withdraw_consent(conn, scope, &target).await?;
            if let Some(sequence) = target.email_sequence_id {
                crate::domain::automations::ops::stop_email_sequence(
                    conn,
                    scope,
                    sequence,
                    "unsubscribed",
                )
                .await?;
            }
        }
        let Some(status) = report.status else {
            continue;
        };
        let forward = current.stage() < 5 && status.stage() > current.stage();
        if forward {
            // Reaching a state stamps it (once), and `sent_at` if the send was not seen.
            let stamp = match status {
                MessageStatus::Delivered => ", delivered_at = coalesce(delivered_at, $2)",
                MessageStatus::Opened => ", opened_at = coalesce(opened_at, $2)",
                MessageStatus::Clicked => ", clicked_at = coalesce(clicked_at, $2)",
                _ => "",
            };
            diesel::sql_query(format!(
                "UPDATE communication_log SET status = $1, sent_at = coalesce(sent_at, $2){stamp} \
                 WHERE tenant_id = $3 AND id = $4"
            ))
            .bind::<diesel::sql_types::Text, _>(status.as_str())
            .bind::<diesel::sql_types::Timestamptz, _>(report.at)
            .bind::<diesel::sql_types::Uuid, _>(scope.id())
            .bind::<diesel::sql_types::Uuid, _>(target.id)
            .execute(conn)
            .await?;
            if status.stage() == 5 {
                diesel::update(
                    m::table
                        .filter(m::tenant_id.eq(scope.id()))
                        .filter(m::id.eq(target.id)),
                )
                .set((
                    m::failure_code.eq(status.as_str()),
                    m::error_message.eq(report.detail.as_deref()),
                ))
                .execute(conn)
                .await?;
            }
            events::record(
                conn,
                scope,
                &format!("message.{}", status.as_str()),
                target.id,
                json!({ "providerEvent": report.event, "customerId": target.customer_id }),
            )
            .await?;
            moved += 1;
        }
        // The event stream keeps every report; the funnels move forward only themselves.
        funnel(conn, scope, &target, report, provider_id.as_deref()).await?;
    }
    Ok(moved)
}

/// The message a report names among those sent through `configuration`, locked.
pub(crate) async fn find_reported(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
    configuration: Uuid,
    message: &MessageRef,
) -> QueryResult<Option<(Target, MessageStatus, Option<String>)>> {
    use communication_log as m;
    let query = m::table
        .filter(m::tenant_id.eq(scope.id()))
        .filter(m::channel_configuration_id.eq(configuration))
        .select((
            (
                m::id,
                m::channel,
                m::recipient,
                m::campaign_recipient_id,
                m::outreach_email_id,
                m::customer_id,
                m::communication_type,
                m::email_sequence_id,
            ),
            m::status,
            m::provider_message_id,
        ))
        .for_update();
    match message {
        MessageRef::Id(id) => query.filter(m::id.eq(*id)).first(conn).await.optional(),
        MessageRef::Provider(id) => query
            .filter(m::provider_message_id.eq(id))
            .first(conn)
            .await
            .optional(),
    }
}

/// Records that the customer a message went to does not want that kind of message on
/// that channel any more.
pub(crate) async fn withdraw_consent(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
    target: &Target,
) -> QueryResult<()> {
    let Some(customer) = target.customer_id else {
        return Ok(());
    };
    use communication_preferences as p;
    diesel::insert_into(p::table)
        .values((
            p::tenant_id.eq(scope.id()),
            p::customer_id.eq(customer),
            p::channel.eq(target.channel.as_str()),
            p::communication_type.eq(target.communication_type.as_str()),
            p::opted_in.eq(false),
            p::unsubscribed_at.eq(Utc::now()),
            p::unsubscribe_reason.eq("unsubscribed through the provider"),
        ))
        .on_conflict((
            p::tenant_id,
            p::customer_id,
            p::channel,
            p::communication_type,
        ))
        .do_update()
        .set((
            p::opted_in.eq(false),
            p::unsubscribed_at.eq(Utc::now()),
            p::unsubscribe_reason.eq("unsubscribed through the provider"),
        ))
        .execute(conn)
        .await?;
    Ok(())
}

/// The configuration a hook token names, across tenants (see the migration's reviewed
/// `channel_hook_target`): its id, tenant and provider.
pub async fn hook_target(
    pool: &crate::db::PgPool,
    token: &str,
) -> AppResult<Option<(Uuid, Uuid, String)>> {
    #[derive(QueryableByName)]
    struct Row {
        #[diesel(sql_type = diesel::sql_types::Uuid)]
        configuration_id: Uuid,
        #[diesel(sql_type = diesel::sql_types::Uuid)]
        tenant_id: Uuid,
        #[diesel(sql_type = diesel::sql_types::Text)]
        provider: String,
    }
    let mut conn = pool.get().await?;
    let row: Option<Row> = diesel::sql_query(
        "SELECT configuration_id, tenant_id, provider FROM channel_hook_target($1)",
    )
    .bind::<diesel::sql_types::Bytea, _>(crate::auth::hash_key(token))
    .get_result(&mut conn)
    .await
    .optional()?;
    Ok(row.map(|r| (r.configuration_id, r.tenant_id, r.provider)))
}

/// The credentials of the configuration a hook names (to verify its signature).
pub async fn hook_credentials(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
    configuration: Uuid,
    key: Option<&SecretKey>,
) -> AppResult<Option<Value>> {
    use channel_configurations as c;
    let config: Option<Configuration> = c::table
        .filter(c::tenant_id.eq(scope.id()))
        .filter(c::id.eq(configuration))
        .select(Configuration::as_select())
        .first(conn)
        .await
        .optional()?;
    let Some(config) = config else {
        return Ok(None);
    };
    let Some(provider) = ChannelProvider::parse(&config.provider) else {
        return Ok(None);
    };
    Ok(credentials(scope.id(), &config, provider, key)
        .ok()
        .filter(|v| v.is_object()))
}
