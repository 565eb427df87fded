//! The connection a request (or a read group) holds, its read snapshot, and whether the
//! database has confirmed the request's caller.

use super::*;

/// The connection one request (or one read group) holds (its transaction manager knows
/// whether the read snapshot is open), and whether the database has confirmed the
/// request's caller.
#[derive(Default)]
pub(super) struct Session {
    pub(super) conn: Option<Object<AsyncPgConnection>>,
    pub(super) caller: Caller,
    /// A read group's: closed as the session takes a connection.
    pub(super) gate: Option<Arc<Gate>>,
    /// The read group's slot among its caller's connections, while it holds one.
    pub(super) slot: Option<OwnedSemaphorePermit>,
    /// The tenant's share of the pool the connection is taken under (request sessions),
    /// and the permit once taken (held until the session ends).
    pub(super) share: Option<(Arc<TenantShares>, Uuid)>,
    pub(super) share_permit: Option<OwnedSemaphorePermit>,
    /// Why the session could not take a connection, when it could not (the pool or the
    /// tenant's share busy): a caller not confirmed by then cannot be now.
    pub(super) busy: Option<AppError>,
}

/// A read group's session outlives a member that went away without finishing (a client
/// that disconnected): when the last handle goes, its read snapshot ends and the
/// connection goes back to the pool clean. (A group never writes, so the only
/// transaction it can have open is that snapshot.)
impl Drop for Session {
    fn drop(&mut self) {
        if self.gate.is_some() {
            self.end_read();
        }
    }
}

/// Who the request's statements run for, as far as the database has said.
#[derive(Default)]
pub(super) enum Caller {
    /// Looked up or confirmed in the request's snapshot (or no key involved).
    #[default]
    Confirmed,
    /// Not yet: the statement that confirms the caller and scopes the snapshot to its
    /// tenant, to be sent ahead of the request's first statement.
    Unconfirmed(String),
    /// The database did not confirm it (or the statement sent with the confirmation
    /// failed): nothing more runs for this request.
    Refused,
}

pub(super) fn refused() -> AppError {
    AppError::Unauthenticated("missing or invalid API key")
}

impl Session {
    pub(super) fn new(
        conn: Option<Object<AsyncPgConnection>>,
        caller: Caller,
        gate: Option<Arc<Gate>>,
    ) -> Self {
        Self {
            conn,
            caller,
            gate,
            slot: None,
            share: None,
            share_permit: None,
            busy: None,
        }
    }

    pub(super) async fn connection(
        &mut self,
        pool: &PgPool,
    ) -> Result<&mut AsyncPgConnection, AppError> {
        let conn = match self.conn.take() {
            Some(conn) => conn,
            None => {
                if let (Some(gate), None) = (&self.gate, &self.slot) {
                    self.slot = Some(gate.slot().await);
                }
                if let (Some((shares, tenant)), None) = (&self.share, &self.share_permit) {
                    match shares.acquire(*tenant).await {
                        Ok(permit) => self.share_permit = Some(permit),
                        Err(busy) => return Err(self.busy.insert(busy).clone()),
                    }
                }
                let conn = match crate::db::checkout(pool).await {
                    Ok(conn) => conn,
                    Err(busy) => return Err(self.busy.insert(busy.into()).clone()),
                };
                // Before any statement of the group's snapshot is sent.
                if let Some(gate) = &self.gate {
                    gate.close();
                }
                conn
            }
        };
        Ok(&mut **self.conn.insert(conn))
    }

    /// Ends the read snapshot, if one is open, without waiting for the answer: the
    /// `COMMIT` is sent, and the connection's next user pipelines its own statements
    /// behind it (a read-only snapshot has nothing to fail on; on a broken connection the
    /// next statement fails as well, and the pool drops it then).
    pub(super) fn end_read(&mut self) {
        let Some(conn) = self.conn.as_mut() else {
            return;
        };
        if !in_transaction(conn) {
            return;
        }
        let ended = send_unanswered(conn, "COMMIT")
            && record_depth(conn, TransactionDepthChange::DecreaseDepth).is_ok();
        if !ended {
            self.conn = None;
        }
    }

