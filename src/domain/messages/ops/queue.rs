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
    match deliver_many(conn, scope, vec![outgoing]).await?.pop() {
        Some(Ok(id)) => Ok(id),
        Some(Err(refusal)) => Err(OpError::User(refusal)),
        None => Err(AppError::internal(&"deliver_many answered nothing").into()),
    }
}

/// [`deliver`] for many messages at once, in a few statements whatever their number (the
/// campaign workflows queue hundreds per batch): each answer, in order, is the message's
/// id or why it was refused. A refused message writes nothing; the others are queued.
pub async fn deliver_many(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
    batch: Vec<Outgoing>,
) -> OpResult<Vec<Result<Uuid, UserError>>> {
    use communication_log as m;
    let mut answers: Vec<Option<Result<Uuid, UserError>>> = vec![None; batch.len()];
    for (answer, outgoing) in answers.iter_mut().zip(&batch) {
        if let Err(refusal) = check_outgoing(outgoing) {
            *answer = Some(Err(refusal));
        }
    }
    // Keys used before: their first message's id.
    let keys: Vec<&str> = pending(&answers, &batch)
        .filter_map(|(_, o)| o.idempotency_key.as_deref())
        .collect();
    let used = holders_of(conn, scope, &keys).await?;
    for (answer, outgoing) in answers.iter_mut().zip(&batch) {
        if let Some(id) = outgoing.idempotency_key.as_ref().and_then(|k| used.get(k)) {
            answer.get_or_insert(Ok(*id));
        }
    }
    let customers = customers_of(conn, scope, pending(&answers, &batch)).await?;
    let mut templates: HashMap<Uuid, Option<AnyTemplate>> = HashMap::new();
    for (_, outgoing) in pending(&answers, &batch) {
        if let Content::Template { id, .. } = &outgoing.content {
            if !templates.contains_key(id) {
                let found = any_template(conn, scope, *id, &[]).await;
                templates.insert(*id, found.map(Some).or_else(none_if_refused)?);
            }
        }
    }
    let mut rows: Vec<(usize, NewMessage)> = Vec::new();
    for (i, outgoing) in batch.into_iter().enumerate() {
        if answers[i].is_some() {
            continue;
        }
        match prepare(outgoing, &customers, &templates) {
            Ok(row) => rows.push((i, row)),
            Err(refusal) => answers[i] = Some(Err(refusal)),
        }
    }
    let inserted: HashSet<Uuid> = match rows.is_empty() {
        true => HashSet::new(),
        false => diesel::insert_into(m::table)
            .values(
                rows.iter()
                    .map(|(_, row)| (m::tenant_id.eq(scope.id()), row))
                    .collect::<Vec<_>>(),
            )
            .on_conflict_do_nothing()
            .returning(m::id)
            .load::<Uuid>(conn)
            .await?
            .into_iter()
            .collect(),
    };
    // A key another transaction (or an earlier message of this batch) used in between:
    // the message that holds it.
    let taken: Vec<&str> = rows
        .iter()
        .filter(|(_, row)| !inserted.contains(&row.id))
        .filter_map(|(_, row)| row.idempotency_key.as_deref())
        .collect();
    let holders = holders_of(conn, scope, &taken).await?;
    let mut queued = Vec::new();
    for (i, row) in &rows {
        answers[*i] = Some(match inserted.contains(&row.id) {
            true => {
                queued.push(row);
                Ok(row.id)
            }
            false => row
                .idempotency_key
                .as_ref()
                .and_then(|key| holders.get(key))
                .map(|id| Ok(*id))
                .ok_or_else(|| AppError::internal(&"a queued message vanished"))?,
        });
    }
    record_queued(conn, scope, &queued).await?;
    Ok(answers
        .into_iter()
        .map(|a| a.expect("every message answered"))
        .collect())
}

