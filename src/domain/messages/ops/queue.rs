//! Queueing (`deliver`, the one way a message leaves) and the reads of the message log.

#[allow(unused_imports)]
use super::*;

/// What a message says: a template and its variables, or its own text.
#[derive(Debug, Clone, serde::Serialize)]
pub enum Content {
    Template {
        id: Uuid,
        variables: Value,
    },
    Written {
        subject: Option<String>,
        text: String,
        html: Option<String>,
    },
}

/// A message to queue ([`deliver`]).
#[derive(Debug, Clone, serde::Serialize)]
pub struct Outgoing {
    pub channel: Channel,
    /// The customer it is for (their address or number is used unless `to` is given).
    pub customer_id: Option<Uuid>,
    pub to: Option<String>,
    pub content: Content,
    /// What it is for (consent); by default the template's purpose, else marketing.
    pub communication_type: Option<CommunicationType>,
    pub idempotency_key: Option<String>,
    /// The campaign recipient or outreach email whose funnel it moves.
    pub campaign_recipient_id: Option<Uuid>,
    pub outreach_email_id: Option<Uuid>,
    /// The email sequence it is a step of.
    pub email_sequence_id: Option<Uuid>,
}

impl Outgoing {
    /// A message of `template` with `variables` on `channel`, to whom and why left to the
    /// caller (`Outgoing { to, idempotency_key, .. Outgoing::of_template(…) }`).
    pub fn of_template(channel: Channel, template: Uuid, variables: Value) -> Outgoing {
        Outgoing {
            channel,
            customer_id: None,
            to: None,
            content: Content::Template {
                id: template,
                variables,
            },
            communication_type: None,
            idempotency_key: None,
            campaign_recipient_id: None,
            outreach_email_id: None,
            email_sequence_id: None,
        }
    }
}

pub(crate) fn invalid(field: &str, message: &str) -> OpError {
    user_error(UserErrorCode::Invalid, &["input", field], message)
}

/// A phone number in E.164 form (`+` and 8 to 15 digits).
pub fn valid_phone(number: &str) -> bool {
    let digits = number.strip_prefix('+').unwrap_or("");
    (8..=15).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit())
}

