//! Lead rules (seed 001): every action writes its `lead_actions` audit row in the same
//! transaction as the change; `current_tag` follows the latest tag; conversions set
//! `conversion_outcome` and leave a feedback record; reverting needs a reason; deleted
//! leads are soft-deleted and hidden by default; tone/confidence/urgency changes append to
//! the history arrays.

use bigdecimal::BigDecimal;
use chrono::{DateTime, Utc};
use diesel::dsl::{AsSelect, SqlTypeOf};
use diesel::pg::Pg;
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use serde::Serialize;
use serde_json::json;
use uuid::Uuid;

use super::model::{Language, Lead, LeadAction, LeadActionType, LeadDetail, LeadNote, Urgency};
use crate::db::filter::FilterSome;
use crate::db::page::PageRequest;
use crate::db::schema::{customers, feedback_tracking, lead_actions, lead_memory, lead_notes};
use crate::db::sql::contains_pattern;
use crate::db::Tenant;
use crate::domain::{
    check_text, events, idempotency, user_error, OpError, OpResult, UserErrorCode,
};

// ---- reads ------------------------------------------------------------------------------

/// Non-deleted leads converted into these customers, oldest first.
pub async fn leads_of_customers(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
    customers: &[Uuid],
) -> QueryResult<Vec<Lead>> {
    lead_memory::table
        .filter(lead_memory::tenant_id.eq(scope.id()))
        .filter(lead_memory::customer_id.eq_any(customers))
        .filter(lead_memory::deleted.eq(false))
        .select(Lead::as_select())
        .order((lead_memory::created_at, lead_memory::id))
        .load(conn)
        .await
}

pub async fn by_ids(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
    ids: &[Uuid],
) -> QueryResult<Vec<Lead>> {
    lead_memory::table
        .filter(lead_memory::tenant_id.eq(scope.id()))
        .filter(lead_memory::id.eq_any(ids))
        .select(Lead::as_select())
        .load(conn)
        .await
}

pub async fn details(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
    ids: &[Uuid],
) -> QueryResult<Vec<LeadDetail>> {
    lead_memory::table
        .filter(lead_memory::tenant_id.eq(scope.id()))
        .filter(lead_memory::id.eq_any(ids))
        .select(LeadDetail::as_select())
        .load(conn)
        .await
}

pub async fn actions_of(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
    leads: &[Uuid],
) -> QueryResult<Vec<LeadAction>> {
    lead_actions::table
        .filter(lead_actions::tenant_id.eq(scope.id()))
        .filter(lead_actions::lead_id.eq_any(leads))
        .select(LeadAction::as_select())
        .order((lead_actions::timestamp, lead_actions::id))
        .load(conn)
        .await
}

pub async fn notes_of(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
    leads: &[Uuid],
) -> QueryResult<Vec<LeadNote>> {
    lead_notes::table
        .filter(lead_notes::tenant_id.eq(scope.id()))
        .filter(lead_notes::lead_id.eq_any(leads))
        .select(LeadNote::as_select())
        .order((lead_notes::created_at, lead_notes::id))
        .load(conn)
        .await
}

#[derive(Debug, Clone, Default)]
pub struct LeadFilter {
    pub tag: Option<String>,
    pub urgency: Option<Urgency>,
    pub intent: Option<String>,
    pub tone: Option<String>,
    pub language: Option<Language>,
    /// Default false: archived leads are hidden unless asked for.
    pub archived: Option<bool>,
    /// Default false: deleted leads are hidden unless asked for.
    pub deleted: Option<bool>,
    pub confidence_min: Option<BigDecimal>,
    pub confidence_max: Option<BigDecimal>,
    pub created_from: Option<DateTime<Utc>>,
    pub created_to: Option<DateTime<Utc>>,
    pub search: Option<String>,
}

