//! Log search over the tantivy partitions: the newest (or oldest) hits of a query over a time
//! range with an exact count and stable paging, the histogram of its hits over time, and the top
//! values of its keyword fields.
//!
//! Every read opens only the partitions that overlap the range, and inside them skips the
//! segments whose `ts` column (min/max) misses it. Hits are ordered by `(ts, seq)`, where `seq`
//! is unique and grows with the WAL: that pair is the paging cursor, and a cursor also carries
//! the `seq` watermark of its first page, so records ingested while a user pages never shift
//! or join the pages.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::ops::{Bound, Range};
use std::sync::Arc;
use std::time::Instant;

use fnlens_model::{Level, LogRecord, TimeRange};
use fnlens_store::logs::{SegmentColumns, TS_BLOCK_DOCS};
use fnlens_store::{LogPartition, LogSchema, LogStore, Lsn};
use tantivy::collector::{Collector, SegmentCollector};
use tantivy::columnar::{ColumnValues, StrColumn};
use tantivy::query::{
    AllQuery, BooleanQuery, EnableScoring, Occur, Query, QueryParser, RangeQuery, TermQuery,
};
use tantivy::query_grammar::{Delimiter, Occur as GrammarOccur, UserInputAst, UserInputLeaf};
use tantivy::schema::IndexRecordOption;
use tantivy::tokenizer::TextAnalyzer;
use tantivy::{
    DocAddress, DocId, Score, SegmentOrdinal, SegmentReader, TERMINATED, TantivyDocument, Term,
};

use crate::QueryError;

/// The largest `limit` a search accepts.
pub const MAX_LIMIT: usize = 10_000;

/// The most buckets a histogram answers with.
pub const MAX_BUCKETS: usize = 10_000;

/// Which hits come first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SortOrder {
    /// Newest first.
    #[default]
    Desc,
    /// Oldest first.
    Asc,
}

impl SortOrder {
    pub fn parse(s: &str) -> Option<SortOrder> {
        match s {
            "desc" => Some(SortOrder::Desc),
            "asc" => Some(SortOrder::Asc),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            SortOrder::Desc => "desc",
            SortOrder::Asc => "asc",
        }
    }
}

/// Where a page ended, and the snapshot (`seq` watermark) its first page saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    order: SortOrder,
    ts_ms: i64,
    seq: u64,
    watermark: u64,
}

impl Cursor {
    /// The opaque form handed to clients.
    pub fn encode(&self) -> String {
        let o = match self.order {
            SortOrder::Desc => 'd',
            SortOrder::Asc => 'a',
        };
        format!("{o}{}_{}_{}", self.ts_ms, self.seq, self.watermark)
    }

    pub fn decode(s: &str) -> Result<Cursor, QueryError> {
        let bad = || QueryError::InvalidQuery(format!("cursor {s:?} is not one this server made"));
        let order = match s.as_bytes().first() {
            Some(b'd') => SortOrder::Desc,
            Some(b'a') => SortOrder::Asc,
            _ => return Err(bad()),
        };
        let mut parts = s[1..].split('_');
        let (Some(ts), Some(seq), Some(wm), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(bad());
        };
        Ok(Cursor {
            order,
            ts_ms: ts.parse().map_err(|_| bad())?,
            seq: seq.parse().map_err(|_| bad())?,
            watermark: wm.parse().map_err(|_| bad())?,
        })
    }
}

/// The largest `seq` of the records of WAL records up to `lsn`.
fn watermark_of(lsn: Lsn) -> u64 {
    lsn.saturating_add(1)
        .saturating_mul(1 << 20)
        .saturating_sub(1)
}

/// `(ts, seq)` as one number that sorts in the requested order: larger comes first.
fn sort_key(ts_ms: i64, seq: u64, order: SortOrder) -> u128 {
    let k = (u128::from((ts_ms as u64) ^ (1 << 63)) << 64) | u128::from(seq);
    match order {
        SortOrder::Desc => k,
        SortOrder::Asc => !k,
    }
}

fn unsort_key(key: u128, order: SortOrder) -> (i64, u64) {
    let k = match order {
        SortOrder::Desc => key,
        SortOrder::Asc => !key,
    };
    (((k >> 64) as u64 ^ (1 << 63)) as i64, k as u64)
}

/// A parsed user query.
pub struct LogQuery {
    query: Box<dyn Query>,
    /// The `message` terms the query looks for, to highlight.
    message_terms: Vec<String>,
    /// The `message` prefixes (`time*`) it looks for.
    message_prefixes: Vec<String>,
    /// The query is `*`: it matches every record.
    match_all: bool,
}

/// Fields whose terms are kept as sent (not lowercased) in the index.
const CASE_SENSITIVE_FIELDS: [&str; 4] = ["function", "version", "request_id", "source"];

/// Adapts tantivy's grammar to what log searchers expect:
/// - `time*` (a bare word ending in `*`) is a prefix query, run as the regex `time.*` over the
///   field's terms, lowercased like the field's tokens;
/// - a clause of only exclusions (`-level:DEBUG`, `a AND NOT b`) excludes from everything,
///   instead of matching nothing.
fn rewrite(ast: UserInputAst, prefixes: &mut Vec<String>) -> UserInputAst {
    match ast {
        UserInputAst::Clause(children) => {
            let mut children: Vec<_> = children
                .into_iter()
                .map(|(occur, child)| (occur, rewrite(child, prefixes)))
                .collect();
            if !children.is_empty()
                && children
                    .iter()
                    .all(|(occur, _)| *occur == Some(GrammarOccur::MustNot))
            {
                children.push((
                    Some(GrammarOccur::Must),
                    UserInputAst::Leaf(Box::new(UserInputLeaf::All)),
                ));
            }
            UserInputAst::Clause(children)
        }
        UserInputAst::Boost(inner, boost) => {
            UserInputAst::Boost(Box::new(rewrite(*inner, prefixes)), boost)
        }
        UserInputAst::Leaf(leaf) => match *leaf {
            UserInputLeaf::Literal(lit)
                if lit.delimiter == Delimiter::None
                    && lit.phrase.len() > 1
                    && lit.phrase.ends_with('*')
                    && !lit.phrase[..lit.phrase.len() - 1].contains(['*', '?']) =>
            {
                let field = lit.field_name.unwrap_or_else(|| "message".to_owned());
                let mut prefix = lit.phrase[..lit.phrase.len() - 1].to_owned();
                if !CASE_SENSITIVE_FIELDS.contains(&field.as_str()) {
                    prefix = prefix.to_lowercase();
                }
                if field == "message" {
                    prefixes.push(prefix.clone());
                }
                let mut pattern = String::with_capacity(prefix.len() + 4);
                for c in prefix.chars() {
                    if !c.is_alphanumeric() {
                        pattern.push('\\');
                    }
                    pattern.push(c);
                }
                pattern.push_str(".*");
                UserInputAst::Leaf(Box::new(UserInputLeaf::Regex {
                    field: Some(field),
                    pattern,
                }))
            }
            other => UserInputAst::Leaf(Box::new(other)),
        },
    }
}