/// Queues a message: renders it, writes its `communication_log` row (`queued`), its
/// delivery job and a `message.queued` event, in the caller's transaction. The same
/// idempotency key queues one message (the first one's id is returned again).
pub async fn deliver(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
    outgoing: Outgoing,
) -> OpResult<Uuid> {
    use communication_log as m;
    if outgoing.channel == Channel::Phone {
        return Err(invalid("channel", "messages go by email, SMS or WhatsApp"));
    }
    if let Some(key) = &outgoing.idempotency_key {
        if key.is_empty() || key.len() > 200 || key.contains('\0') {
            return Err(invalid(
                "idempotencyKey",
                "idempotencyKey must be 1-200 characters",
            ));
        }
        let existing: Option<Uuid> = m::table
            .filter(m::tenant_id.eq(scope.id()))
            .filter(m::idempotency_key.eq(key))
            .select(m::id)
            .first(conn)
            .await
            .optional()?;
        if let Some(id) = existing {
            return Ok(id);
        }
    }
    type CustomerFields = (
        Option<String>,
        Option<String>,
        Option<String>,
        Option<String>,
        i64,
    );
    let customer: Option<CustomerFields> = match outgoing.customer_id {
        None => None,
        Some(id) => Some(crate::tenant_row!(
            conn,
            scope,
            customers,
            id,
            (
                customers::email,
                customers::phone,
                customers::name,
                customers::first_name,
                customers::points_balance
            ),
            &["input", "customerId"],
            "no such customer"
        )?),
    };
    let to = match (&outgoing.to, &customer) {
        (Some(to), _) => to.trim().to_owned(),
        (None, Some((email, phone, ..))) => match outgoing.channel {
            Channel::Email => email.clone(),
            _ => phone.clone(),
        }
        .ok_or_else(|| invalid("customerId", "the customer has no address on this channel"))?,
        (None, None) => return Err(invalid("to", "give a customerId or a to address")),
    };
    let fits = match outgoing.channel {
        Channel::Email => valid_email(&to),
        _ => valid_phone(to.strip_prefix("whatsapp:").unwrap_or(&to)),
    };
    if !fits {
        return Err(invalid("to", "not an address of this channel"));
    }
    let (rendered, template_id, email_template_id, purpose) = match &outgoing.content {
        Content::Template { id, variables } => {
            if !variables.is_object() || variables.to_string().len() > 64 * 1024 {
                return Err(invalid(
                    "variables",
                    "variables must be a JSON object of at most 64 KiB",
                ));
            }
            let mut variables = variables.clone();
            if let Some((email, _, name, first_name, points)) = &customer {
                // The customer's own fields, for templates that declare `customer`.
                variables.as_object_mut().expect("an object").entry("customer").or_insert(
                    json!({ "email": email, "name": name, "firstName": first_name, "pointsBalance": points }),
                );
            }
            let template = any_template(conn, scope, *id, &["input", "templateId"]).await?;
            let (active, channel_fits, purpose) = match &template {
                AnyTemplate::Communication(t) => (
                    t.is_active,
                    t.channel == outgoing.channel,
                    t.template_type.communication_type(),
                ),
                AnyTemplate::Email(t) => (
                    t.is_active,
                    outgoing.channel == Channel::Email,
                    CommunicationType::Marketing,
                ),
            };
            if !active {
                return Err(invalid("templateId", "this template is not active"));
            }
            if !channel_fits {
                return Err(invalid(
                    "templateId",
                    "this template is for another channel",
                ));
            }
            let rendered = template.render(&variables).map_err(OpError::User)?;
            let (communication, email) = match &template {
                AnyTemplate::Communication(t) => (Some(t.id), None),
                AnyTemplate::Email(t) => (None, Some(t.id)),
            };
            (rendered, communication, email, purpose)
        }
        Content::Written {
            subject,
            text,
            html,
        } => {
            check_text("subject", subject.as_deref(), 998)?;
            check_required_text("body", text, 100_000)?;
            check_text("html", html.as_deref(), 500_000)?;
            let rendered = Rendered {
                subject: subject.clone(),
                text: Some(text.clone()),
                html: html.clone(),
            };
            (rendered, None, None, CommunicationType::Marketing)
        }
    };
    if outgoing.channel != Channel::Email && rendered.text.as_deref().unwrap_or("").is_empty() {
        return Err(invalid(
            "body",
            "an SMS or WhatsApp message needs a text body",
        ));
    }
    let message = NewMessage {
        customer_id: outgoing.customer_id,
        template_id,
        email_template_id,
        channel: outgoing.channel,
        communication_type: outgoing.communication_type.unwrap_or(purpose),
        recipient: to,
        subject: rendered
            .subject
            .filter(|_| outgoing.channel == Channel::Email),
        content: rendered.text,
        html_content: rendered.html.filter(|_| outgoing.channel == Channel::Email),
        idempotency_key: outgoing.idempotency_key,
        campaign_recipient_id: outgoing.campaign_recipient_id,
        outreach_email_id: outgoing.outreach_email_id,
        email_sequence_id: outgoing.email_sequence_id,
        metadata: json!({}),
    };
    let id: Uuid = diesel::insert_into(m::table)
        .values((m::tenant_id.eq(scope.id()), &message))
        .returning(m::id)
        .get_result(conn)
        .await?;
    if let Some(template) = email_template_id {
        diesel::update(
            email_templates::table
                .filter(email_templates::tenant_id.eq(scope.id()))
                .filter(email_templates::id.eq(template)),
        )
        .set(email_templates::usage_count.eq(email_templates::usage_count + 1))
        .execute(conn)
        .await?;
    }
    diesel::insert_into(queue_jobs::table)
        .values((
            queue_jobs::tenant_id.eq(scope.id()),
            queue_jobs::job_type.eq("message_delivery"),
            queue_jobs::payload.eq(json!({ "messageId": id })),
        ))
        .execute(conn)
        .await?;
    events::record(
        conn,
        scope,
        "message.queued",
        id,
        json!({ "channel": message.channel, "customerId": message.customer_id, "communicationType": message.communication_type }),
    )
    .await?;
    Ok(id)
}

// ---- reads --------------------------------------------------------------------------------

/// The tenant's message log, newest first, optionally on one channel, of one status or
/// one customer.
pub async fn messages(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
    filter: &MessageFilter,
    page: &PageRequest<DateTime<Utc>>,
) -> QueryResult<Vec<Message>> {
    use communication_log as m;
    let mut query = m::table
        .filter(m::tenant_id.eq(scope.id()))
        .select(Message::as_select())
        .limit(page.limit())
        .into_boxed();
    if let Some(channel) = filter.channel {
        query = query.filter(m::channel.eq(channel));
    }
    if let Some(status) = filter.status {
        query = query.filter(m::status.eq(status));
    }
    if let Some(customer) = filter.customer_id {
        query = query.filter(m::customer_id.eq(customer));
    }
    crate::keyset!(query, page, m::created_at, m::id, desc)
        .load(conn)
        .await
}

#[derive(Debug, Clone, Default)]
pub struct MessageFilter {
    pub channel: Option<Channel>,
    pub status: Option<MessageStatus>,
    pub customer_id: Option<Uuid>,
}

pub async fn message(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
    id: Uuid,
) -> QueryResult<Option<Message>> {
    use communication_log as m;
    m::table
        .filter(m::tenant_id.eq(scope.id()))
        .filter(m::id.eq(id))
        .select(Message::as_select())
        .first(conn)
        .await
        .optional()
}

/// The email events of one message (or of all), oldest first, at most `limit`.
pub async fn email_events_of(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
    message: Option<Uuid>,
    limit: i64,
) -> QueryResult<Vec<EmailEvent>> {
    use email_events as e;
    let mut query = e::table
        .filter(e::tenant_id.eq(scope.id()))
        .select(EmailEvent::as_select())
        .order((e::occurred_at, e::id))
        .limit(limit)
        .into_boxed();
    if let Some(message) = message {
        query = query.filter(e::communication_log_id.eq(message));
    }
    query.load(conn).await
}