/// The leads `filter` selects, every column: the rows of the list and of its aggregates.
pub fn filtered(scope: Tenant, filter: &LeadFilter) -> lead_memory::BoxedQuery<'static, Pg> {
    use lead_memory as l;
    l::table
        .filter(l::tenant_id.eq(scope.id()))
        .filter(l::deleted.eq(filter.deleted.unwrap_or(false)))
        .filter(l::archived.eq(filter.archived.unwrap_or(false)))
        .into_boxed()
        .filter_some(filter.tag.clone(), |v| l::current_tag.eq(v))
        .filter_some(filter.urgency, |v| l::urgency.eq(v))
        .filter_some(filter.intent.clone(), |v| l::intent.eq(v))
        .filter_some(filter.tone.clone(), |v| l::tone.eq(v))
        .filter_some(filter.language, |v| l::language.eq(v))
        .filter_some(filter.confidence_min.clone(), |v| l::confidence_score.ge(v))
        .filter_some(filter.confidence_max.clone(), |v| l::confidence_score.le(v))
        .filter_some(filter.created_from, |v| l::created_at.ge(v))
        .filter_some(filter.created_to, |v| l::created_at.lt(v))
        .filter_some(filter.search.as_deref().map(contains_pattern), |p| {
            l::name
                .ilike(p.clone())
                .or(l::email.ilike(p.clone()))
                .or(l::message.ilike(p))
        })
}

/// A page of leads as a query, in the list's order (its limit left to the caller:
/// [`crate::db::nested::read_page`]).
pub type ListQuery = lead_memory::BoxedQuery<'static, Pg, SqlTypeOf<AsSelect<Lead, Pg>>>;

/// One keyset page of `filter`'s leads by creation time (newest first unless
/// `ascending`).
pub fn list_query(
    scope: Tenant,
    filter: &LeadFilter,
    ascending: bool,
    page: &PageRequest<DateTime<Utc>>,
) -> ListQuery {
    use lead_memory as l;
    let query = filtered(scope, filter).select(Lead::as_select());
    crate::keyset!(query, page, l::created_at, l::id, descending: !ascending)
}

// ---- writes -----------------------------------------------------------------------------

/// Tags are short labels such as "Lead Chaud" or "follow-up": letters (any script),
/// digits, spaces, `-` and `_`, 1 to 50 characters.
pub fn valid_tag(tag: &str) -> bool {
    let trimmed = tag.trim();
    !trimmed.is_empty()
        && trimmed.chars().count() <= 50
        && trimmed
            .chars()
            .all(|c| c.is_alphanumeric() || c == ' ' || c == '-' || c == '_')
}

fn history_entry(value: serde_json::Value) -> serde_json::Value {
    json!([{ "value": value, "at": Utc::now() }])
}

#[derive(Debug, Clone, Serialize)]
pub struct IngestLead {
    pub name: String,
    pub email: String,
    pub message: String,
    pub language: Language,
    pub ai_summary: Option<String>,
    pub intent: Option<String>,
    pub tone: Option<String>,
    pub urgency: Option<Urgency>,
    pub confidence_score: Option<BigDecimal>,
}

fn check_confidence(value: &Option<BigDecimal>) -> Result<(), OpError> {
    if let Some(c) = value {
        if c < &BigDecimal::from(0) || c > &BigDecimal::from(1) || c.fractional_digit_count() > 2 {
            return Err(user_error(
                UserErrorCode::Invalid,
                &["input", "confidenceScore"],
                "confidenceScore must be 0 to 1 with at most 2 decimals",
            ));
        }
    }
    Ok(())
}