    /// The caller's confirmation statement if it is still to be sent (the caller counts
    /// as refused from now until a statement after it succeeds); an error if the caller
    /// was refused.
    pub(super) fn take_confirmation(&mut self) -> Result<Option<String>, AppError> {
        match std::mem::replace(&mut self.caller, Caller::Refused) {
            Caller::Confirmed => {
                self.caller = Caller::Confirmed;
                Ok(None)
            }
            Caller::Refused => Err(refused()),
            Caller::Unconfirmed(statement) => Ok(Some(statement)),
        }
    }

    /// The caller's confirmation statement if it is still to be sent, with the
    /// connection to send it on (outside any transaction: it opens the read snapshot).
    pub(super) async fn due_confirmation(
        &mut self,
        pool: &PgPool,
    ) -> Result<Option<(String, &mut AsyncPgConnection)>, AppError> {
        match self.caller {
            Caller::Confirmed => return Ok(None),
            Caller::Refused => return Err(refused()),
            Caller::Unconfirmed(_) => {}
        }
        // The connection first: not getting one (the pool or the tenant's share busy)
        // says nothing about the caller, who must not count as refused for it.
        self.connection(pool).await?;
        let Some(statement) = self.take_confirmation()? else {
            return Ok(None);
        };
        // A read group's members may hold several keys of the tenant: each is confirmed
        // (the gate closed as the connection was taken).
        let statement = match &self.gate {
            Some(gate) => gate.confirmations(),
            None => statement,
        };
        let conn: &mut AsyncPgConnection = self.conn.as_mut().expect("connection just taken");
        if in_transaction(conn) {
            return Err(diesel::result::Error::AlreadyInTransaction.into());
        }
        Ok(Some((statement, conn)))
    }

    /// Sends the caller's confirmation, if it is still to be sent, without waiting for
    /// its answer: it opens the read snapshot, and the statement sent next on the
    /// connection proves it (that statement fails when the confirmation did; then call
    /// [`Session::settle`]). `Ok(true)` when it was sent now.
    pub(super) async fn send_confirmation(&mut self, pool: &PgPool) -> Result<bool, AppError> {
        let Some((statement, conn)) = self.due_confirmation(pool).await? else {
            return Ok(false);
        };
        let sent = [BEGIN_READ, statement.as_str()]
            .into_iter()
            .all(|sql| send_unanswered(conn, sql));
        if !sent || record_depth(conn, TransactionDepthChange::IncreaseDepth).is_err() {
            self.discard();
            return Err(refused());
        }
        Ok(true)
    }

    /// Returns the connection to the pool, its read snapshot (if open) rolled back.
    pub(super) async fn give_back(&mut self) {
        let Some(conn) = self.conn.as_mut() else {
            return;
        };
        let conn: &mut AsyncPgConnection = conn;
        if in_transaction(conn)
            && AnsiTransactionManager::rollback_transaction(conn)
                .await
                .is_err()
        {
            return self.discard();
        }
        self.conn = None;
    }

    /// Closes the connection instead of returning it to the pool: its state is unknown
    /// (a transaction may be open that its transaction manager does not know of).
    pub(super) fn discard(&mut self) {
        if let Some(conn) = self.conn.take() {
            drop(Object::take(conn));
        }
    }

    /// Confirms the caller now if it is not yet, before anything is written for it or its
    /// response is sent: the confirmation begins the read snapshot as a key lookup does
    /// ([`begin_request_snapshot`]: one round trip with the `BEGIN`, rolled back when it
    /// fails).
    pub(super) async fn confirm(&mut self, pool: &PgPool) -> Result<(), AppError> {
        let Some((statement, conn)) = self.due_confirmation(pool).await? else {
            return Ok(());
        };
        let confirmed = begin_request_snapshot(conn, true, move |conn| {
            async move {
                let mut conn = conn;
                SimpleAsyncConnection::batch_execute(&mut conn, &statement)
                    .await
                    .map(Some)
            }
            .boxed()
        })
        .await;
        match confirmed {
            Ok(Some(())) => {
                self.caller = Caller::Confirmed;
                Ok(())
            }
            _ => {
                self.conn = None;
                Err(refused())
            }
        }
    }

    /// Records what the first statement after the confirmation proved: the caller is
    /// confirmed, or refused and the snapshot rolled back.
    pub(super) async fn settle(&mut self, proven: bool) {
        if proven {
            self.caller = Caller::Confirmed;
        } else if let Some(conn) = self.conn.as_mut() {
            let conn: &mut AsyncPgConnection = conn;
            let _ = AnsiTransactionManager::rollback_transaction(conn).await;
            self.conn = None;
        }
    }
}