impl std::fmt::Debug for LogQuery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogQuery")
            .field("query", &self.query)
            .finish()
    }
}

impl LogQuery {
    /// Parses tantivy's query grammar over the log fields. Bare words search `message`; terms
    /// are ANDed; an empty query or `*` matches everything.
    pub fn parse(schema: &LogSchema, query: &str) -> Result<LogQuery, QueryError> {
        let trimmed = query.trim();
        if trimmed.is_empty() || trimmed == "*" {
            return Ok(LogQuery {
                query: Box::new(AllQuery),
                message_terms: Vec::new(),
                message_prefixes: Vec::new(),
                match_all: true,
            });
        }
        let (ast, errors) = tantivy::query_grammar::parse_query_lenient(trimmed);
        if let Some(e) = errors.first() {
            // Positions are byte offsets into the query as sent.
            let offset = query.len() - query.trim_start().len();
            return Err(QueryError::Syntax {
                message: e.message.clone(),
                position: e.pos + offset,
            });
        }
        let mut message_prefixes = Vec::new();
        let ast = rewrite(ast, &mut message_prefixes);
        let mut parser = QueryParser::new(
            schema.schema.clone(),
            vec![schema.message],
            fnlens_store::logs::tokenizers(),
        );
        parser.set_conjunction_by_default();
        // Prefixes become regexes over the term dictionary; `field:/regex/` is allowed too.
        parser.allow_regexes();
        let parsed = parser
            .build_query_from_user_input_ast(ast)
            .map_err(|e| QueryError::InvalidQuery(e.to_string()))?;
        let mut message_terms = Vec::new();
        parsed.query_terms(&mut |term, _| {
            if term.field() == schema.message
                && let Some(text) = term.value().as_str()
                && !message_terms.iter().any(|t| t == text)
            {
                message_terms.push(text.to_owned());
            }
        });
        Ok(LogQuery {
            query: parsed,
            message_terms,
            message_prefixes,
            match_all: false,
        })
    }

    /// The query a tantivy searcher runs.
    pub fn query(&self) -> &dyn Query {
        &*self.query
    }

    /// The query restricted to `range` within one partition, and whether that needed a time
    /// clause: none when every record of the partition (as `searcher` sees it) lies in the range.
    fn for_partition(
        &self,
        schema: &LogSchema,
        part: &LogPartition,
        searcher: &tantivy::Searcher,
        range: TimeRange,
    ) -> tantivy::Result<(Box<dyn Query>, bool)> {
        if partition_inside(part, searcher, range)? {
            return Ok((self.query.box_clone(), false));
        }
        let time = RangeQuery::new(
            Bound::Included(Term::from_field_i64(schema.ts, range.start_ms())),
            Bound::Excluded(Term::from_field_i64(schema.ts, range.end_ms())),
        );
        Ok((
            Box::new(BooleanQuery::new(vec![
                (Occur::Must, self.query.box_clone()),
                (Occur::Must, Box::new(time)),
            ])),
            true,
        ))
    }

    /// Byte ranges of `message` that the query's terms and prefixes match.
    pub fn highlights(&self, message: &str) -> Vec<Range<usize>> {
        if self.message_terms.is_empty() && self.message_prefixes.is_empty() {
            return Vec::new();
        }
        let mut analyzer: TextAnalyzer = fnlens_store::logs::tokenizers()
            .get("default")
            .expect("the default tokenizer is always registered");
        let mut stream = analyzer.token_stream(message);
        let mut ranges = Vec::new();
        while let Some(token) = stream.next() {
            if self.message_terms.contains(&token.text)
                || self
                    .message_prefixes
                    .iter()
                    .any(|p| token.text.starts_with(p.as_str()))
            {
                ranges.push(token.offset_from..token.offset_to);
            }
        }
        ranges
    }
}

/// Whether every record of a partition lies in `range`: the range covers its day, or the
/// `ts` bounds of each of its segments.
fn partition_inside(
    part: &LogPartition,
    searcher: &tantivy::Searcher,
    range: TimeRange,
) -> tantivy::Result<bool> {
    if range.start_ms() <= part.key.start_ms() && part.key.end_ms() <= range.end_ms() {
        return Ok(true);
    }
    for reader in searcher.segment_readers() {
        if reader.num_docs() > 0 && !segment_inside(&*part.columns(reader)?.ts, range) {
            return Ok(false);
        }
    }
    Ok(true)
}

/// A search as the API receives it.
#[derive(Debug, Clone)]
pub struct SearchRequest {
    /// tantivy query syntax; empty matches everything.
    pub query: String,
    pub range: TimeRange,
    pub limit: usize,
    pub order: SortOrder,
    /// Continue after the page that returned this cursor.
    pub cursor: Option<Cursor>,
    /// Compute the matched byte ranges of each hit's message.
    pub highlight: bool,
}

/// One matching record.
#[derive(Debug, Clone, PartialEq)]
pub struct Hit {
    pub record: LogRecord,
    /// Byte ranges of `record.message` that matched (only with `highlight`).
    pub highlights: Vec<Range<usize>>,
}

/// A page of hits and how many records matched in all.
#[derive(Debug, Clone)]
pub struct SearchResult {
    pub hits: Vec<Hit>,
    /// Every record of the range that matches, as of the first page's snapshot.
    pub total: u64,
    pub took_ms: f64,
    /// Present when more hits follow this page.
    pub cursor: Option<Cursor>,
    /// Time partitions the search opened.
    pub partitions_searched: usize,
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
    if let Some(c) = req.cursor
        && c.order != req.order
    {
        return Err(QueryError::InvalidQuery(format!(
            "the cursor belongs to order={}, not order={}",
            c.order.as_str(),
            req.order.as_str()
        )));
    }
    let query = LogQuery::parse(store.schema(), &req.query)?;
    // Read the watermark before taking searchers: a searcher may show more, never less.
    let watermark = match req.cursor {
        Some(c) => c.watermark,
        None => watermark_of(store.max_committed_lsn()),
    };
    let top = top_hits(
        store,
        &query,
        req.range,
        TopParams {
            range: req.range,
            watermark,
            after: req.cursor.map(|c| sort_key(c.ts_ms, c.seq, req.order)),
            order: req.order,
            limit: req.limit,
            match_all: query.match_all,
        },
    )?;
    let cursor = top.more.then(|| top.hits.last()).flatten().map(|(key, _)| {
        let (ts_ms, seq) = unsort_key(*key, req.order);
        Cursor {
            order: req.order,
            ts_ms,
            seq,
            watermark,
        }
    });
    let hits = top
        .hits
        .into_iter()
        .map(|(_, record)| Hit {
            highlights: if req.highlight {
                query.highlights(&record.message)
            } else {
                Vec::new()
            },
            record,
        })
        .collect();
    Ok(SearchResult {
        hits,
        total: top.total,
        took_ms: started.elapsed().as_secs_f64() * 1000.0,
        cursor,
        partitions_searched: top.partitions,
    })
}