/// Captures an inbound form lead with whatever AI analysis the caller has, and its
/// `created` action.
pub async fn ingest(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
    input: IngestLead,
    key: Option<&str>,
) -> OpResult<Uuid> {
    if input.name.trim().is_empty() {
        return Err(user_error(
            UserErrorCode::Invalid,
            &["input", "name"],
            "name is required",
        ));
    }
    check_text("name", Some(&input.name), 200)?;
    if !crate::domain::customers::ops::valid_email(&input.email) {
        return Err(user_error(
            UserErrorCode::Invalid,
            &["input", "email"],
            "not a valid email address",
        ));
    }
    check_text("message", Some(&input.message), 10_000)?;
    check_text("aiSummary", input.ai_summary.as_deref(), 5_000)?;
    check_text("intent", input.intent.as_deref(), 200)?;
    check_text("tone", input.tone.as_deref(), 100)?;
    check_confidence(&input.confidence_score)?;
    idempotency::once(conn, scope, key, "ingestLead", &input, async |conn| {
        use lead_memory as l;
        let tone_history = input
            .tone
            .as_ref()
            .map(|t| history_entry(json!(t)))
            .unwrap_or_else(|| json!([]));
        let confidence_history = input
            .confidence_score
            .as_ref()
            .map(|c| history_entry(json!(c.to_string())))
            .unwrap_or_else(|| json!([]));
        let urgency_history = input
            .urgency
            .map(|u| history_entry(json!(u.as_str())))
            .unwrap_or_else(|| json!([]));
        let id: Uuid = diesel::insert_into(l::table)
            .values((
                l::tenant_id.eq(scope.id()),
                l::name.eq(input.name.trim()),
                l::email.eq(input.email.trim()),
                l::message.eq(&input.message),
                l::language.eq(input.language),
                l::ai_summary.eq(&input.ai_summary),
                l::intent.eq(&input.intent),
                l::tone.eq(&input.tone),
                l::urgency.eq(input.urgency),
                l::confidence_score.eq(&input.confidence_score),
                l::tone_history.eq(tone_history),
                l::confidence_history.eq(confidence_history),
                l::urgency_history.eq(urgency_history),
            ))
            .returning(l::id)
            .get_result(conn)
            .await?;
        record_action(conn, scope, id, LeadActionType::Created, Action::default()).await?;
        Ok(id)
    })
    .await
}

#[derive(Default)]
struct Action<'a> {
    tag: Option<&'a str>,
    conversion_outcome: Option<bool>,
    reversion_reason: Option<&'a str>,
}

/// The audit row and the outbox event of one lead action, in the caller's transaction.
async fn record_action(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
    lead: Uuid,
    kind: LeadActionType,
    action: Action<'_>,
) -> QueryResult<()> {
    diesel::insert_into(lead_actions::table)
        .values((
            lead_actions::tenant_id.eq(scope.id()),
            lead_actions::lead_id.eq(lead),
            lead_actions::action_type.eq(kind),
            lead_actions::tag.eq(action.tag),
            lead_actions::conversion_outcome.eq(action.conversion_outcome),
            lead_actions::reversion_reason.eq(action.reversion_reason),
            lead_actions::performed_by.eq("api"),
            lead_actions::timestamp.eq(diesel::dsl::sql::<diesel::sql_types::Timestamptz>(
                "clock_timestamp()",
            )),
        ))
        .execute(conn)
        .await?;
    let event = if kind == LeadActionType::Tagged {
        "lead.tagged".to_owned()
    } else {
        format!("lead.{}", kind.as_str())
    };
    events::record(
        conn,
        scope,
        &event,
        lead,
        json!({ "action": kind, "tag": action.tag }),
    )
    .await
}

#[derive(Queryable)]
struct LeadState {
    archived: bool,
    deleted: bool,
    customer_id: Option<Uuid>,
    confidence_score: Option<BigDecimal>,
    intent: Option<String>,
    tone: Option<String>,
    urgency: Option<Urgency>,
}

/// Locks the lead (serialising concurrent actions on it) and returns its state.
async fn lock(conn: &mut AsyncPgConnection, scope: Tenant, id: Uuid) -> OpResult<LeadState> {
    use lead_memory as l;
    let state: LeadState = l::table
        .filter(l::tenant_id.eq(scope.id()))
        .filter(l::id.eq(id))
        .select((
            l::archived,
            l::deleted,
            l::customer_id,
            l::confidence_score,
            l::intent,
            l::tone,
            l::urgency,
        ))
        .for_update()
        .first(conn)
        .await
        .optional()?
        .ok_or_else(|| {
            user_error(
                UserErrorCode::NotFound,
                &["input", "leadId"],
                "no such lead",
            )
        })?;
    if state.deleted {
        return Err(user_error(
            UserErrorCode::InvalidTransition,
            &["input", "leadId"],
            "this lead is deleted",
        ));
    }
    Ok(state)
}

