//! A bounded pool of connections, each with its own statement cache, and
//! what a PostgreSQL error means for a retry.
//!
//! Connections are opened lazily up to the bound. A checkout waits at most
//! [`CHECKOUT_WAIT`] for one to come free. A connection that was closed or
//! failed with a connection error is dropped instead of being put back,
//! so the pool recovers by itself once the database is back.

use std::collections::HashMap;
use std::fmt;
use std::ops::{Deref, DerefMut};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use postgres::types::ToSql;
use postgres::{Client, NoTls, Row, Statement};

use crate::store::{Retry, StoreError};

/// How long a checkout waits for a free connection.
pub(super) const CHECKOUT_WAIT: Duration = Duration::from_secs(5);

/// A statement's parameters.
pub(super) type Params<'a> = &'a [&'a (dyn ToSql + Sync)];

/// A PostgreSQL failure as the store reports it: the SQLSTATE and the
/// server's message, never its DETAIL (which quotes the values of a row).
#[derive(Debug)]
pub(super) struct PgFailure {
    /// The SQLSTATE, when the server sent one.
    pub(super) code: Option<String>,
    text: String,
}

impl fmt::Display for PgFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.code {
            Some(code) => write!(f, "{} (SQLSTATE {code})", self.text),
            None => f.write_str(&self.text),
        }
    }
}

impl std::error::Error for PgFailure {}

/// Whether a failure with this SQLSTATE may go away if tried again.
pub(super) fn retry_of_code(code: &str) -> Retry {
    match code {
        // serialization_failure, deadlock_detected.
        "40001" | "40P01" => Retry::Now,
        // admin_shutdown, crash_shutdown, cannot_connect_now.
        "57P01" | "57P02" | "57P03" => Retry::Later,
        // Class 08: connection exception.
        c if c.starts_with("08") => Retry::Later,
        _ => Retry::No,
    }
}

/// A PostgreSQL error as a [`PgFailure`] and whether a retry helps.
pub(super) fn classify(e: &postgres::Error) -> (PgFailure, Retry) {
    if let Some(db) = e.as_db_error() {
        let code = db.code().code();
        let failure = PgFailure {
            code: Some(code.to_owned()),
            text: format!("{}: {}", db.severity(), db.message()),
        };
        return (failure, retry_of_code(code));
    }
    let io = std::error::Error::source(e).and_then(|s| s.downcast_ref::<std::io::Error>());
    let text = match io {
        Some(io) => format!("{e}: {io}"),
        None => e.to_string(),
    };
    // Closed, I/O, connecting and timing out all mean the connection is
    // gone; the rest (a value that does not convert, a wrong column) do not
    // go away.
    let lost = e.is_closed()
        || io.is_some()
        || text.starts_with("error connecting")
        || text.starts_with("timeout");
    let retry = if lost { Retry::Later } else { Retry::No };
    (PgFailure { code: None, text }, retry)
}

impl From<postgres::Error> for StoreError {
    fn from(e: postgres::Error) -> Self {
        let (failure, retry) = classify(&e);
        StoreError::database(failure, retry)
    }
}

/// The SQLSTATE of a store error from PostgreSQL, if it has one.
pub(super) fn sqlstate(e: &StoreError) -> Option<&str> {
    match e {
        StoreError::Database { source, .. } => source.downcast_ref::<PgFailure>()?.code.as_deref(),
        _ => None,
    }
}

/// Whether a store error is a unique violation (SQLSTATE 23505).
pub(super) fn is_unique_violation(e: &StoreError) -> bool {
    sqlstate(e) == Some("23505")
}

/// One connection with its statement cache. A statement that fails marks
/// it: `broken` when the connection is gone (it is not pooled again),
/// `aborted` when it failed inside a transaction, which PostgreSQL then
/// refuses to commit.
pub(super) struct Conn {
    client: Client,
    statements: HashMap<&'static str, Statement>,
    broken: bool,
    pub(super) in_tx: bool,
    pub(super) aborted: bool,
}

impl Conn {
    fn new(client: Client) -> Conn {
        Conn {
            client,
            statements: HashMap::new(),
            broken: false,
            in_tx: false,
            aborted: false,
        }
    }

    fn healthy(&self) -> bool {
        !self.broken && !self.in_tx && !self.client.is_closed()
    }

    /// Turns a failure into a [`StoreError`], marking the connection.
    fn fail(&mut self, e: postgres::Error) -> StoreError {
        let (failure, retry) = classify(&e);
        // Lost, or its cached statements no longer fit the schema (another
        // node migrated it: "cached plan must not change result type"): a
        // new connection prepares them again.
        if retry == Retry::Later || failure.code.as_deref() == Some("0A000") {
            self.broken = true;
        }
        if self.in_tx {
            self.aborted = true;
        }
        StoreError::database(failure, retry)
    }

    /// The prepared statement for `sql`, parsed once per connection.
    fn statement(&mut self, sql: &'static str) -> Result<Statement, StoreError> {
        if let Some(st) = self.statements.get(sql) {
            return Ok(st.clone());
        }
        match self.client.prepare(sql) {
            Ok(st) => {
                self.statements.insert(sql, st.clone());
                Ok(st)
            }
            Err(e) => Err(self.fail(e)),
        }
    }

    /// The rows `sql` returns.
    pub(super) fn rows(
        &mut self,
        sql: &'static str,
        p: Params<'_>,
    ) -> Result<Vec<Row>, StoreError> {
        let st = self.statement(sql)?;
        self.client.query(&st, p).map_err(|e| self.fail(e))
    }