/// Every log line of one invocation, oldest first, and how many there are.
pub fn request_logs(
    store: &LogStore,
    request_id: &str,
    range: TimeRange,
    limit: usize,
) -> Result<(Vec<LogRecord>, u64), QueryError> {
    let schema = store.schema();
    let query = LogQuery {
        query: Box::new(TermQuery::new(
            Term::from_field_text(schema.request_id, request_id),
            IndexRecordOption::Basic,
        )),
        message_terms: Vec::new(),
        message_prefixes: Vec::new(),
        match_all: false,
    };
    let top = top_hits(
        store,
        &query,
        range,
        TopParams {
            range,
            watermark: u64::MAX,
            after: None,
            order: SortOrder::Asc,
            limit,
            match_all: false,
        },
    )?;
    Ok((top.hits.into_iter().map(|(_, r)| r).collect(), top.total))
}

struct TopHits {
    total: u64,
    /// Whether more hits follow the ones returned.
    more: bool,
    hits: Vec<(u128, LogRecord)>,
    partitions: usize,
}

fn top_hits(
    store: &LogStore,
    query: &LogQuery,
    range: TimeRange,
    params: TopParams,
) -> Result<TopHits, QueryError> {
    let schema = store.schema();
    let partitions = store.partitions(range);
    let searchers: Vec<_> = partitions.iter().map(|p| p.searcher()).collect();
    let mut top = TopK::new(params.limit + 1);
    let mut total = 0;
    // Newest partitions first (oldest first for `asc`), so the first fills the heap with the
    // best hits and the others are mostly skipped.
    let mut order: Vec<usize> = (0..partitions.len()).collect();
    if params.order == SortOrder::Asc {
        order.reverse();
    }
    for pi in order {
        let (part, searcher) = (&partitions[pi], &searchers[pi]);
        let (q, restricted) = query.for_partition(schema, part, searcher, range)?;
        let weight = q.weight(EnableScoring::disabled_from_searcher(searcher))?;
        // A term's count is its document frequency when no time clause was added.
        let free_count = !restricted && query.query.downcast_ref::<TermQuery>().is_some();
        total += collect_top(&*weight, searcher, part, &params, free_count, pi, &mut top)?;
    }
    let mut candidates = top.into_sorted();
    let more = candidates.len() > params.limit;
    candidates.truncate(params.limit);
    let mut hits = Vec::with_capacity(candidates.len());
    for (key, (pi, addr)) in candidates {
        let doc: TantivyDocument = searchers[pi].doc(addr)?;
        hits.push((key, schema.from_doc(&doc)));
    }
    Ok(TopHits {
        total,
        more,
        hits,
        partitions: partitions.len(),
    })
}

/// The `k` largest keys seen, with what they point at.
struct TopK<T> {
    k: usize,
    heap: BinaryHeap<Reverse<(u128, T)>>,
}

impl<T: Ord> TopK<T> {
    fn new(k: usize) -> TopK<T> {
        TopK {
            k,
            heap: BinaryHeap::with_capacity(k.min(1 << 16)),
        }
    }

    /// The key a candidate must beat once the heap is full.
    fn threshold(&self) -> Option<u128> {
        if self.heap.len() < self.k {
            return None;
        }
        self.heap.peek().map(|w| w.0.0)
    }

    #[inline]
    fn push(&mut self, key: u128, item: T) {
        if self.heap.len() < self.k {
            self.heap.push(Reverse((key, item)));
        } else if let Some(mut worst) = self.heap.peek_mut()
            && key > worst.0.0
        {
            *worst = Reverse((key, item));
        }
    }

    /// Best first.
    fn into_sorted(self) -> Vec<(u128, T)> {
        let mut v: Vec<_> = self.heap.into_iter().map(|Reverse(e)| e).collect();
        v.sort_unstable_by_key(|e| Reverse(e.0));
        v
    }
}