async fn is_converted(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
    lead: Uuid,
) -> QueryResult<bool> {
    let last: Option<LeadActionType> = lead_actions::table
        .filter(lead_actions::tenant_id.eq(scope.id()))
        .filter(lead_actions::lead_id.eq(lead))
        .filter(
            lead_actions::action_type.eq_any([LeadActionType::Converted, LeadActionType::Reverted]),
        )
        .order((lead_actions::timestamp.desc(), lead_actions::id.desc()))
        .select(lead_actions::action_type)
        .first(conn)
        .await
        .optional()?;
    Ok(last == Some(LeadActionType::Converted))
}

fn target(
    scope: Tenant,
    id: Uuid,
) -> diesel::dsl::Filter<
    diesel::dsl::Filter<lead_memory::table, diesel::dsl::Eq<lead_memory::tenant_id, Uuid>>,
    diesel::dsl::Eq<lead_memory::id, Uuid>,
> {
    lead_memory::table
        .filter(lead_memory::tenant_id.eq(scope.id()))
        .filter(lead_memory::id.eq(id))
}

pub async fn tag(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
    id: Uuid,
    tag: &str,
) -> OpResult<Uuid> {
    if !valid_tag(tag) {
        return Err(user_error(
            UserErrorCode::Invalid,
            &["input", "tag"],
            "a tag is 1-50 letters, digits, spaces, - or _",
        ));
    }
    lock(conn, scope, id).await?;
    let tag = tag.trim();
    diesel::update(target(scope, id))
        .set(lead_memory::current_tag.eq(tag))
        .execute(conn)
        .await?;
    record_action(
        conn,
        scope,
        id,
        LeadActionType::Tagged,
        Action {
            tag: Some(tag),
            ..Action::default()
        },
    )
    .await?;
    Ok(id)
}

pub async fn archive(conn: &mut AsyncPgConnection, scope: Tenant, id: Uuid) -> OpResult<Uuid> {
    if lock(conn, scope, id).await?.archived {
        return Err(user_error(
            UserErrorCode::InvalidTransition,
            &["input", "leadId"],
            "this lead is already archived",
        ));
    }
    diesel::update(target(scope, id))
        .set(lead_memory::archived.eq(true))
        .execute(conn)
        .await?;
    record_action(conn, scope, id, LeadActionType::Archived, Action::default()).await?;
    Ok(id)
}

pub async fn reactivate(conn: &mut AsyncPgConnection, scope: Tenant, id: Uuid) -> OpResult<Uuid> {
    if !lock(conn, scope, id).await?.archived {
        return Err(user_error(
            UserErrorCode::InvalidTransition,
            &["input", "leadId"],
            "only an archived lead can be reactivated",
        ));
    }
    diesel::update(target(scope, id))
        .set(lead_memory::archived.eq(false))
        .execute(conn)
        .await?;
    record_action(
        conn,
        scope,
        id,
        LeadActionType::Reactivated,
        Action::default(),
    )
    .await?;
    Ok(id)
}

/// Soft delete: the lead stays for the audit trail, hidden by default.
pub async fn delete(conn: &mut AsyncPgConnection, scope: Tenant, id: Uuid) -> OpResult<Uuid> {
    lock(conn, scope, id).await?;
    diesel::update(target(scope, id))
        .set(lead_memory::deleted.eq(true))
        .execute(conn)
        .await?;
    record_action(conn, scope, id, LeadActionType::Deleted, Action::default()).await?;
    Ok(id)
}

async fn record_feedback(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
    lead: Uuid,
    state: &LeadState,
    positive: bool,
    reason: Option<&str>,
) -> QueryResult<()> {
    let (en, fr) = if positive {
        (
            "The predicted lead converted.".to_owned(),
            "Le lead prédit a converti.".to_owned(),
        )
    } else {
        (
            format!("The conversion was reverted: {}", reason.unwrap_or("")),
            format!("La conversion a été annulée : {}", reason.unwrap_or("")),
        )
    };
    diesel::insert_into(feedback_tracking::table)
        .values((
            feedback_tracking::tenant_id.eq(scope.id()),
            feedback_tracking::lead_id.eq(lead),
            feedback_tracking::action_type.eq("lead_conversion"),
            feedback_tracking::outcome.eq(if positive { "positive" } else { "negative" }),
            feedback_tracking::confidence_score.eq(&state.confidence_score),
            feedback_tracking::impact_score.eq(if positive { 50 } else { -50 }),
            feedback_tracking::context_data
                .eq(json!({ "predictedIntent": state.intent, "reason": reason })),
            feedback_tracking::notes_en.eq(en),
            feedback_tracking::notes_fr.eq(fr),
        ))
        .execute(conn)
        .await
        .map(|_| ())
}

