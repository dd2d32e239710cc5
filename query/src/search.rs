//! Log search over the tantivy partitions: newest first, over a time range, with an exact count.

use std::ops::Bound;
use std::time::Instant;

use fnlens_model::{LogRecord, TimeRange};
use fnlens_store::LogStore;
use tantivy::collector::{Count, TopDocs};
use tantivy::query::{AllQuery, BooleanQuery, Occur, Query, QueryParser, RangeQuery};
use tantivy::{DocAddress, Order, TantivyDocument, Term};

use crate::QueryError;

/// A search as the API receives it.
#[derive(Debug, Clone)]
pub struct SearchRequest {
    /// tantivy query syntax; empty matches everything.
    pub query: String,
    pub range: TimeRange,
    pub limit: usize,
}

/// The hits, newest first, and how many records matched in all.
#[derive(Debug, Clone)]
pub struct SearchResult {
    pub hits: Vec<LogRecord>,
    pub total: u64,
    pub took_ms: f64,
}

/// The largest `limit` a search accepts.
pub const MAX_LIMIT: usize = 10_000;

/// Parses `query` against the log schema. Bare words search `message`; terms are ANDed.
pub fn parse_query(store: &LogStore, query: &str) -> Result<Box<dyn Query>, QueryError> {
    if query.trim().is_empty() || query.trim() == "*" {
        return Ok(Box::new(AllQuery));
    }
    let schema = store.schema();
    let mut parser = QueryParser::new(
        schema.schema.clone(),
        vec![schema.message],
        tantivy::tokenizer::TokenizerManager::default(),
    );
    parser.set_conjunction_by_default();
    parser
        .parse_query(query)
        .map_err(|e| QueryError::InvalidQuery(e.to_string()))
}

/// Runs a search over the partitions that overlap the request's range.
pub fn search(store: &LogStore, req: &SearchRequest) -> Result<SearchResult, QueryError> {
    let started = Instant::now();
    if req.limit > MAX_LIMIT {
        return Err(QueryError::InvalidQuery(format!(
            "limit {} is over the maximum of {MAX_LIMIT}",
            req.limit
        )));
    }
    let user_query = parse_query(store, &req.query)?;
    let schema = store.schema();
    let time_filter = RangeQuery::new(
        Bound::Included(Term::from_field_i64(schema.ts, req.range.start_ms())),
        Bound::Excluded(Term::from_field_i64(schema.ts, req.range.end_ms())),
    );
    let query = BooleanQuery::new(vec![
        (Occur::Must, user_query),
        (Occur::Must, Box::new(time_filter)),
    ]);

    let mut total = 0u64;
    // (ts, seq, partition index, address)
    let mut candidates: Vec<(i64, u64, usize, DocAddress)> = Vec::new();
    let partitions = store.partitions(req.range);
    let searchers: Vec<_> = partitions.iter().map(|p| p.searcher()).collect();
    for (pi, searcher) in searchers.iter().enumerate() {
        let top =
            TopDocs::with_limit(req.limit.max(1)).order_by_fast_field::<i64>("ts", Order::Desc);
        let (hits, count) = searcher.search(&query, &(top, Count))?;
        total += count as u64;
        if req.limit == 0 {
            continue;
        }
        for (ts, addr) in hits {
            let seq = searcher
                .segment_reader(addr.segment_ord)
                .fast_fields()
                .u64("seq")
                .ok()
                .and_then(|col| col.first(addr.doc_id))
                .unwrap_or(0);
            candidates.push((ts.unwrap_or(0), seq, pi, addr));
        }
    }
    candidates.sort_unstable_by_key(|c| std::cmp::Reverse((c.0, c.1)));
    candidates.truncate(req.limit);
    let mut hits = Vec::with_capacity(candidates.len());
    for (_, _, pi, addr) in candidates {
        let doc: TantivyDocument = searchers[pi].doc(addr)?;
        hits.push(schema.from_doc(&doc));
    }
    Ok(SearchResult {
        hits,
        total,
        took_ms: started.elapsed().as_secs_f64() * 1000.0,
    })
}