/// Counts a query's matches in one partition exactly and offers its best hits to `top`;
/// returns the count.
///
/// Segments are visited best first (newest first for `desc`), and the worst hit kept so far,
/// across segments and partitions, is the bar: a segment or a [`TsBlocks`] block whose best
/// possible key does not clear it is not read for hits.
/// - When the count is free (everything, or one term in a segment that needs no filtering:
///   `num_docs` or `doc_freq`), hits come from a pass over the matches if they are sparse (a few
///   per block), and otherwise from the segment's blocks, best first, each by seeking a fresh
///   scorer to it; the walk stops at the first block that cannot clear the bar. Documents
///   arrive roughly in time order, so a newest-100 read of a common term touches a few blocks.
/// - Otherwise the count needs a pass over the matches anyway; the same pass keeps the hits,
///   reading `ts` and `seq` only in blocks that can clear the bar.
fn collect_top(
    weight: &dyn tantivy::query::Weight,
    searcher: &tantivy::Searcher,
    partition: &LogPartition,
    p: &TopParams,
    free_count: bool,
    pi: usize,
    top: &mut TopK<(usize, DocAddress)>,
) -> tantivy::Result<u64> {
    struct Segment<'r> {
        ord: SegmentOrdinal,
        reader: &'r SegmentReader,
        ts: Arc<dyn ColumnValues<i64>>,
        seq: Arc<dyn ColumnValues<u64>>,
        columns: Arc<SegmentColumns>,
        best: u128,
    }
    let mut segments = Vec::new();
    for (ord, reader) in searcher.segment_readers().iter().enumerate() {
        if !segment_overlaps(partition, reader, p.range)? {
            continue;
        }
        let columns = partition.columns(reader)?;
        let a = sort_key(columns.ts.min_value(), 0, p.order);
        let z = sort_key(columns.ts.max_value(), u64::MAX, p.order);
        segments.push(Segment {
            ord: ord as SegmentOrdinal,
            reader,
            ts: columns.ts.clone(),
            seq: columns.seq.clone(),
            columns,
            best: a.max(z),
        });
    }
    segments.sort_unstable_by_key(|s| Reverse(s.best));

    let mut total = 0;
    for seg in &segments {
        let reader = seg.reader;
        let unfiltered = segment_inside(&*seg.ts, p.range) && seg.seq.max_value() <= p.watermark;
        let can_beat = |top: &TopK<_>| p.limit > 0 && top.threshold().is_none_or(|t| seg.best > t);
        let offer = |top: &mut TopK<_>, doc: DocId| {
            if let Some(key) = p.key(seg.ts.get_val(doc), seg.seq.get_val(doc)) {
                top.push(key, (pi, DocAddress::new(seg.ord, doc)));
            }
        };
        let alive = reader.alive_bitset();
        if unfiltered && (p.match_all || free_count) {
            let n = if p.match_all {
                u64::from(reader.num_docs())
            } else {
                u64::from(weight.count(reader)?)
            };
            total += n;
            if n == 0 || !can_beat(top) {
                continue;
            }
            let blocks = &seg.columns.blocks.bounds;
            if n <= SPARSE_MATCHES_PER_BLOCK * blocks.len() as u64 {
                // Sparse matches: one pass over them beats seeking block by block. Only the
                // blocks that can clear the bar have their documents' keys read.
                let block_best = block_best_keys(blocks, p.order);
                let mut scorer = weight.scorer(reader, 1.0)?;
                let mut doc = scorer.doc();
                while doc != TERMINATED {
                    if alive.is_none_or(|a| a.is_alive(doc))
                        && top
                            .threshold()
                            .is_none_or(|t| block_best[(doc / TS_BLOCK_DOCS) as usize] > t)
                    {
                        offer(top, doc);
                    }
                    doc = scorer.advance();
                }
                continue;
            }
            let mut visit: Vec<(u128, u128, u32)> = seg
                .columns
                .blocks
                .bounds
                .iter()
                .enumerate()
                .filter(|(_, (lo, hi))| *hi >= p.range.start_ms() && *lo < p.range.end_ms())
                .map(|(i, &(lo, hi))| {
                    let a = sort_key(lo, 0, p.order);
                    let z = sort_key(hi, u64::MAX, p.order);
                    (a.max(z), a.min(z), i as u32)
                })
                .collect();
            visit.sort_unstable_by_key(|b| Reverse(b.0));
            for (best, worst, index) in visit {
                if top.threshold().is_some_and(|t| best <= t) {
                    break;
                }
                if p.after.is_some_and(|after| worst >= after) {
                    continue;
                }
                let first = index * TS_BLOCK_DOCS;
                let end = first.saturating_add(TS_BLOCK_DOCS).min(reader.max_doc());
                let mut scorer = weight.scorer(reader, 1.0)?;
                let mut doc = scorer.doc();
                if doc < first {
                    doc = scorer.seek(first);
                }
                while doc < end {
                    if alive.is_none_or(|a| a.is_alive(doc)) {
                        offer(top, doc);
                    }
                    doc = scorer.advance();
                }
            }
            continue;
        }

        // One pass: count every match, keep hits from the blocks that can clear the bar.
        let collect = can_beat(top);
        let block_best = if collect {
            block_best_keys(&seg.columns.blocks.bounds, p.order)
        } else {
            Vec::new()
        };
        let mut scorer = weight.scorer(reader, 1.0)?;
        let mut doc = scorer.doc();
        while doc != TERMINATED {
            if alive.is_none_or(|a| a.is_alive(doc)) {
                if unfiltered {
                    total += 1;
                } else {
                    let ts = seg.ts.get_val(doc);
                    if p.range.contains(ts) && seg.seq.get_val(doc) <= p.watermark {
                        total += 1;
                    }
                }
                if collect
                    && top
                        .threshold()
                        .is_none_or(|t| block_best[(doc / TS_BLOCK_DOCS) as usize] > t)
                {
                    offer(top, doc);
                }
            }
            doc = scorer.advance();
        }
    }
    Ok(total)
}

/// Whether a segment can hold records of `range`, from its cached `ts` column's min and max.
fn segment_overlaps(
    part: &LogPartition,
    reader: &SegmentReader,
    range: TimeRange,
) -> tantivy::Result<bool> {
    if reader.num_docs() == 0 {
        return Ok(false);
    }
    let ts = &part.columns(reader)?.ts;
    Ok(ts.max_value() >= range.start_ms() && ts.min_value() < range.end_ms())
}

/// Whether every record of a segment lies in `range`.
fn segment_inside(ts: &dyn ColumnValues<i64>, range: TimeRange) -> bool {
    ts.min_value() >= range.start_ms() && ts.max_value() < range.end_ms()
}

/// Feeds every live matching document of a segment to `collector`.
fn collect_alive<C: SegmentCollector>(
    collector: &mut C,
    weight: &dyn tantivy::query::Weight,
    reader: &SegmentReader,
) -> tantivy::Result<()> {
    match reader.alive_bitset() {
        Some(alive) => weight.for_each_no_score(reader, &mut |docs| {
            for &doc in docs {
                if alive.is_alive(doc) {
                    collector.collect(doc, 0.0);
                }
            }
        }),
        None => weight.for_each_no_score(reader, &mut |docs| collector.collect_block(docs)),
    }
}

/// A segment with at most this many matches per [`TsBlocks`] block on average has its matches
/// read in one pass rather than block by block (a block visit costs a scorer and a seek).
const SPARSE_MATCHES_PER_BLOCK: u64 = 8;

/// The best key each block of a segment can hold.
fn block_best_keys(bounds: &[(i64, i64)], order: SortOrder) -> Vec<u128> {
    bounds
        .iter()
        .map(|&(lo, hi)| sort_key(lo, 0, order).max(sort_key(hi, u64::MAX, order)))
        .collect()
}

/// What a top-hits read keeps.
#[derive(Debug, Clone, Copy)]
struct TopParams {
    range: TimeRange,
    /// Records with a larger `seq` are newer than the snapshot and not seen.
    watermark: u64,
    /// Only keys smaller than this (after the previous page).
    after: Option<u128>,
    order: SortOrder,
    /// Hits wanted; one more is kept to tell whether more follow.
    limit: usize,
    /// The query matches every document (its count is the segment's).
    match_all: bool,
}

impl TopParams {
    /// The sort key of a record that passes the range, the snapshot and the cursor.
    #[inline]
    fn key(&self, ts: i64, seq: u64) -> Option<u128> {
        if !self.range.contains(ts) || seq > self.watermark {
            return None;
        }
        let key = sort_key(ts, seq, self.order);
        match self.after {
            Some(after) if key >= after => None,
            _ => Some(key),
        }
    }
}

/// A keyword field's fast column and its term ordinals (`u64::MAX` where a document has none).
type KeywordColumn = (StrColumn, Arc<dyn ColumnValues<u64>>);

/// The field a histogram splits its counts by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SplitBy {
    Level,
    Function,
}

