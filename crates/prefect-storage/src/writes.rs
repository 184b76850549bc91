//! Several row writes sent to the database together.
//!
//! A state transition ends with writes nobody reads an answer from: the new state
//! row, the run's bookkeeping, on creation the run itself. On SQLite every statement
//! is a round trip to the connection's worker thread (a message, a wake-up, a reply),
//! and with one writer those trips are the transition's latency, not SQLite's work.
//! [`RowWrites`] joins such statements into one multi-statement call on SQLite, so
//! they cost one trip. On PostgreSQL, whose extended protocol takes one statement per
//! message, each statement is a round trip to the server instead: there the inserts
//! become data-modifying `WITH` clauses of the last statement, one statement in all.

use sea_orm::{ConnectionTrait, DbBackend, QueryTrait, Statement, Value};

use crate::direct_writes::DirectTransaction;
use crate::{Error, Result};

/// Statements that each write exactly one row, executed in order by [`RowWrites::execute`].
#[derive(Debug)]
pub struct RowWrites {
    backend: DbBackend,
    statements: Vec<Statement>,
    /// What an update that finds no row means, for the first such update.
    missing: Option<&'static str>,
    /// How many statements are updates (the rest are inserts).
    updates: usize,
    /// The last statement pushed is an update.
    last_is_update: bool,
}

impl RowWrites {
    /// For writes on `c`.
    pub fn on(c: &impl ConnectionTrait) -> Self {
        Self::for_backend(c.get_database_backend())
    }

    /// For writes on a connection of `backend` (e.g. the SQLite writer's own, see
    /// [`RowWrites::execute_direct`]).
    pub fn for_backend(backend: impl Into<DbBackend>) -> Self {
        Self { backend: backend.into(), statements: Vec::new(), missing: None, updates: 0, last_is_update: false }
    }

    /// An insert: it writes its row or fails.
    pub(crate) fn insert(&mut self, query: &impl QueryTrait) {
        self.last_is_update = false;
        self.statements.push(query.build(self.backend));
    }

    /// An update of one row by key; if the row is gone, [`RowWrites::execute`] answers
    /// `NotFound { entity }`.
    pub(crate) fn update_one(&mut self, query: &impl QueryTrait, entity: &'static str) {
        self.missing.get_or_insert(entity);
        self.updates += 1;
        self.last_is_update = true;
        self.statements.push(query.build(self.backend));
    }

    /// The SQL of each statement, in order.
    #[cfg(test)]
    pub(crate) fn sql(&self) -> Vec<&str> {
        self.statements.iter().map(|s| s.sql.as_str()).collect()
    }

    /// Runs the statements in order on `c` (inside the caller's transaction).
    pub async fn execute(self, c: &impl ConnectionTrait) -> Result<()> {
        let mut expected = self.statements.len() as u64;
        let n = self.statements.len();
        let written = match c.get_database_backend() {
            _ if n == 0 => 0,
            DbBackend::Sqlite if n > 1 => c.execute_raw(joined(self.statements)).await?.rows_affected(),
            // PostgreSQL reports the rows of the main statement only: the inserts go in
            // `WITH` (an insert writes its row or fails) and the one update, if any, last.
            DbBackend::Postgres if n > 1 && (self.updates == 0 || (self.updates == 1 && self.last_is_update)) => {
                expected = 1;
                c.execute_raw(with_clauses(self.statements)).await?.rows_affected()
            }
            _ => {
                let mut written = 0;
                for statement in self.statements {
                    written += c.execute_raw(statement).await?.rows_affected();
                }
                written
            }
        };
        // Rows changed by triggers are not counted (sqlite3_changes, PostgreSQL's
        // command tag), so each statement counts its own row only.
        match self.missing {
            Some(entity) if written < expected => Err(Error::NotFound { entity }),
            _ => Ok(()),
        }
    }

    /// Runs the statements in order on the SQLite writer's own connection, inside its
    /// transaction: each is stepped in place, so several cost no more trips than one.
    pub fn execute_direct(self, txn: &DirectTransaction<'_>) -> Result<()> {
        let mut written = 0;
        for statement in &self.statements {
            written += txn.execute(statement)?;
        }
        match self.missing {
            Some(entity) if written < self.statements.len() => Err(Error::NotFound { entity }),
            _ => Ok(()),
        }
    }
}