/// The messages holding `keys` (idempotency keys), by key.
async fn holders_of(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
    keys: &[&str],
) -> QueryResult<HashMap<String, Uuid>> {
    use communication_log as m;
    if keys.is_empty() {
        return Ok(HashMap::new());
    }
    let rows: Vec<(String, Uuid)> = m::table
        .filter(m::tenant_id.eq(scope.id()))
        .filter(m::idempotency_key.eq_any(keys))
        .select((m::idempotency_key.assume_not_null(), m::id))
        .load(conn)
        .await?;
    Ok(rows.into_iter().collect())
}

/// The messages of `batch` not answered yet.
fn pending<'a>(
    answers: &'a [Option<Result<Uuid, UserError>>],
    batch: &'a [Outgoing],
) -> impl Iterator<Item = (usize, &'a Outgoing)> + 'a {
    batch
        .iter()
        .enumerate()
        .filter(|(i, _)| answers[*i].is_none())
}

/// A refusal read as "no such row" (to be answered per message); other errors stay errors.
fn none_if_refused<T>(error: OpError) -> OpResult<Option<T>> {
    match error {
        OpError::User(_) => Ok(None),
        error => Err(error),
    }
}

/// What a message can be refused for before anything is read.
fn check_outgoing(outgoing: &Outgoing) -> Result<(), UserError> {
    if outgoing.channel == Channel::Phone {
        return Err(refusal("channel", "messages go by email, SMS or WhatsApp"));
    }
    if let Some(key) = &outgoing.idempotency_key {
        if key.is_empty() || key.len() > 200 || key.contains('\0') {
            return Err(refusal(
                "idempotencyKey",
                "idempotencyKey must be 1-200 characters",
            ));
        }
    }
    Ok(())
}

fn refusal(field: &str, message: &str) -> UserError {
    UserError::new(UserErrorCode::Invalid, &["input", field], message)
}

/// A customer's fields a message uses: email, phone, name, first name, points.
type CustomerFields = (
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    i64,
);

async fn customers_of(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
    outgoing: impl Iterator<Item = (usize, &Outgoing)>,
) -> QueryResult<HashMap<Uuid, CustomerFields>> {
    let ids: HashSet<Uuid> = outgoing.filter_map(|(_, o)| o.customer_id).collect();
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    let ids: Vec<Uuid> = ids.into_iter().collect();
    let rows: Vec<(Uuid, CustomerFields)> = customers::table
        .filter(customers::tenant_id.eq(scope.id()))
        .filter(customers::id.eq_any(&ids))
        .select((
            customers::id,
            (
                customers::email,
                customers::phone,
                customers::name,
                customers::first_name,
                customers::points_balance,
            ),
        ))
        .load(conn)
        .await?;
    Ok(rows.into_iter().collect())
}

/// The row of one message, rendered, or why it cannot be sent.
fn prepare(
    outgoing: Outgoing,
    customers: &HashMap<Uuid, CustomerFields>,
    templates: &HashMap<Uuid, Option<AnyTemplate>>,
) -> Result<NewMessage, UserError> {
    let customer = match outgoing.customer_id {
        None => None,
        Some(id) => Some(customers.get(&id).ok_or_else(|| {
            UserError::new(
                UserErrorCode::NotFound,
                &["input", "customerId"],
                "no such customer",
            )
        })?),
    };
    let to = match (&outgoing.to, customer) {
        (Some(to), _) => to.trim().to_owned(),
        (None, Some((email, phone, ..))) => match outgoing.channel {
            Channel::Email => email.clone(),
            _ => phone.clone(),
        }
        .ok_or_else(|| refusal("customerId", "the customer has no address on this channel"))?,
        (None, None) => return Err(refusal("to", "give a customerId or a to address")),
    };
    let fits = match outgoing.channel {
        Channel::Email => valid_email(&to),
        _ => valid_phone(to.strip_prefix("whatsapp:").unwrap_or(&to)),
    };
    if !fits {
        return Err(refusal("to", "not an address of this channel"));
    }
    let (rendered, template_id, email_template_id, purpose) = match &outgoing.content {
        Content::Template { id, variables } => {
            if !variables.is_object() || variables.to_string().len() > 64 * 1024 {
                return Err(refusal(
                    "variables",
                    "variables must be a JSON object of at most 64 KiB",
                ));
            }
            let mut variables = variables.clone();
            if let Some((email, _, name, first_name, points)) = customer {
                // The customer's own fields, for templates that declare `customer`.
                variables.as_object_mut().expect("an object").entry("customer").or_insert(
                    json!({ "email": email, "name": name, "firstName": first_name, "pointsBalance": points }),
                );
            }
            let template = templates.get(id).and_then(Option::as_ref).ok_or_else(|| {
                UserError::new(
                    UserErrorCode::NotFound,
                    &["input", "templateId"],
                    "no such template",
                )
            })?;
            let (active, channel_fits, purpose) = match template {
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
                return Err(refusal("templateId", "this template is not active"));
            }
            if !channel_fits {
                return Err(refusal(
                    "templateId",
                    "this template is for another channel",
                ));
            }
            let rendered = template.render(&variables)?;
            let (communication, email) = match template {
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
            let written = check_text("subject", subject.as_deref(), 998)
                .and_then(|()| check_required_text("body", text, 100_000))
                .and_then(|()| check_text("html", html.as_deref(), 500_000));
            if let Err(OpError::User(refusal)) = written {
                return Err(refusal);
            }
            let rendered = Rendered {
                subject: subject.clone(),
                text: Some(text.clone()),
                html: html.clone(),
            };
            (rendered, None, None, CommunicationType::Marketing)
        }
    };
    if outgoing.channel != Channel::Email && rendered.text.as_deref().unwrap_or("").is_empty() {
        return Err(refusal(
            "body",
            "an SMS or WhatsApp message needs a text body",
        ));
    }
    Ok(NewMessage {
        id: Uuid::new_v4(),
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
    })
}

/// What follows the rows of queued messages: their templates' usage, their delivery jobs
/// and their `message.queued` events.
async fn record_queued(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
    queued: &[&NewMessage],
) -> QueryResult<()> {
    if queued.is_empty() {
        return Ok(());
    }
    // In the templates' order, so that batches queued at once never deadlock on them.
    let mut usage: std::collections::BTreeMap<Uuid, i32> = Default::default();
    for template in queued.iter().filter_map(|m| m.email_template_id) {
        *usage.entry(template).or_default() += 1;
    }
    for (template, uses) in usage {
        diesel::update(
            email_templates::table
                .filter(email_templates::tenant_id.eq(scope.id()))
                .filter(email_templates::id.eq(template)),
        )
        .set(email_templates::usage_count.eq(email_templates::usage_count + uses))
        .execute(conn)
        .await?;
    }
    let jobs: Vec<_> = queued
        .iter()
        .map(|m| {
            (
                queue_jobs::tenant_id.eq(scope.id()),
                queue_jobs::job_type.eq("message_delivery"),
                queue_jobs::payload.eq(json!({ "messageId": m.id })),
            )
        })
        .collect();
    diesel::insert_into(queue_jobs::table)
        .values(jobs)
        .execute(conn)
        .await?;
    let events = queued
        .iter()
        .map(|m| {
            let payload = json!({ "channel": m.channel, "customerId": m.customer_id, "communicationType": m.communication_type });
            ("message.queued".to_owned(), m.id, payload)
        })
        .collect();
    events::record_many(conn, scope, events).await
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
    crate::newest_first!(
        conn,
        scope,
        communication_log,
        Message,
        page,
        channel = filter.channel,
        status = filter.status,
        customer_id = filter.customer_id,
    )
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
    let query = e::table
        .filter(e::tenant_id.eq(scope.id()))
        .select(EmailEvent::as_select())
        .order((e::occurred_at, e::id))
        .limit(limit)
        .into_boxed()
        .filter_some(message, |v| e::communication_log_id.eq(v));
    query.load(conn).await
}