impl SplitBy {
    pub fn parse(s: &str) -> Option<SplitBy> {
        match s {
            "level" => Some(SplitBy::Level),
            "function" => Some(SplitBy::Function),
            _ => None,
        }
    }

    fn field(self) -> &'static str {
        match self {
            SplitBy::Level => "level",
            SplitBy::Function => "function",
        }
    }
}

/// A histogram request.
#[derive(Debug, Clone)]
pub struct HistogramRequest {
    pub query: String,
    pub range: TimeRange,
    /// Bucket width; `None` picks a round width giving about 60 buckets.
    pub interval_ms: Option<i64>,
    pub split: Option<SplitBy>,
}

/// Counts per time bucket. Bucket `i` covers `[start_ms + i * interval_ms, + interval_ms)`;
/// buckets are aligned to multiples of the interval since the epoch.
#[derive(Debug, Clone)]
pub struct Histogram {
    pub start_ms: i64,
    pub interval_ms: i64,
    pub counts: Vec<u64>,
    /// With a split: the counts of each value, largest total first.
    pub series: Vec<(String, Vec<u64>)>,
    pub total: u64,
    pub took_ms: f64,
    pub partitions_searched: usize,
}

/// Round bucket widths, smallest first.
const NICE_INTERVALS_MS: &[i64] = &[
    1,
    10,
    100,
    1_000,
    2_000,
    5_000,
    10_000,
    15_000,
    30_000,
    60_000,
    120_000,
    300_000,
    600_000,
    900_000,
    1_800_000,
    3_600_000,
    7_200_000,
    10_800_000,
    21_600_000,
    43_200_000,
    86_400_000,
    172_800_000,
    604_800_000,
];

/// The smallest round width that cuts `range` into at most about 60 buckets.
pub fn auto_interval_ms(range: TimeRange) -> i64 {
    let span = range.end_ms().saturating_sub(range.start_ms()).max(1);
    // Floor: the default range ends a millisecond after now, which must not double the width.
    let wanted = (span / 60).max(1);
    NICE_INTERVALS_MS
        .iter()
        .copied()
        .find(|i| *i >= wanted)
        .unwrap_or_else(|| {
            (wanted as u64)
                .div_ceil(86_400_000)
                .saturating_mul(86_400_000) as i64
        })
}

/// Counts the matches of a query per time bucket.
pub fn histogram(store: &LogStore, req: &HistogramRequest) -> Result<Histogram, QueryError> {
    let started = Instant::now();
    let query = LogQuery::parse(store.schema(), &req.query)?;
    let interval_ms = match req.interval_ms {
        Some(i) if i <= 0 => {
            return Err(QueryError::InvalidQuery(
                "the interval must be positive".into(),
            ));
        }
        Some(i) => i,
        None => auto_interval_ms(req.range),
    };
    let start_ms = req.range.start_ms().div_euclid(interval_ms) * interval_ms;
    let span = i128::from(req.range.end_ms()) - i128::from(start_ms);
    let buckets = (span + i128::from(interval_ms) - 1) / i128::from(interval_ms);
    if buckets > MAX_BUCKETS as i128 {
        return Err(QueryError::InvalidQuery(format!(
            "an interval of {interval_ms} ms makes {buckets} buckets over this range; the maximum is {MAX_BUCKETS}"
        )));
    }
    let params = HistogramParams {
        range: req.range,
        start_ms,
        interval_ms,
        buckets: buckets as usize,
        split: req.split,
        match_all: query.match_all,
    };
    let schema = store.schema();
    let partitions = store.partitions(req.range);
    let mut merged = HistogramFruit::new(params.buckets);
    for part in &partitions {
        let searcher = part.searcher();
        let (q, _) = query.for_partition(schema, part, &searcher, req.range)?;
        let collector = HistogramCollector {
            params,
            partition: part,
        };
        merged.absorb(searcher.search(&*q, &collector)?);
    }
    let mut series: Vec<(String, Vec<u64>)> = merged.series.into_iter().collect();
    series.sort_by_cached_key(|(name, counts)| (Reverse(counts.iter().sum::<u64>()), name.clone()));
    Ok(Histogram {
        start_ms,
        interval_ms,
        total: merged.counts.iter().sum(),
        counts: merged.counts,
        series,
        took_ms: started.elapsed().as_secs_f64() * 1000.0,
        partitions_searched: partitions.len(),
    })
}

struct HistogramCollector<'a> {
    params: HistogramParams,
    /// Where the segments' cached `ts` columns are.
    partition: &'a LogPartition,
}

#[derive(Debug, Clone, Copy)]
struct HistogramParams {
    range: TimeRange,
    start_ms: i64,
    interval_ms: i64,
    buckets: usize,
    split: Option<SplitBy>,
    match_all: bool,
}

struct HistogramFruit {
    counts: Vec<u64>,
    series: HashMap<String, Vec<u64>>,
}

impl HistogramFruit {
    fn new(buckets: usize) -> HistogramFruit {
        HistogramFruit {
            counts: vec![0; buckets],
            series: HashMap::new(),
        }
    }

    fn absorb(&mut self, other: HistogramFruit) {
        for (a, b) in self.counts.iter_mut().zip(other.counts) {
            *a += b;
        }
        for (name, counts) in other.series {
            let mine = self
                .series
                .entry(name)
                .or_insert_with(|| vec![0; counts.len()]);
            for (a, b) in mine.iter_mut().zip(counts) {
                *a += b;
            }
        }
    }
}

struct HistogramSegment {
    params: HistogramParams,
    ts: Arc<dyn ColumnValues<i64>>,
    /// The split field's column, its ordinals, and per ordinal (plus one slot for documents
    /// without a value) the counts.
    split: Option<(KeywordColumn, Vec<Vec<u64>>)>,
    counts: Vec<u64>,
    ts_buf: Vec<i64>,
    ord_buf: Vec<u64>,
}

impl HistogramSegment {
    /// Counts a block of documents given their `ts` (and split ordinals).
    fn add(&mut self, ts: &[i64], ords: &[u64]) {
        let HistogramParams {
            range,
            start_ms,
            interval_ms,
            buckets,
            ..
        } = self.params;
        for (i, &t) in ts.iter().enumerate() {
            if !range.contains(t) {
                continue;
            }
            let bucket = ((t - start_ms) / interval_ms) as usize;
            let Some(count) = self.counts.get_mut(bucket) else {
                continue;
            };
            *count += 1;
            if let Some((_, by_ord)) = &mut self.split {
                let slot = usize::try_from(ords[i])
                    .unwrap_or(usize::MAX)
                    .min(by_ord.len() - 1);
                let series = &mut by_ord[slot];
                if series.is_empty() {
                    series.resize(buckets, 0);
                }
                series[bucket] += 1;
            }
        }
    }

