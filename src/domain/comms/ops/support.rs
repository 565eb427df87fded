//! Support tickets: listed, opened and updated.

#[allow(unused_imports)]
use super::*;

pub async fn list_tickets(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
    status: Option<TicketStatus>,
    page: &PageRequest<DateTime<Utc>>,
) -> QueryResult<Vec<Ticket>> {
    crate::newest_first!(conn, scope, tickets, Ticket, page, status = status)
}

/// Opens a support ticket, numbered `TCK-0001`, `TCK-0002`… per tenant (one numbering at
/// a time: a transaction-scoped advisory lock on the tenant's tickets). A customer or
/// call it names must be the tenant's.
pub async fn open_ticket(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
    fields: TicketFields,
) -> OpResult<Ticket> {
    use tickets as t;
    check_ticket(&fields)?;
    check_references(conn, scope, fields.customer_id, fields.call_id).await?;
    diesel::sql_query("SELECT pg_advisory_xact_lock(hashtext('tickets/' || $1::text))")
        .bind::<diesel::sql_types::Uuid, _>(scope.id())
        .execute(conn)
        .await?;
    #[derive(QueryableByName)]
    struct Next {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        next: i64,
    }
    let Next { next } = diesel::sql_query(
        "SELECT coalesce(max(substring(ticket_number FROM 5)::bigint), 0) + 1 AS next \
         FROM tickets WHERE tenant_id = $1 AND ticket_number ~ '^TCK-[0-9]{1,15}$'",
    )
    .bind::<diesel::sql_types::Uuid, _>(scope.id())
    .get_result(conn)
    .await?;
    let ticket = diesel::insert_into(t::table)
        .values((
            t::tenant_id.eq(scope.id()),
            t::ticket_number.eq(format!("TCK-{next:04}")),
            fields,
        ))
        .returning(Ticket::as_returning())
        .get_result(conn)
        .await?;
    record_ticket(conn, scope, &ticket).await?;
    Ok(ticket)
}

/// Changes a ticket's status, priority or assignee. Status: `open → in_progress |
/// resolved | closed`, `in_progress → open | resolved | closed`, `resolved → in_progress
/// (reopened) | closed`; `closed` is final. Resolving stamps `resolvedAt`, reopening
/// clears it; anything else is an `INVALID_TRANSITION`, nothing written.
pub async fn update_ticket(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
    id: Uuid,
    status: Option<TicketStatus>,
    priority: Option<TicketPriority>,
    assigned_to: Option<Option<String>>,
) -> OpResult<Ticket> {
    use tickets as t;
    use TicketStatus::*;
    if status.is_none() && priority.is_none() && assigned_to.is_none() {
        return Err(user_error(
            UserErrorCode::Invalid,
            &["input"],
            "give a status, a priority or an assignee",
        ));
    }
    if let Some(Some(assignee)) = &assigned_to {
        check_text("assignedTo", Some(assignee), 200)?;
    }
    let target = t::table
        .filter(t::tenant_id.eq(scope.id()))
        .filter(t::id.eq(id));
    let current: TicketStatus = crate::tenant_row!(
        locked conn, scope, tickets, id, table::status, &["input", "id"], "no such ticket"
    )?;
    let resolved_at = match status {
        None => None,
        Some(next) if next == current => None,
        Some(next) => match (current, next) {
            (Open | InProgress, Resolved) => Some(Some(chrono::Utc::now())),
            (Resolved, InProgress) => Some(None),
            (Open, InProgress) | (InProgress, Open) | (Open | InProgress | Resolved, Closed) => {
                None
            }
            (from, to) => {
                return Err(user_error(
                    UserErrorCode::InvalidTransition,
                    &["input", "status"],
                    &format!("not allowed from {} to {}", from.as_str(), to.as_str()),
                ));
            }
        },
    };
    if current == Closed {
        return Err(user_error(
            UserErrorCode::InvalidTransition,
            &["input", "id"],
            "a closed ticket does not change",
        ));
    }
    let ticket = diesel::update(target)
        .set((
            status.map(|s| t::status.eq(s)),
            priority.map(|p| t::priority.eq(p)),
            assigned_to.map(|a| t::assigned_to.eq(a)),
            resolved_at.map(|r| t::resolved_at.eq(r)),
        ))
        .returning(Ticket::as_returning())
        .get_result(conn)
        .await?;
    record_ticket(conn, scope, &ticket).await?;
    Ok(ticket)
}

fn check_ticket(fields: &TicketFields) -> OpResult<()> {
    check_required_text("subject", &fields.subject, 300)?;
    check_text("description", fields.description.as_deref(), 10_000)?;
    check_text("category", fields.category.as_deref(), 100)?;
    check_text("customerName", fields.customer_name.as_deref(), 200)?;
    check_text("customerPhone", fields.customer_phone.as_deref(), 50)?;
    if let Some(email) = &fields.customer_email {
        if !valid_email(email) {
            return Err(user_error(
                UserErrorCode::Invalid,
                &["input", "customerEmail"],
                "not an email address",
            ));
        }
    }
    Ok(())
}

async fn record_ticket(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
    ticket: &Ticket,
) -> QueryResult<()> {
    events::record(
        conn,
        scope,
        "ticket.changed",
        ticket.id,
        json!({
            "ticketNumber": ticket.ticket_number,
            "status": ticket.status.as_str(),
            "priority": ticket.priority.as_str(),
        }),
    )
    .await
}