/// Converts the lead into a customer (the given one, or one found or created by the
/// lead's email), linking the lead to that customer's 360.
pub async fn convert(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
    id: Uuid,
    customer: Option<Uuid>,
) -> OpResult<Uuid> {
    let state = lock(conn, scope, id).await?;
    if is_converted(conn, scope, id).await? {
        return Err(user_error(
            UserErrorCode::InvalidTransition,
            &["input", "leadId"],
            "this lead is already converted",
        ));
    }
    let customer_id = match customer {
        Some(c) => customers::table
            .filter(customers::tenant_id.eq(scope.id()))
            .filter(customers::id.eq(c))
            .select(customers::id)
            .first::<Uuid>(conn)
            .await
            .optional()?
            .ok_or_else(|| {
                user_error(
                    UserErrorCode::NotFound,
                    &["input", "customerId"],
                    "no such customer",
                )
            })?,
        None => {
            let (email, name): (String, String) = lead_memory::table
                .filter(lead_memory::tenant_id.eq(scope.id()))
                .filter(lead_memory::id.eq(id))
                .select((lead_memory::email, lead_memory::name))
                .first(conn)
                .await?;
            let upsert = crate::domain::customers::ops::UpsertCustomer {
                email: Some(email),
                external_id: None,
                name: Some(name),
                phone: None,
                segment: None,
                churn_risk: None,
                metadata: None,
            };
            crate::domain::customers::ops::upsert_customer(conn, scope, upsert, None)
                .await?
                .0
        }
    };
    diesel::update(target(scope, id))
        .set((
            lead_memory::customer_id.eq(customer_id),
            lead_memory::current_tag.eq("Converted"),
        ))
        .execute(conn)
        .await?;
    record_action(
        conn,
        scope,
        id,
        LeadActionType::Converted,
        Action {
            conversion_outcome: Some(true),
            ..Action::default()
        },
    )
    .await?;
    record_feedback(conn, scope, id, &state, true, None).await?;
    let _ = state.customer_id;
    Ok(id)
}

pub async fn revert_conversion(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
    id: Uuid,
    reason: &str,
) -> OpResult<Uuid> {
    let reason = reason.trim();
    if reason.is_empty() || reason.chars().count() > 1000 || reason.contains('\0') {
        return Err(user_error(
            UserErrorCode::Invalid,
            &["input", "reason"],
            "a reason (1-1000 characters) is required",
        ));
    }
    let state = lock(conn, scope, id).await?;
    if !is_converted(conn, scope, id).await? {
        return Err(user_error(
            UserErrorCode::InvalidTransition,
            &["input", "leadId"],
            "this lead is not converted",
        ));
    }
    diesel::update(target(scope, id))
        .set((
            lead_memory::customer_id.eq(None::<Uuid>),
            lead_memory::current_tag.eq(None::<String>),
        ))
        .execute(conn)
        .await?;
    record_action(
        conn,
        scope,
        id,
        LeadActionType::Reverted,
        Action {
            conversion_outcome: Some(false),
            reversion_reason: Some(reason),
            ..Action::default()
        },
    )
    .await?;
    record_feedback(conn, scope, id, &state, false, Some(reason)).await?;
    Ok(id)
}

#[derive(Debug, Clone, Default)]
pub struct Analysis {
    pub ai_summary: Option<String>,
    pub intent: Option<String>,
    pub tone: Option<String>,
    pub urgency: Option<Urgency>,
    pub confidence_score: Option<BigDecimal>,
}

