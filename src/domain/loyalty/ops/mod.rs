//! The loyalty rules, each in exactly one place: enrollment lifecycle (one active
//! enrollment per customer, upgrades keep `enrolled_at`, renewals extend from the current
//! expiry), the points ledger (append-only, running balance, never negative), and
//! redemptions (stock, balance and transitions). The database enforces the invariants a
//! second time (partial unique index, ledger triggers, CHECKs); see the loyalty migration.
//!
//! One file per part: [`reads`], [`program`], [`enrollment`], [`ledger`], [`rewards`].

use bigdecimal::{BigDecimal, RoundingMode, ToPrimitive};
use chrono::{DateTime, Months, Utc};
use diesel::pg::Pg;
use diesel::prelude::*;
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use serde::{Deserialize, Serialize};
use serde_json::json;
use uuid::Uuid;

use super::model::*;
use crate::db::filter::FilterSome;
use crate::db::page::PageRequest;
use crate::db::schema::{
    club_enrollments, club_extensions, club_programs, club_stages, customers, loyalty_point_rules,
    loyalty_rewards, order_refunds, orders, point_transactions, queue_jobs, reward_redemptions,
};
use crate::db::Tenant;
use crate::domain::{
    check_money, events, idempotency, user_error, OpError, OpResult, UserErrorCode,
};
use crate::error::AppResult;

mod enrollment;
mod ledger;
mod program;
mod reads;
mod rewards;

pub use enrollment::*;
pub use ledger::*;
pub use program::*;
pub use reads::*;
pub use rewards::*;
