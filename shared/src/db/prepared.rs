//! Statements a connection prepares once and then reuses.
//!
//! diesel keeps a prepared statement per connection only for queries whose SQL it can prove
//! fixed. Every `UPDATE`, every `sql_query` and every upsert that sets columns it treats as
//! possibly different each time, so it prepares them anew for each execution: a round trip
//! to parse and describe, then the execution, then a close, and Postgres parses and plans
//! the text every time. On the hot paths that was most of what those statements cost: the
//! intake function called by `pgbench` with a reused statement ran at 3,022 calls/s on
//! this machine, against 2,045/s parsed each time (docs/PERFORMANCE.md).
//!
//! [`reuse`] marks a query whose SQL text is fixed (it does not grow with its input, as a
//! multi-row `VALUES` or an `IN` list would) as safe to keep. diesel then caches it by its
//! SQL text and bind types, so a query whose text did vary would only take more cache
//! entries, never run another query's statement.

use diesel::{
    pg::Pg,
    query_builder::{AstPass, Query, QueryFragment, QueryId},
    QueryResult,
};

/// One column of `rows`, for a fixed-text multi-row statement that takes a column per array
/// (`INSERT … SELECT … FROM unnest($1, $2, …)`) where a `VALUES` list would grow its text.
pub fn column<'a, T, U>(rows: &'a [T], field: impl FnMut(&'a T) -> U) -> Vec<U> {
    rows.iter().map(field).collect()
}

/// A query diesel may keep prepared on the connection: see the module documentation.
#[derive(Debug, Clone, Copy)]
pub struct Reused<Q>(Q);

/// Marks `query`, whose SQL text is the same on every call, as reusable.
pub fn reuse<Q>(query: Q) -> Reused<Q> {
    Reused(query)
}

impl<Q: QueryFragment<Pg>> QueryFragment<Pg> for Reused<Q> {
    fn walk_ast<'b>(&'b self, pass: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        self.0.walk_ast(pass)
    }

    fn is_safe_to_cache_prepared(&self, _backend: &Pg) -> QueryResult<bool> {
        Ok(true)
    }
}

impl<Q: Query> Query for Reused<Q> {
    type SqlType = Q::SqlType;
}

// No static id: the cache keys the statement by its SQL text and bind types.
impl<Q> QueryId for Reused<Q> {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}