/// A new AI analysis: changed tone, confidence or urgency values append to the history.
pub async fn update_analysis(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
    id: Uuid,
    analysis: Analysis,
) -> OpResult<Uuid> {
    check_text("aiSummary", analysis.ai_summary.as_deref(), 5_000)?;
    check_text("intent", analysis.intent.as_deref(), 200)?;
    check_text("tone", analysis.tone.as_deref(), 100)?;
    check_confidence(&analysis.confidence_score)?;
    let current = lock(conn, scope, id).await?;
    use lead_memory as l;
    let append = |column: &str, value: serde_json::Value| {
        diesel::dsl::sql::<diesel::sql_types::Jsonb>(&format!("{column} || "))
            .bind::<diesel::sql_types::Jsonb, _>(history_entry(value))
    };
    // A changed tone, urgency or confidence appends to its history; one UPDATE sets them
    // all, none when nothing is given.
    let tone = (analysis.tone.as_ref()).filter(|t| Some(*t) != current.tone.as_ref());
    let urgency = analysis.urgency.filter(|u| Some(*u) != current.urgency);
    let confidence = (analysis.confidence_score.as_ref())
        .filter(|c| Some(*c) != current.confidence_score.as_ref());
    let (summary, intent) = (analysis.ai_summary.as_ref(), analysis.intent.as_ref());
    let given = tone.is_some()
        || urgency.is_some()
        || confidence.is_some()
        || summary.is_some()
        || intent.is_some();
    let changes = (
        tone.map(|t| {
            (
                l::tone.eq(t),
                l::tone_history.eq(append("tone_history", json!(t))),
            )
        }),
        urgency.map(|u| {
            let entry = append("urgency_history", json!(u.as_str()));
            (l::urgency.eq(u), l::urgency_history.eq(entry))
        }),
        confidence.map(|c| {
            let entry = append("confidence_history", json!(c.to_string()));
            (l::confidence_score.eq(c), l::confidence_history.eq(entry))
        }),
        summary.map(|summary| l::ai_summary.eq(summary)),
        intent.map(|intent| l::intent.eq(intent)),
    );
    if given {
        diesel::update(target(scope, id))
            .set(changes)
            .execute(conn)
            .await?;
    }
    events::record(conn, scope, "lead.analysis_updated", id, json!({})).await?;
    Ok(id)
}

fn check_note(note: &str) -> Result<(), OpError> {
    if note.trim().is_empty() || note.chars().count() > 10_000 || note.contains('\0') {
        return Err(user_error(
            UserErrorCode::Invalid,
            &["input", "note"],
            "a note is 1-10000 characters",
        ));
    }
    Ok(())
}

pub async fn add_note(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
    lead: Uuid,
    note: &str,
) -> OpResult<LeadNote> {
    check_note(note)?;
    lock(conn, scope, lead).await?;
    let note = diesel::insert_into(lead_notes::table)
        .values((
            lead_notes::tenant_id.eq(scope.id()),
            lead_notes::lead_id.eq(lead),
            lead_notes::note.eq(note.trim()),
        ))
        .returning(LeadNote::as_returning())
        .get_result(conn)
        .await?;
    events::record(
        conn,
        scope,
        "lead.note_added",
        lead,
        json!({ "noteId": note.id }),
    )
    .await?;
    Ok(note)
}

pub async fn update_note(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
    id: Uuid,
    text: &str,
) -> OpResult<LeadNote> {
    check_note(text)?;
    let note = diesel::update(
        lead_notes::table
            .filter(lead_notes::tenant_id.eq(scope.id()))
            .filter(lead_notes::id.eq(id)),
    )
    .set(lead_notes::note.eq(text.trim()))
    .returning(LeadNote::as_returning())
    .get_result(conn)
    .await
    .optional()?
    .ok_or_else(|| {
        user_error(
            UserErrorCode::NotFound,
            &["input", "noteId"],
            "no such note",
        )
    })?;
    events::record(
        conn,
        scope,
        "lead.note_updated",
        note.lead_id,
        json!({ "noteId": note.id }),
    )
    .await?;
    Ok(note)
}
