//! The channels' configurations and the voice agents' records (calls, appointments,
//! prospects, support tickets): reads (lists newest first) and writes, one file each.

mod appointments;
mod calls;
mod channels;
mod prospecting;
mod support;

pub use appointments::*;
pub use calls::*;
pub use channels::*;
pub use prospecting::*;
pub use support::*;

use chrono::{DateTime, NaiveDate, NaiveTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};

use serde_json::json;
use uuid::Uuid;

use super::model::{
    Appointment, AppointmentFields, AppointmentStatus, Call, CallDirection, CallFields,
    CallProvider, CallStatus, Channel, ChannelConfiguration, ChannelFields, ChannelProvider,
    Prospect, ProspectFields, ProspectStatus, Ticket, TicketFields, TicketPriority, TicketStatus,
};
use crate::db::filter::FilterSome;
use crate::db::page::PageRequest;
use crate::db::schema::{call_logs, channel_configurations, prospects, rendez_vous, tickets};
use crate::db::Tenant;
use crate::domain::customers::ops::valid_email;
use crate::domain::{
    check_json_object, check_required_text, check_text, events, user_error, OpResult, UserErrorCode,
};
use crate::error::AppError;
use crate::secrets::SecretKey;

/// The customer and the call an input names, when it names them, must be the tenant's
/// (`NOT_FOUND` on `customerId` or `callId` otherwise).
async fn check_references(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
    customer: Option<Uuid>,
    call: Option<Uuid>,
) -> OpResult<()> {
    if let Some(customer) = customer {
        let _: Uuid = crate::tenant_row!(
            conn,
            scope,
            customers,
            customer,
            table::id,
            &["input", "customerId"],
            "no such customer"
        )?;
    }
    if let Some(call) = call {
        let _: Uuid = crate::tenant_row!(
            conn,
            scope,
            call_logs,
            call,
            table::id,
            &["input", "callId"],
            "no such call"
        )?;
    }
    Ok(())
}