/// One PostgreSQL statement: every statement but the last as a data-modifying `WITH`
/// clause of the last. Each statement's `$n` placeholders are renumbered after the
/// values of the statements before it.
fn with_clauses(statements: Vec<Statement>) -> Statement {
    let last = statements.len() - 1;
    let mut sql = String::from("WITH ");
    let mut values: Vec<Value> = Vec::new();
    for (i, statement) in statements.into_iter().enumerate() {
        let renumbered = renumber_placeholders(&statement.sql, values.len());
        match i {
            0 => {}
            i if i == last => sql.push(' '),
            _ => sql.push_str(", "),
        }
        if i == last {
            sql.push_str(&renumbered);
        } else {
            sql.push_str(&format!("w{i} AS ({renumbered})"));
        }
        if let Some(v) = statement.values {
            values.extend(v.0);
        }
    }
    Statement::from_sql_and_values(DbBackend::Postgres, sql, values)
}

/// `$n` becomes `$(n + offset)`, outside quoted identifiers and string literals.
fn renumber_placeholders(sql: &str, offset: usize) -> String {
    if offset == 0 {
        return sql.to_owned();
    }
    let mut out = String::with_capacity(sql.len() + 16);
    let mut quote: Option<char> = None;
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (None, '"' | '\'') => quote = Some(c),
            (None, '$') if chars.peek().is_some_and(char::is_ascii_digit) => {
                let mut n = 0usize;
                while let Some(d) = chars.peek().and_then(|d| d.to_digit(10)) {
                    n = n * 10 + d as usize;
                    chars.next();
                }
                out.push_str(&format!("${}", n + offset));
                continue;
            }
            _ => {}
        }
        out.push(c);
    }
    out
}

/// One SQLite call of several statements: their SQL separated by `;`, their bound values
/// in order (sqlx binds each statement's `?` parameters from where the previous one stopped).
fn joined(statements: Vec<Statement>) -> Statement {
    let mut sql = String::new();
    let mut values: Vec<Value> = Vec::new();
    for statement in statements {
        if !sql.is_empty() {
            sql.push_str(";\n");
        }
        sql.push_str(&statement.sql);
        if let Some(v) = statement.values {
            values.extend(v.0);
        }
    }
    Statement::from_sql_and_values(DbBackend::Sqlite, sql, values)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postgres_statements_become_with_clauses_of_the_last() {
        let a = Statement::from_sql_and_values(DbBackend::Postgres, r#"INSERT INTO "t" ("a", "b") VALUES ($1, $2)"#, [1.into(), 2.into()]);
        let b = Statement::from_sql_and_values(DbBackend::Postgres, r#"INSERT INTO "s" ("$1") VALUES ($1)"#, ["$2 stays".into()]);
        let c = Statement::from_sql_and_values(DbBackend::Postgres, r#"UPDATE "u" SET "c" = $1 WHERE "id" = $2 AND "d" = '$1'"#, ["x".into(), 3.into()]);
        let one = with_clauses(vec![a, b, c]);
        assert_eq!(
            one.sql,
            r#"WITH w0 AS (INSERT INTO "t" ("a", "b") VALUES ($1, $2)), w1 AS (INSERT INTO "s" ("$1") VALUES ($3)) UPDATE "u" SET "c" = $4 WHERE "id" = $5 AND "d" = '$1'"#
        );
        assert_eq!(one.values.unwrap().0.len(), 5);
        assert_eq!(renumber_placeholders("$10 = $9", 2), "$12 = $11");
    }

    #[test]
    fn joined_statements_keep_their_order_and_values() {
        let a = Statement::from_sql_and_values(DbBackend::Sqlite, "INSERT INTO t (a, b) VALUES (?, ?)", [1.into(), 2.into()]);
        let b = Statement::from_sql_and_values(DbBackend::Sqlite, "UPDATE u SET c = ? WHERE id = ?", ["x".into(), 3.into()]);
        let one = joined(vec![a, b]);
        assert_eq!(one.sql, "INSERT INTO t (a, b) VALUES (?, ?);\nUPDATE u SET c = ? WHERE id = ?");
        assert_eq!(one.values.unwrap().0, vec![Value::from(1), Value::from(2), Value::from("x"), Value::from(3)]);
    }
}
