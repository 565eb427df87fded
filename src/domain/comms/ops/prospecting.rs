//! Prospects the voice agents found: listed, recorded and updated.

#[allow(unused_imports)]
use super::*;

pub async fn list_prospects(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
    status: Option<ProspectStatus>,
    page: &PageRequest<DateTime<Utc>>,
) -> QueryResult<Vec<Prospect>> {
    crate::newest_first!(conn, scope, prospects, Prospect, page, status = status)
}

/// Records a prospect the qualification agent met (status `new`). A call it names must
/// be the tenant's.
pub async fn record_prospect(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
    fields: ProspectFields,
) -> OpResult<Prospect> {
    check_required_text("name", &fields.name, 200)?;
    check_prospect_text(&fields)?;
    check_score(fields.qualification_score)?;
    check_references(conn, scope, None, fields.call_id).await?;
    let prospect = diesel::insert_into(prospects::table)
        .values((prospects::tenant_id.eq(scope.id()), fields))
        .returning(Prospect::as_returning())
        .get_result(conn)
        .await?;
    record_prospect_event(conn, scope, &prospect).await?;
    Ok(prospect)
}

/// Moves a prospect along and rescores it: `new → qualified | unqualified | contacted`,
/// `qualified → contacted | unqualified | converted`, `contacted → qualified |
/// unqualified | converted`, `unqualified → qualified` (requalified); `converted` is
/// final (`INVALID_TRANSITION`, nothing written).
pub async fn update_prospect(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
    id: Uuid,
    status: Option<ProspectStatus>,
    score: Option<Option<i32>>,
    notes: Option<Option<String>>,
) -> OpResult<Prospect> {
    use prospects as p;
    use ProspectStatus::*;
    if status.is_none() && score.is_none() && notes.is_none() {
        return Err(user_error(
            UserErrorCode::Invalid,
            &["input"],
            "give a status, a score or notes",
        ));
    }
    check_score(score.flatten())?;
    check_text("notes", notes.as_ref().and_then(|n| n.as_deref()), 10_000)?;
    let current: ProspectStatus = crate::tenant_row!(
        locked conn,
        scope,
        prospects,
        id,
        table::status,
        &["input", "id"],
        "no such prospect"
    )?;
    let allowed = match (current, status) {
        (Converted, _) => false,
        (_, None) => true,
        (from, Some(to)) if from == to => true,
        (New, Some(Qualified | Unqualified | Contacted))
        | (Qualified, Some(Contacted | Unqualified | Converted))
        | (Contacted, Some(Qualified | Unqualified | Converted))
        | (Unqualified, Some(Qualified)) => true,
        _ => false,
    };
    if !allowed {
        return Err(user_error(
            UserErrorCode::InvalidTransition,
            &["input", "status"],
            &format!("not allowed from {}", current.as_str()),
        ));
    }
    let prospect = diesel::update(
        p::table
            .filter(p::tenant_id.eq(scope.id()))
            .filter(p::id.eq(id)),
    )
    .set((
        status.map(|s| p::status.eq(s)),
        score.map(|s| p::qualification_score.eq(s)),
        notes.map(|n| p::notes.eq(n)),
    ))
    .returning(Prospect::as_returning())
    .get_result(conn)
    .await?;
    record_prospect_event(conn, scope, &prospect).await?;
    Ok(prospect)
}

fn check_prospect_text(fields: &ProspectFields) -> OpResult<()> {
    for (field, value, max) in [
        ("phone", &fields.phone, 50),
        ("company", &fields.company, 200),
        ("need", &fields.need, 2_000),
        ("budget", &fields.budget, 200),
        ("timeline", &fields.timeline, 200),
        ("notes", &fields.notes, 10_000),
    ] {
        check_text(field, value.as_deref(), max)?;
    }
    if fields.email.as_deref().is_some_and(|e| !valid_email(e)) {
        return Err(user_error(
            UserErrorCode::Invalid,
            &["input", "email"],
            "not an email address",
        ));
    }
    Ok(())
}

fn check_score(score: Option<i32>) -> OpResult<()> {
    if score.is_some_and(|s| !(0..=100).contains(&s)) {
        return Err(user_error(
            UserErrorCode::Invalid,
            &["input", "qualificationScore"],
            "qualificationScore must be between 0 and 100",
        ));
    }
    Ok(())
}

async fn record_prospect_event(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
    prospect: &Prospect,
) -> QueryResult<()> {
    events::record(
        conn,
        scope,
        "prospect.changed",
        prospect.id,
        json!({ "status": prospect.status.as_str(), "qualificationScore": prospect.qualification_score }),
    )
    .await
}