    /// Counts every document of the segment, reading the columns in runs (no scorer).
    fn add_all(&mut self, max_doc: u32) {
        const RUN: u32 = 4096;
        let mut ts = vec![0i64; RUN as usize];
        let mut ords = vec![
            0u64;
            if self.split.is_some() {
                RUN as usize
            } else {
                0
            }
        ];
        let mut start = 0;
        while start < max_doc {
            let len = RUN.min(max_doc - start) as usize;
            self.ts.get_range(u64::from(start), &mut ts[..len]);
            if let Some(((_, col), _)) = &self.split {
                col.get_range(u64::from(start), &mut ords[..len]);
            }
            let ords = if ords.is_empty() {
                &ords[..]
            } else {
                &ords[..len]
            };
            self.add(&ts[..len], ords);
            start += RUN;
        }
    }
}

impl Collector for HistogramCollector<'_> {
    type Fruit = HistogramFruit;
    type Child = HistogramSegment;

    fn for_segment(
        &self,
        _segment_ord: SegmentOrdinal,
        reader: &SegmentReader,
    ) -> tantivy::Result<HistogramSegment> {
        let ff = reader.fast_fields();
        let split = match self.params.split {
            Some(by) => ff.str(by.field())?.map(|col| {
                let ords = col.ords().clone().first_or_default_col(u64::MAX);
                let slots = vec![Vec::new(); col.num_terms() + 1];
                ((col, ords), slots)
            }),
            None => None,
        };
        Ok(HistogramSegment {
            params: self.params,
            ts: self.partition.columns(reader)?.ts.clone(),
            split,
            counts: vec![0; self.params.buckets],
            ts_buf: Vec::new(),
            ord_buf: Vec::new(),
        })
    }

    fn requires_scoring(&self) -> bool {
        false
    }

    fn merge_fruits(&self, fruits: Vec<HistogramFruit>) -> tantivy::Result<HistogramFruit> {
        let mut merged = HistogramFruit::new(self.params.buckets);
        for f in fruits {
            merged.absorb(f);
        }
        Ok(merged)
    }

    fn collect_segment(
        &self,
        weight: &dyn tantivy::query::Weight,
        segment_ord: u32,
        reader: &SegmentReader,
    ) -> tantivy::Result<HistogramFruit> {
        if !segment_overlaps(self.partition, reader, self.params.range)? {
            return Ok(HistogramFruit::new(self.params.buckets));
        }
        let mut child = self.for_segment(segment_ord, reader)?;
        if self.params.match_all && reader.alive_bitset().is_none() {
            child.add_all(reader.max_doc());
        } else {
            collect_alive(&mut child, weight, reader)?;
        }
        Ok(child.harvest())
    }
}

impl SegmentCollector for HistogramSegment {
    type Fruit = HistogramFruit;

    fn collect(&mut self, doc: DocId, _score: Score) {
        self.collect_block(&[doc]);
    }

    fn collect_block(&mut self, docs: &[DocId]) {
        let mut ts = std::mem::take(&mut self.ts_buf);
        let mut ords = std::mem::take(&mut self.ord_buf);
        ts.resize(docs.len(), 0);
        self.ts.get_vals(docs, &mut ts);
        if let Some(((_, col), _)) = &self.split {
            ords.resize(docs.len(), 0);
            col.get_vals(docs, &mut ords);
        }
        self.add(&ts, &ords);
        self.ts_buf = ts;
        self.ord_buf = ords;
    }

    fn harvest(self) -> HistogramFruit {
        let mut series = HashMap::new();
        if let Some(((col, _), by_ord)) = self.split {
            let mut name = String::new();
            for (ord, counts) in by_ord.into_iter().enumerate() {
                if counts.is_empty() {
                    continue;
                }
                name.clear();
                let value = match col.ord_to_str(ord as u64, &mut name) {
                    Ok(true) => name.clone(),
                    _ => String::new(),
                };
                let mine = series.entry(value).or_insert_with(|| vec![0; counts.len()]);
                for (a, b) in mine.iter_mut().zip(counts) {
                    *a += b;
                }
            }
        }
        HistogramFruit {
            counts: self.counts,
            series,
        }
    }
}

/// The keyword fields facets count.
pub const FACET_FIELDS: [&str; 3] = ["function", "level", "version"];

/// The top values of [`FACET_FIELDS`] among a query's matches.
#[derive(Debug, Clone)]
pub struct Facets {
    /// Per field, its values with counts, most frequent first.
    pub fields: Vec<(&'static str, Vec<(String, u64)>)>,
    pub total: u64,
    pub took_ms: f64,
    pub partitions_searched: usize,
}

/// Counts the values of the keyword fields among the matches of `query` in `range`; keeps the
/// `size` most frequent of each.
pub fn facets(
    store: &LogStore,
    query: &str,
    range: TimeRange,
    size: usize,
) -> Result<Facets, QueryError> {
    let started = Instant::now();
    let parsed = LogQuery::parse(store.schema(), query)?;
    let schema = store.schema();
    let partitions = store.partitions(range);
    let mut merged = FacetFruit::default();
    for part in &partitions {
        let searcher = part.searcher();
        let (q, _) = parsed.for_partition(schema, part, &searcher, range)?;
        let collector = FacetCollector {
            range,
            match_all: parsed.match_all,
            partition: part,
        };
        merged.absorb(searcher.search(&*q, &collector)?);
    }
    let fields = FACET_FIELDS
        .iter()
        .zip(merged.counts)
        .map(|(field, counts)| {
            let mut values: Vec<(String, u64)> = counts.into_iter().collect();
            values.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
            values.truncate(size);
            (*field, values)
        })
        .collect();
    Ok(Facets {
        fields,
        total: merged.total,
        took_ms: started.elapsed().as_secs_f64() * 1000.0,
        partitions_searched: partitions.len(),
    })
}

struct FacetCollector<'a> {
    range: TimeRange,
    match_all: bool,
    /// Where the segments' cached `ts` columns are.
    partition: &'a LogPartition,
}

#[derive(Default)]
struct FacetFruit {
    total: u64,
    counts: [HashMap<String, u64>; 3],
}

impl FacetFruit {
    fn absorb(&mut self, other: FacetFruit) {
        self.total += other.total;
        for (mine, theirs) in self.counts.iter_mut().zip(other.counts) {
            for (value, n) in theirs {
                *mine.entry(value).or_default() += n;
            }
        }
    }
}

struct FacetSegment {
    range: TimeRange,
    ts: Arc<dyn ColumnValues<i64>>,
    /// Some documents of the segment may lie outside the range.
    check_ts: bool,
    /// Per facet field: its column, its ordinals, and the count per ordinal (plus one slot for
    /// documents without a value).
    columns: Vec<(KeywordColumn, Vec<u64>)>,
    total: u64,
    ts_buf: Vec<i64>,
    ord_buf: Vec<u64>,
    keep: Vec<bool>,
}

