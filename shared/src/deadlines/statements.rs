//! The scheduler's hot statements as query types diesel prepares once per connection and
//! reuses. `diesel::sql_query` is prepared again on every call (a parse, a plan and an extra
//! round trip each time), which is most of the cost of firing a clock; these run the same
//! SQL text (kept in the constants beside them, also what `EXPLAIN` is run on) with the
//! statement cached.

use chrono::{DateTime, Utc};
use diesel::pg::Pg;
use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
use diesel::sql_types::{BigInt, Integer, Jsonb, Nullable, Text, Timestamptz, Untyped};
use diesel::QueryResult;
use serde_json::Value;

/// A piece of SQL text, or the number of the `$n` placeholder that follows it.
enum Piece<'a> {
    Sql(&'a str),
    Bind(usize),
}

/// Splits SQL with `$n` placeholders (the texts here contain `$` nowhere else).
fn pieces(sql: &str) -> impl Iterator<Item = Piece<'_>> {
    let mut rest = sql;
    let mut pending: Option<usize> = None;
    std::iter::from_fn(move || {
        if let Some(n) = pending.take() {
            return Some(Piece::Bind(n));
        }
        if rest.is_empty() {
            return None;
        }
        match rest.find('$') {
            Some(at) => {
                let text = &rest[..at];
                let digits = rest[at + 1..]
                    .bytes()
                    .take_while(u8::is_ascii_digit)
                    .count();
                pending = rest[at + 1..at + 1 + digits].parse().ok();
                rest = &rest[at + 1 + digits..];
                Some(Piece::Sql(text))
            }
            None => {
                let text = rest;
                rest = "";
                Some(Piece::Sql(text))
            }
        }
    })
}

fn no_such_bind(n: usize) -> diesel::result::Error {
    diesel::result::Error::QueryBuilderError(format!("no bind for ${n}").into())
}

macro_rules! untyped_static_query {
    ($name:ident) => {
        impl QueryId for $name {
            type QueryId = $name;
            const HAS_STATIC_QUERY_ID: bool = true;
        }
        impl Query for $name {
            type SqlType = Untyped;
        }
    };
}

/// [`super::CLAIM_CALL_SQL`]: `$1` now, `$2` batch size, `$3` end of the lease.
#[derive(Debug, Clone)]
pub(super) struct ClaimDue {
    pub now: DateTime<Utc>,
    pub limit: i64,
    pub until: DateTime<Utc>,
}

untyped_static_query!(ClaimDue);

impl QueryFragment<Pg> for ClaimDue {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        for piece in pieces(super::CLAIM_CALL_SQL) {
            match piece {
                Piece::Sql(sql) => out.push_sql(sql),
                Piece::Bind(1) => out.push_bind_param::<Timestamptz, _>(&self.now)?,
                Piece::Bind(2) => out.push_bind_param::<BigInt, _>(&self.limit)?,
                Piece::Bind(3) => out.push_bind_param::<Timestamptz, _>(&self.until)?,
                Piece::Bind(n) => return Err(no_such_bind(n)),
            }
        }
        Ok(())
    }
}

/// [`super::FIRE_READ_SQL`]: `$1` clock id, `$2` complaint id, `$3` tenant id.
#[derive(Debug, Clone)]
pub(super) struct FireRead {
    pub clock: i64,
    pub complaint: String,
    pub tenant: String,
}

untyped_static_query!(FireRead);

impl QueryFragment<Pg> for FireRead {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        for piece in pieces(super::FIRE_READ_SQL) {
            match piece {
                Piece::Sql(sql) => out.push_sql(sql),
                Piece::Bind(1) => out.push_bind_param::<BigInt, _>(&self.clock)?,
                Piece::Bind(2) => out.push_bind_param::<Text, _>(&self.complaint)?,
                Piece::Bind(3) => out.push_bind_param::<Text, _>(&self.tenant)?,
                Piece::Bind(n) => return Err(no_such_bind(n)),
            }
        }
        Ok(())
    }
}

/// [`super::FIRE_WRITE_SQL`]: `$1` state, `$2` progress, `$3` next fire time, `$4` now,
/// `$5` clock id, `$6` the next fire time read, `$7` the rungs (null: unchanged),
/// `$8` complaint id, `$9` tenant id.
#[derive(Debug, Clone)]
pub(super) struct FireWrite {
    pub state: String,
    pub progress: Value,
    pub next_fire_at: Option<DateTime<Utc>>,
    pub now: DateTime<Utc>,
    pub clock: i64,
    pub seen_next_fire_at: Option<DateTime<Utc>>,
    pub rungs: Option<Value>,
    pub complaint: String,
    pub tenant: String,
    /// Events this firing appends (warning and/or breach); numbered from the returned
    /// `last_sequence` down.
    pub events: i32,
}

untyped_static_query!(FireWrite);

impl QueryFragment<Pg> for FireWrite {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        for piece in pieces(super::FIRE_WRITE_SQL) {
            match piece {
                Piece::Sql(sql) => out.push_sql(sql),
                Piece::Bind(1) => out.push_bind_param::<Text, _>(&self.state)?,
                Piece::Bind(2) => out.push_bind_param::<Jsonb, _>(&self.progress)?,
                Piece::Bind(3) => {
                    out.push_bind_param::<Nullable<Timestamptz>, _>(&self.next_fire_at)?
                }
                Piece::Bind(4) => out.push_bind_param::<Timestamptz, _>(&self.now)?,
                Piece::Bind(5) => out.push_bind_param::<BigInt, _>(&self.clock)?,
                Piece::Bind(6) => {
                    out.push_bind_param::<Nullable<Timestamptz>, _>(&self.seen_next_fire_at)?
                }
                Piece::Bind(7) => out.push_bind_param::<Nullable<Jsonb>, _>(&self.rungs)?,
                Piece::Bind(8) => out.push_bind_param::<Text, _>(&self.complaint)?,
                Piece::Bind(9) => out.push_bind_param::<Text, _>(&self.tenant)?,
                Piece::Bind(10) => out.push_bind_param::<Integer, _>(&self.events)?,
                Piece::Bind(n) => return Err(no_such_bind(n)),
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_split_out_of_the_sql_in_order() {
        let parts: Vec<String> = pieces("a = $1 AND b <= $12 OR c = $1")
            .map(|p| match p {
                Piece::Sql(s) => format!("sql:{s}"),
                Piece::Bind(n) => format!("bind:{n}"),
            })
            .collect();
        assert_eq!(
            parts,
            [
                "sql:a = ",
                "bind:1",
                "sql: AND b <= ",
                "bind:12",
                "sql: OR c = ",
                "bind:1"
            ]
        );
    }
}