    /// The row `sql` returns, if any.
    pub(super) fn opt(
        &mut self,
        sql: &'static str,
        p: Params<'_>,
    ) -> Result<Option<Row>, StoreError> {
        let st = self.statement(sql)?;
        self.client.query_opt(&st, p).map_err(|e| self.fail(e))
    }

    /// The one row `sql` returns.
    pub(super) fn one(&mut self, sql: &'static str, p: Params<'_>) -> Result<Row, StoreError> {
        let st = self.statement(sql)?;
        self.client.query_one(&st, p).map_err(|e| self.fail(e))
    }

    /// Runs `sql`; the number of rows changed.
    pub(super) fn exec(&mut self, sql: &'static str, p: Params<'_>) -> Result<u64, StoreError> {
        let st = self.statement(sql)?;
        self.client.execute(&st, p).map_err(|e| self.fail(e))
    }

    /// Runs statements without parameters (the simple protocol).
    pub(super) fn batch(&mut self, sql: &str) -> Result<(), StoreError> {
        self.client.batch_execute(sql).map_err(|e| self.fail(e))
    }

    /// `BEGIN`.
    pub(super) fn begin(&mut self) -> Result<(), StoreError> {
        self.batch("BEGIN")?;
        self.in_tx = true;
        self.aborted = false;
        Ok(())
    }

    /// `COMMIT`, or a rollback and an error if a statement of the
    /// transaction failed (PostgreSQL answers such a `COMMIT` with a
    /// rollback, not an error).
    pub(super) fn commit(&mut self) -> Result<(), StoreError> {
        if self.aborted {
            self.rollback();
            return Err(StoreError::database(
                "a statement of the transaction failed, so it was rolled back",
                Retry::No,
            ));
        }
        let r = self.batch("COMMIT");
        // Whether it took or not, the transaction is over (or the
        // connection is broken and will not be pooled).
        self.in_tx = false;
        r
    }

    /// `ROLLBACK`, ignoring its error (the connection is then dropped).
    pub(super) fn rollback(&mut self) {
        if self.batch("ROLLBACK").is_ok() {
            self.in_tx = false;
            self.aborted = false;
        } else {
            self.broken = true;
        }
    }
}

/// The pool: idle connections, and how many are open in all.
pub(super) struct Pool {
    config: postgres::Config,
    size: usize,
    state: Mutex<PoolState>,
    freed: Condvar,
}

struct PoolState {
    idle: Vec<Conn>,
    /// Idle and checked out.
    open: usize,
}

impl fmt::Debug for Pool {
    // The configuration holds the password: print the bound only.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pool")
            .field("size", &self.size)
            .finish_non_exhaustive()
    }
}

impl Pool {
    pub(super) fn new(config: postgres::Config, size: usize) -> Pool {
        Pool {
            config,
            size: size.max(1),
            state: Mutex::new(PoolState {
                idle: Vec::new(),
                open: 0,
            }),
            freed: Condvar::new(),
        }
    }

    /// How many connections it opens at most.
    pub(super) fn size(&self) -> usize {
        self.size
    }

    /// How the pool connects (for a connection outside it).
    pub(super) fn config(&self) -> &postgres::Config {
        &self.config
    }

    fn lock(&self) -> MutexGuard<'_, PoolState> {
        // The state is a list and a count, consistent at every step.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Opens a connection (not counted; the caller counts it).
    fn connect(&self) -> Result<Conn, StoreError> {
        self.config
            .connect(NoTls)
            .map(Conn::new)
            .map_err(StoreError::from)
    }

    /// A connection: an idle one, a new one while fewer than the bound are
    /// open, or the first to come free within [`CHECKOUT_WAIT`].
    pub(super) fn checkout(&self) -> Result<Pooled<'_>, StoreError> {
        let deadline = Instant::now() + CHECKOUT_WAIT;
        let mut state = self.lock();
        loop {
            while let Some(conn) = state.idle.pop() {
                if conn.healthy() {
                    return Ok(Pooled {
                        pool: self,
                        conn: Some(conn),
                    });
                }
                state.open -= 1;
            }
            if state.open < self.size {
                state.open += 1;
                drop(state);
                return match self.connect() {
                    Ok(conn) => Ok(Pooled {
                        pool: self,
                        conn: Some(conn),
                    }),
                    Err(e) => {
                        self.lock().open -= 1;
                        self.freed.notify_one();
                        Err(e)
                    }
                };
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(StoreError::database(
                    format!(
                        "no database connection came free in {} s (all {} in use)",
                        CHECKOUT_WAIT.as_secs(),
                        self.size
                    ),
                    Retry::Later,
                ));
            }
            state = self
                .freed
                .wait_timeout(state, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    fn give_back(&self, conn: Conn) {
        let mut state = self.lock();
        if conn.healthy() {
            state.idle.push(conn);
        } else {
            state.open -= 1;
        }
        drop(state);
        self.freed.notify_one();
    }
}

/// A checked-out connection; back to the pool when dropped, if healthy.
pub(super) struct Pooled<'a> {
    pool: &'a Pool,
    conn: Option<Conn>,
}

impl Deref for Pooled<'_> {
    type Target = Conn;
    fn deref(&self) -> &Conn {
        self.conn
            .as_ref()
            .expect("a pooled connection until dropped")
    }
}

impl DerefMut for Pooled<'_> {
    fn deref_mut(&mut self) -> &mut Conn {
        self.conn
            .as_mut()
            .expect("a pooled connection until dropped")
    }
}

impl Drop for Pooled<'_> {
    fn drop(&mut self) {
        if let Some(mut conn) = self.conn.take() {
            if conn.in_tx && !conn.broken {
                conn.rollback();
            }
            self.pool.give_back(conn);
        }
    }
}
