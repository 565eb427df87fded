//! Reads of the channels, the message log, and the voice agents' records (calls,
//! appointments, prospects, support tickets); lists are newest first.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};

use super::model::{
    Appointment, Call, Channel, ChannelConfiguration, Communication, Prospect, ProspectStatus,
    Ticket, TicketStatus,
};
use crate::db::schema::{
    call_logs, channel_configurations, communication_log, prospects, rendez_vous, tickets,
};
use crate::db::Tenant;
use crate::graphql::connection::PageRequest;

pub async fn list_calls(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
    page: &PageRequest<DateTime<Utc>>,
) -> QueryResult<Vec<Call>> {
    use call_logs as c;
    let query = c::table
        .filter(c::tenant_id.eq(scope.id()))
        .select(Call::as_select())
        .limit(page.limit())
        .into_boxed();
    crate::keyset!(query, page, c::created_at, c::id, desc)
        .load(conn)
        .await
}

pub async fn list_appointments(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
    page: &PageRequest<DateTime<Utc>>,
) -> QueryResult<Vec<Appointment>> {
    use rendez_vous as r;
    let query = r::table
        .filter(r::tenant_id.eq(scope.id()))
        .select(Appointment::as_select())
        .limit(page.limit())
        .into_boxed();
    crate::keyset!(query, page, r::created_at, r::id, desc)
        .load(conn)
        .await
}

pub async fn list_tickets(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
    status: Option<TicketStatus>,
    page: &PageRequest<DateTime<Utc>>,
) -> QueryResult<Vec<Ticket>> {
    use tickets as t;
    let mut query = t::table
        .filter(t::tenant_id.eq(scope.id()))
        .select(Ticket::as_select())
        .limit(page.limit())
        .into_boxed();
    if let Some(status) = status {
        query = query.filter(t::status.eq(status));
    }
    crate::keyset!(query, page, t::created_at, t::id, desc)
        .load(conn)
        .await
}

pub async fn list_prospects(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
    status: Option<ProspectStatus>,
    page: &PageRequest<DateTime<Utc>>,
) -> QueryResult<Vec<Prospect>> {
    use prospects as p;
    let mut query = p::table
        .filter(p::tenant_id.eq(scope.id()))
        .select(Prospect::as_select())
        .limit(page.limit())
        .into_boxed();
    if let Some(status) = status {
        query = query.filter(p::status.eq(status));
    }
    crate::keyset!(query, page, p::created_at, p::id, desc)
        .load(conn)
        .await
}

/// Every channel configuration of the tenant (a handful), by channel then provider.
pub async fn channels(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
) -> QueryResult<Vec<ChannelConfiguration>> {
    use channel_configurations as c;
    c::table
        .filter(c::tenant_id.eq(scope.id()))
        .select(ChannelConfiguration::as_select())
        .order((c::channel_type, c::provider))
        .load(conn)
        .await
}

/// The tenant's message log (every customer's, and messages to no known customer),
/// optionally on one channel.
pub async fn list_messages(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
    channel: Option<Channel>,
    page: &PageRequest<DateTime<Utc>>,
) -> QueryResult<Vec<Communication>> {
    use communication_log as m;
    let mut query = m::table
        .filter(m::tenant_id.eq(scope.id()))
        .select(Communication::as_select())
        .limit(page.limit())
        .into_boxed();
    if let Some(channel) = channel {
        query = query.filter(m::channel.eq(channel));
    }
    crate::keyset!(query, page, m::created_at, m::id, desc)
        .load(conn)
        .await
}