impl FacetSegment {
    /// Counts the documents whose `ts` is in range, reading each column for `read(column, buf)`.
    fn add(
        &mut self,
        n: usize,
        read_ts: impl Fn(&dyn ColumnValues<i64>, &mut [i64]),
        read_ords: impl Fn(&dyn ColumnValues<u64>, &mut [u64]),
    ) {
        self.ord_buf.resize(n, 0);
        self.keep.clear();
        if self.check_ts {
            self.ts_buf.resize(n, 0);
            read_ts(&*self.ts, &mut self.ts_buf);
            let range = self.range;
            self.keep
                .extend(self.ts_buf.iter().map(|t| range.contains(*t)));
        } else {
            self.keep.resize(n, true);
        }
        self.total += self.keep.iter().filter(|k| **k).count() as u64;
        for ((_, ords), counts) in &mut self.columns {
            read_ords(&**ords, &mut self.ord_buf);
            let last = counts.len() - 1;
            for (ord, keep) in self.ord_buf.iter().zip(&self.keep) {
                if *keep {
                    counts[usize::try_from(*ord).unwrap_or(usize::MAX).min(last)] += 1;
                }
            }
        }
    }
}

impl Collector for FacetCollector<'_> {
    type Fruit = FacetFruit;
    type Child = FacetSegment;

    fn for_segment(
        &self,
        _segment_ord: SegmentOrdinal,
        reader: &SegmentReader,
    ) -> tantivy::Result<FacetSegment> {
        let ff = reader.fast_fields();
        let mut columns = Vec::with_capacity(FACET_FIELDS.len());
        for field in FACET_FIELDS {
            let col = ff.str(field)?.ok_or_else(|| {
                tantivy::TantivyError::SchemaError(format!("{field} has no fast column"))
            })?;
            let ords = col.ords().clone().first_or_default_col(u64::MAX);
            let counts = vec![0; col.num_terms() + 1];
            columns.push(((col, ords), counts));
        }
        let ts = self.partition.columns(reader)?.ts.clone();
        Ok(FacetSegment {
            range: self.range,
            check_ts: !segment_inside(&*ts, self.range),
            ts,
            columns,
            total: 0,
            ts_buf: Vec::new(),
            ord_buf: Vec::new(),
            keep: Vec::new(),
        })
    }

    fn requires_scoring(&self) -> bool {
        false
    }

    fn merge_fruits(&self, fruits: Vec<FacetFruit>) -> tantivy::Result<FacetFruit> {
        let mut merged = FacetFruit::default();
        for f in fruits {
            merged.absorb(f);
        }
        Ok(merged)
    }

    fn collect_segment(
        &self,
        weight: &dyn tantivy::query::Weight,
        segment_ord: u32,
        reader: &SegmentReader,
    ) -> tantivy::Result<FacetFruit> {
        if !segment_overlaps(self.partition, reader, self.range)? {
            return Ok(FacetFruit::default());
        }
        if self.match_all && reader.alive_bitset().is_none() {
            let ts = self.partition.columns(reader)?.ts.clone();
            if segment_inside(&*ts, self.range) {
                return facet_terms(reader);
            }
        }
        let mut child = self.for_segment(segment_ord, reader)?;
        if self.match_all && reader.alive_bitset().is_none() {
            // Every document: read the columns in runs, no scorer.
            const RUN: u32 = 4096;
            let mut start = 0;
            while start < reader.max_doc() {
                let n = RUN.min(reader.max_doc() - start) as usize;
                let at = u64::from(start);
                child.add(
                    n,
                    |c, buf| c.get_range(at, buf),
                    |c, buf| c.get_range(at, buf),
                );
                start += RUN;
            }
        } else {
            collect_alive(&mut child, weight, reader)?;
        }
        Ok(child.harvest())
    }
}

/// The facets of every document of a segment without deletes: each term's document frequency,
/// read from the term dictionaries without touching a document. Every record has exactly one
/// value of each facet field.
fn facet_terms(reader: &SegmentReader) -> tantivy::Result<FacetFruit> {
    let schema = reader.schema();
    let mut fruit = FacetFruit {
        total: u64::from(reader.num_docs()),
        ..FacetFruit::default()
    };
    for (i, name) in FACET_FIELDS.iter().enumerate() {
        let field = schema.get_field(name)?;
        let index = reader.inverted_index(field)?;
        let mut terms = index.terms().stream()?;
        while terms.advance() {
            let term = String::from_utf8_lossy(terms.key());
            // `level` is indexed lowercased; its values are the canonical upper-case names.
            let value = match Level::parse(&term) {
                Some(level) if *name == "level" => level.as_str().to_owned(),
                _ => term.into_owned(),
            };
            *fruit.counts[i].entry(value).or_default() += u64::from(terms.value().doc_freq);
        }
    }
    Ok(fruit)
}

impl SegmentCollector for FacetSegment {
    type Fruit = FacetFruit;

    fn collect(&mut self, doc: DocId, _score: Score) {
        self.collect_block(&[doc]);
    }

    fn collect_block(&mut self, docs: &[DocId]) {
        self.add(
            docs.len(),
            |c, buf| c.get_vals(docs, buf),
            |c, buf| c.get_vals(docs, buf),
        );
    }

