//! Templates, queueing, sending and status. `deliver` is the one way a message leaves:
//! it renders the message and writes its `communication_log` row (`queued`) and its
//! delivery job in the caller's transaction. The job runner ([`run_due`]) checks consent
//! at send time, picks the tenant's enabled configuration of the channel, and sends; the
//! providers' status hooks ([`apply_reports`]) move the message forward only.
//!
//! At most one provider call per message: a job is claimed by one runner
//! (`FOR UPDATE SKIP LOCKED`), and before a provider is called the message is marked
//! (`sending_started_at`, committed). A job claimed again while that mark is set had a
//! runner stop between the call and the record of its answer: the message is then failed
//! as `outcome_unknown` rather than sent twice — except through providers that recognise a
//! repeat themselves (Resend's `Idempotency-Key`), where it is sent again safely.

mod queue;
mod send;
mod status;
mod templates;

pub use queue::*;
pub use send::*;
pub use status::*;
pub use templates::*;

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use futures_util::StreamExt;
use scoped_futures::ScopedFutureExt;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::db::filter::FilterSome;
use crate::db::page::PageRequest;
use crate::db::schema::{
    channel_configurations, communication_log, communication_preferences, communication_templates,
    customers, email_events, email_templates, queue_jobs,
};
use crate::db::{Tenant, TenantDb};
use crate::domain::campaigns::model::RecipientStatus;
use crate::domain::comms::model::{Channel, ChannelProvider, MessageStatus};
use crate::domain::customers::ops::valid_email;
use crate::domain::messages::hooks::{MessageRef, Report};
use crate::domain::messages::model::{
    CommunicationTemplate, CommunicationTemplateFields, CommunicationType, EmailEvent,
    EmailTemplate, EmailTemplateFields, Message, NewMessage, TemplateType,
};
use crate::domain::messages::providers::{Envelope, Outcome, Providers, Route};
use crate::domain::messages::templates::{self as engine, Fields, Rendered, Source};
use crate::domain::outreach::model::OutreachAction;
use crate::domain::{
    check_required_text, check_text, events, user_error, OpError, OpResult, UserError,
    UserErrorCode,
};
use crate::error::{AppError, AppResult};
use crate::secrets::SecretKey;