    fn harvest(self) -> FacetFruit {
        let mut fruit = FacetFruit {
            total: self.total,
            ..FacetFruit::default()
        };
        for (i, ((col, _), counts)) in self.columns.into_iter().enumerate() {
            let mut name = String::new();
            for (ord, n) in counts.into_iter().enumerate() {
                if n == 0 {
                    continue;
                }
                name.clear();
                let value = match col.ord_to_str(ord as u64, &mut name) {
                    Ok(true) => name.clone(),
                    _ => String::new(),
                };
                *fruit.counts[i].entry(value).or_default() += n;
            }
        }
        fruit
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sort_keys_order_and_round_trip() {
        for order in [SortOrder::Desc, SortOrder::Asc] {
            for (ts, seq) in [(0, 0), (-5, 7), (1_700_000_000_000, u64::MAX >> 1)] {
                assert_eq!(unsort_key(sort_key(ts, seq, order), order), (ts, seq));
            }
        }
        assert!(sort_key(2, 0, SortOrder::Desc) > sort_key(1, 9, SortOrder::Desc));
        assert!(sort_key(-1, 0, SortOrder::Desc) < sort_key(0, 0, SortOrder::Desc));
        assert!(sort_key(1, 9, SortOrder::Asc) > sort_key(2, 0, SortOrder::Asc));
    }

    #[test]
    fn cursors_round_trip_and_reject_garbage() {
        let c = Cursor {
            order: SortOrder::Asc,
            ts_ms: -3,
            seq: 42,
            watermark: 99,
        };
        assert_eq!(Cursor::decode(&c.encode()).unwrap(), c);
        for bad in ["", "x1_2_3", "d1_2", "d1_2_3_4", "da_2_3", "d1_-2_3"] {
            assert!(Cursor::decode(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn automatic_intervals_are_round() {
        let range = |span| TimeRange::new(0, span).unwrap();
        assert_eq!(auto_interval_ms(range(3_600_000)), 60_000);
        // The default "last hour" ends a millisecond after now.
        assert_eq!(auto_interval_ms(range(3_600_001)), 60_000);
        assert_eq!(auto_interval_ms(range(15 * 60_000)), 15_000);
        assert_eq!(auto_interval_ms(range(86_400_000)), 1_800_000);
        assert_eq!(auto_interval_ms(range(1)), 1);
        let year = 365 * 86_400_000;
        assert_eq!(auto_interval_ms(range(year)), 7 * 86_400_000);
        assert_eq!(auto_interval_ms(range(10 * year)), 61 * 86_400_000);
    }

    /// Reads every page of `req` through cursors; returns the `(ts, seq)` of each hit in order
    /// and the totals the pages reported.
    fn page_through(store: &LogStore, mut req: SearchRequest) -> (Vec<(i64, u64)>, Vec<u64>) {
        let mut keys = Vec::new();
        let mut totals = Vec::new();
        loop {
            let page = search(store, &req).unwrap();
            totals.push(page.total);
            for h in &page.hits {
                let seq = h.record.attributes["seq"].as_u64().unwrap();
                keys.push((h.record.ts_ms, seq));
            }
            match page.cursor {
                Some(c) => req.cursor = Some(c),
                None => return (keys, totals),
            }
            assert!(keys.len() <= 100_000, "paging does not end");
        }
    }

    #[test]
    fn block_pruned_top_hits_equal_brute_force() {
        use fnlens_model::{Level, LogSource};
        use fnlens_store::{LogStoreConfig, StoreStats};

        let dir = tempfile::tempdir().unwrap();
        let store = LogStore::open(
            LogStoreConfig {
                dir: dir.path().to_path_buf(),
                writer_threads: 1,
                writer_memory_bytes: 50_000_000,
                writer_idle: std::time::Duration::from_secs(60),
            },
            Arc::new(StoreStats::default()),
        )
        .unwrap();
        // Two commits of 20,000 lines (several blocks per segment) spanning midnight, in rough
        // time order with jitter and a few far outliers, like real batches.
        let base = fnlens_model::parse_rfc3339_ms("2026-03-01T23:58:00Z").unwrap();
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut rand = move |n: u64| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state % n
        };
        let mut expected = Vec::new();
        for lsn in 1..=2u64 {
            let mut batch = Vec::new();
            for i in 0..20_000u64 {
                let n = (lsn - 1) * 20_000 + i;
                let mut ts = base + n as i64 * 10 + rand(4000) as i64 - 2000;
                if rand(500) == 0 {
                    ts += rand(7_200_000) as i64 - 3_600_000;
                }
                let word = match rand(10) {
                    0 => "beta",
                    1 => "gamma",
                    _ => "alpha",
                };
                let level = if rand(7) == 0 {
                    Level::Error
                } else {
                    Level::Info
                };
                let seq = (lsn << 20) | i;
                let mut attributes = serde_json::Map::new();
                attributes.insert("seq".into(), seq.into());
                batch.push(LogRecord {
                    ts_ms: ts,
                    function: "f".into(),
                    version: "1".into(),
                    request_id: None,
                    level,
                    source: LogSource::Function,
                    message: format!("{word} line {n}"),
                    attributes,
                });
                expected.push((ts, seq, word, level));
            }
            store.add(lsn, &batch, false).unwrap();
            store.commit(lsn).unwrap();
        }
        assert_eq!(store.partitions(TimeRange::all()).len(), 2);

        type Pred = fn(&str, Level) -> bool;
        let queries: [(&str, Pred); 5] = [
            ("*", |_, _| true),
            ("alpha", |w, _| w == "alpha"),
            ("beta OR gamma", |w, _| w != "alpha"),
            ("level:ERROR", |_, l| l == Level::Error),
            ("alpha -level:ERROR", |w, l| {
                w == "alpha" && l != Level::Error
            }),
        ];
        let ranges = [
            TimeRange::all(),
            TimeRange::new(base + 30_000, base + 250_000).unwrap(),
        ];
        for (q, pred) in queries {
            for range in ranges {
                for order in [SortOrder::Desc, SortOrder::Asc] {
                    let mut want: Vec<(i64, u64)> = expected
                        .iter()
                        .filter(|(ts, _, w, l)| range.contains(*ts) && pred(w, *l))
                        .map(|(ts, seq, _, _)| (*ts, *seq))
                        .collect();
                    want.sort_unstable();
                    if order == SortOrder::Desc {
                        want.reverse();
                    }
                    for limit in [1, 100, 10_000] {
                        if limit == 1 && want.len() > 2_000 {
                            // Paging one by one through everything is slow; the first few pages do.
                            let mut req = SearchRequest {
                                query: q.into(),
                                range,
                                limit,
                                order,
                                cursor: None,
                                highlight: false,
                            };
                            for expected_key in want.iter().take(5) {
                                let page = search(&store, &req).unwrap();
                                let h = &page.hits[0].record;
                                let seq = h.attributes["seq"].as_u64().unwrap();
                                assert_eq!((h.ts_ms, seq), *expected_key, "{q} {order:?}");
                                assert_eq!(page.total, want.len() as u64);
                                req.cursor = page.cursor;
                            }
                            continue;
                        }
                        let req = SearchRequest {
                            query: q.into(),
                            range,
                            limit,
                            order,
                            cursor: None,
                            highlight: false,
                        };
                        let (got, totals) = page_through(&store, req);
                        assert!(
                            got == want,
                            "{q:?} {range:?} {order:?} limit {limit}: {} hits, want {}",
                            got.len(),
                            want.len()
                        );
                        assert!(totals.iter().all(|t| *t == want.len() as u64), "{q} totals");
                    }
                }
            }
        }
    }

    #[test]
    fn watermarks_cover_every_record_of_an_lsn() {
        assert_eq!(watermark_of(0), (1 << 20) - 1);
        let lsn = 7;
        assert!(watermark_of(lsn) >= (lsn << 20) | 0xF_FFFF);
        assert!(watermark_of(lsn) < (lsn + 1) << 20);
    }
}
