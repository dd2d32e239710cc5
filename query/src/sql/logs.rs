//! The `logs` table: log records read straight from the tantivy index, with no second copy.
//!
//! Filters reach the index: `match(column, 'words')` and `search('query')` run as tantivy
//! queries (exactly: DataFusion does not re-check them), `ts` comparisons pick partitions and
//! become a range clause, and equalities on `function`, `version`, `request_id`, `source` and
//! `level` become term clauses (DataFusion re-checks those). Columns come from the fast fields;
//! `request_id`, `message` and `attributes` are read from the document store, and only when the
//! query uses them.

use std::collections::HashSet;
use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch, StringBuilder, TimestampMillisecondArray};
use arrow::datatypes::SchemaRef;
use async_trait::async_trait;
use datafusion::catalog::Session;
use datafusion::common::ScalarValue;
use datafusion::datasource::{TableProvider, TableType};
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::{BinaryExpr, Expr, Operator, TableProviderFilterPushDown};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::streaming::{PartitionStream, StreamingTableExec};
use fnlens_model::{TimeRange, logs_schema};
use fnlens_store::logs::tokenizers;
use fnlens_store::{LogSchema, LogStore};
use tantivy::query::{AllQuery, BooleanQuery, EnableScoring, Occur, Query, RangeQuery, TermQuery};
use tantivy::schema::{Field, IndexRecordOption, Value};
use tantivy::{DocId, Searcher, SegmentOrdinal, TantivyDocument, Term};

use super::tables::ts_range;
use crate::{LogQuery, QueryError};

/// Column positions in [`logs_schema`].
const TS: usize = 0;
const FUNCTION: usize = 1;
const VERSION: usize = 2;
const REQUEST_ID: usize = 3;
const LEVEL: usize = 4;
const SOURCE: usize = 5;
const MESSAGE: usize = 6;
const ATTRIBUTES: usize = 7;

/// The log store as a DataFusion table.
#[derive(Clone)]
pub struct LogsTable {
    store: Arc<LogStore>,
}

impl std::fmt::Debug for LogsTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogsTable").finish_non_exhaustive()
    }
}

impl LogsTable {
    pub fn new(store: Arc<LogStore>) -> LogsTable {
        LogsTable { store }
    }
}

/// What a filter can become in tantivy.
enum Pushed {
    /// A full-text function: runs in tantivy only.
    FullText(Box<dyn Query>),
    /// An equality the index can narrow down; DataFusion still checks it.
    Term(Box<dyn Query>),
    /// Nothing (a `ts` comparison is handled as the range; others are left to DataFusion).
    No,
}

fn is_full_text_call(e: &Expr) -> bool {
    matches!(e, Expr::ScalarFunction(f) if super::FULL_TEXT_FUNCTIONS.contains(&f.name()))
}

fn string_literal(e: &Expr) -> Option<&str> {
    match e {
        Expr::Literal(ScalarValue::Utf8(Some(s)), _)
        | Expr::Literal(ScalarValue::Utf8View(Some(s)), _)
        | Expr::Literal(ScalarValue::LargeUtf8(Some(s)), _) => Some(s),
        Expr::Cast(c) => string_literal(&c.expr),
        _ => None,
    }
}

fn column_name(e: &Expr) -> Option<&str> {
    match e {
        Expr::Column(c) => Some(&c.name),
        Expr::Cast(c) => column_name(&c.expr),
        _ => None,
    }
}

fn field_of(schema: &LogSchema, column: &str) -> Option<Field> {
    Some(match column {
        "message" => schema.message,
        "function" => schema.function,
        "version" => schema.version,
        "request_id" => schema.request_id,
        "source" => schema.source,
        "level" => schema.level,
        _ => return None,
    })
}

fn invalid(message: String) -> DataFusionError {
    DataFusionError::External(Box::new(QueryError::InvalidSql(message)))
}

/// `match(column, 'words')`: every word of the text, as the column's analyzer splits it.
fn match_query(schema: &LogSchema, column: &str, text: &str) -> DfResult<Box<dyn Query>> {
    let field = field_of(schema, column).ok_or_else(|| {
        invalid(format!(
            "match() works on message, function, version, request_id, source or level, not {column:?}"
        ))
    })?;
    let tokenizer = match column {
        "message" => "default",
        "level" => fnlens_store::logs::KEYWORD_LOWERCASE,
        _ => "raw",
    };
    let mut analyzer = tokenizers()
        .get(tokenizer)
        .ok_or_else(|| DataFusionError::Internal(format!("no tokenizer {tokenizer}")))?;
    let mut stream = analyzer.token_stream(text);
    let mut clauses: Vec<(Occur, Box<dyn Query>)> = Vec::new();
    while let Some(token) = stream.next() {
        let term = Term::from_field_text(field, &token.text);
        clauses.push((
            Occur::Must,
            Box::new(TermQuery::new(term, IndexRecordOption::Basic)),
        ));
    }
    if clauses.is_empty() {
        return Err(invalid(format!(
            "match({column}, {text:?}) has no words to match"
        )));
    }
    Ok(Box::new(BooleanQuery::new(clauses)))
}

fn push(schema: &LogSchema, e: &Expr) -> DfResult<Pushed> {
    match e {
        Expr::ScalarFunction(f) if f.name() == "match" => {
            let (Some(column), Some(text)) = (
                f.args.first().and_then(column_name),
                f.args.get(1).and_then(string_literal),
            ) else {
                return Err(invalid(
                    "match() takes a logs column and a string literal: match(message, 'timeout')"
                        .into(),
                ));
            };
            Ok(Pushed::FullText(match_query(schema, column, text)?))
        }
        Expr::ScalarFunction(f) if f.name() == "search" => {
            let Some(text) = f.args.first().and_then(string_literal) else {
                return Err(invalid(
                    "search() takes a string literal in the search query language: \
                     search('level:ERROR AND timeout')"
                        .into(),
                ));
            };
            let query = LogQuery::parse(schema, text)
                .map_err(|e| invalid(format!("search({text:?}): {e}")))?;
            Ok(Pushed::FullText(query.query().box_clone()))
        }
        Expr::BinaryExpr(BinaryExpr {
            left,
            op: Operator::Eq,
            right,
        }) => {
            let (column, value) = match (column_name(left), string_literal(right)) {
                (Some(c), Some(v)) => (c, v),
                _ => match (column_name(right), string_literal(left)) {
                    (Some(c), Some(v)) => (c, v),
                    _ => return Ok(Pushed::No),
                },
            };
            let Some(field) = field_of(schema, column).filter(|_| column != "message") else {
                return Ok(Pushed::No);
            };
            let text = if column == "level" {
                value.to_lowercase()
            } else {
                value.to_owned()
            };
            Ok(Pushed::Term(Box::new(TermQuery::new(
                Term::from_field_text(field, &text),
                IndexRecordOption::Basic,
            ))))
        }
        _ => Ok(Pushed::No),
    }
}

#[async_trait]
impl TableProvider for LogsTable {
    fn schema(&self) -> SchemaRef {
        logs_schema()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> DfResult<Vec<TableProviderFilterPushDown>> {
        Ok(filters
            .iter()
            .map(|f| {
                if is_full_text_call(f) {
                    TableProviderFilterPushDown::Exact
                } else {
                    // A full-text call nested in OR/NOT is evaluated by DataFusion, whose
                    // implementation explains where to put it instead.
                    TableProviderFilterPushDown::Inexact
                }
            })
            .collect())
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let schema = self.store.schema();
        let range = ts_range(filters);
        let mut clauses: Vec<(Occur, Box<dyn Query>)> = Vec::new();
        for f in filters {
            match push(schema, f)? {
                Pushed::FullText(q) | Pushed::Term(q) => clauses.push((Occur::Must, q)),
                Pushed::No => {}
            }
        }
        if range != TimeRange::all() {
            clauses.push((
                Occur::Must,
                Box::new(RangeQuery::new(
                    std::ops::Bound::Included(Term::from_field_i64(schema.ts, range.start_ms())),
                    std::ops::Bound::Excluded(Term::from_field_i64(schema.ts, range.end_ms())),
                )),
            ));
        }
        let query: Arc<dyn Query> = if clauses.is_empty() {
            Arc::new(AllQuery)
        } else {
            Arc::new(BooleanQuery::new(clauses))
        };
        let columns: HashSet<usize> = match projection {
            Some(p) => p.iter().copied().collect(),
            None => (0..logs_schema().fields().len()).collect(),
        };
        // Every segment of every partition in range, dealt out to the output partitions.
        let mut units = Vec::new();
        for part in self.store.partitions(range) {
            let searcher = part.searcher();
            for (ord, reader) in searcher.segment_readers().iter().enumerate() {
                if reader.num_docs() > 0 {
                    units.push((searcher.clone(), ord as SegmentOrdinal));
                }
            }
        }
        let n = state
            .config()
            .target_partitions()
            .clamp(1, units.len().max(1));
        let mut groups: Vec<Vec<(Searcher, SegmentOrdinal)>> = vec![Vec::new(); n];
        for (i, unit) in units.into_iter().enumerate() {
            groups[i % n].push(unit);
        }
        let streams: Vec<Arc<dyn PartitionStream>> = groups
            .into_iter()
            .map(|units| {
                Arc::new(LogScan(Arc::new(ScanJob {
                    schema: logs_schema(),
                    log_schema: schema.clone(),
                    query: query.clone(),
                    units,
                    columns: columns.clone(),
                    limit: limit.unwrap_or(usize::MAX),
                }))) as Arc<dyn PartitionStream>
            })
            .collect();
        Ok(Arc::new(StreamingTableExec::try_new(
            logs_schema(),
            streams,
            projection,
            Vec::new(),
            false,
            limit,
        )?))
    }
}

/// One output partition: its segments, read on the blocking pool when executed.
struct LogScan(Arc<ScanJob>);

impl std::fmt::Debug for LogScan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogScan")
            .field("segments", &self.0.units.len())
            .finish_non_exhaustive()
    }
}

impl PartitionStream for LogScan {
    fn schema(&self) -> &SchemaRef {
        &self.0.schema
    }

    fn execute(&self, ctx: Arc<TaskContext>) -> SendableRecordBatchStream {
        let batch_size = ctx.session_config().batch_size();
        let (tx, rx) = tokio::sync::mpsc::channel::<DfResult<RecordBatch>>(2);
        let job = self.0.clone();
        tokio::task::spawn_blocking(move || {
            if let Err(e) = job.run(&tx, batch_size) {
                let _ = tx.blocking_send(Err(e));
            }
        });
        let stream = futures::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|item| (item, rx))
        });
        Box::pin(RecordBatchStreamAdapter::new(self.0.schema.clone(), stream))
    }
}

/// What one output partition reads, and how.
struct ScanJob {
    schema: SchemaRef,
    log_schema: LogSchema,
    query: Arc<dyn Query>,
    units: Vec<(Searcher, SegmentOrdinal)>,
    columns: HashSet<usize>,
    /// Rows to send at most (`usize::MAX`: all).
    limit: usize,
}

/// Reads a fast string column by term ordinal, remembering the strings already seen.
struct StrReader {
    column: Option<tantivy::columnar::StrColumn>,
    cache: Vec<Option<Arc<str>>>,
    buf: String,
}

impl StrReader {
    fn open(reader: &tantivy::SegmentReader, name: &str) -> DfResult<StrReader> {
        let column = reader.fast_fields().str(name).map_err(tantivy_error)?;
        let terms = column.as_ref().map_or(0, |c| c.num_terms());
        Ok(StrReader {
            column,
            cache: vec![None; terms],
            buf: String::new(),
        })
    }

    fn get(&mut self, doc: DocId) -> DfResult<Arc<str>> {
        let Some(column) = &self.column else {
            return Ok(Arc::from(""));
        };
        let Some(ord) = column.term_ords(doc).next() else {
            return Ok(Arc::from(""));
        };
        if let Some(Some(s)) = self.cache.get(ord as usize) {
            return Ok(s.clone());
        }
        self.buf.clear();
        column
            .ord_to_str(ord, &mut self.buf)
            .map_err(|e| DataFusionError::External(Box::new(e)))?;
        let s: Arc<str> = Arc::from(self.buf.as_str());
        if let Some(slot) = self.cache.get_mut(ord as usize) {
            *slot = Some(s.clone());
        }
        Ok(s)
    }
}

fn tantivy_error(e: tantivy::TantivyError) -> DataFusionError {
    DataFusionError::External(Box::new(e))
}

impl ScanJob {
    /// Sends batches until the segments are read, the limit is reached, or the receiver is gone
    /// (the query ended or was cancelled).
    fn run(
        &self,
        tx: &tokio::sync::mpsc::Sender<DfResult<RecordBatch>>,
        batch_size: usize,
    ) -> DfResult<()> {
        let mut sent = 0usize;
        for (searcher, ord) in &self.units {
            if sent >= self.limit {
                break;
            }
            let reader = searcher.segment_reader(*ord);
            let weight = self
                .query
                .weight(EnableScoring::disabled_from_searcher(searcher))
                .map_err(tantivy_error)?;
            let mut docs: Vec<DocId> = Vec::new();
            let alive = reader.alive_bitset();
            weight
                .for_each_no_score(reader, &mut |batch| {
                    docs.extend(
                        batch
                            .iter()
                            .filter(|d| alive.is_none_or(|a| a.is_alive(**d))),
                    )
                })
                .map_err(tantivy_error)?;
            docs.sort_unstable();
            let mut readers = SegmentColumns::open(reader, &self.columns)?;
            for chunk in docs.chunks(batch_size) {
                let chunk = &chunk[..chunk.len().min(self.limit - sent)];
                if chunk.is_empty() {
                    break;
                }
                let batch = self.batch(&mut readers, chunk)?;
                sent += batch.num_rows();
                if tx.blocking_send(Ok(batch)).is_err() {
                    return Ok(());
                }
            }
        }
        Ok(())
    }

    fn batch(&self, r: &mut SegmentColumns, docs: &[DocId]) -> DfResult<RecordBatch> {
        let n = docs.len();
        let want = |c: usize| self.columns.contains(&c);
        let ts: Vec<i64> = match &r.ts {
            Some(col) if want(TS) => docs
                .iter()
                .map(|&d| col.first(d).unwrap_or_default())
                .collect(),
            _ => vec![0; n],
        };
        let ts: ArrayRef = Arc::new(TimestampMillisecondArray::from(ts).with_timezone("UTC"));
        let fast = |c: usize, reader: &mut Option<StrReader>| -> DfResult<ArrayRef> {
            let mut b = StringBuilder::with_capacity(n, n * 8);
            match reader {
                Some(reader) if want(c) => {
                    for &d in docs {
                        b.append_value(&*reader.get(d)?);
                    }
                }
                _ => (0..n).for_each(|_| b.append_value("")),
            }
            Ok(Arc::new(b.finish()))
        };
        let function = fast(FUNCTION, &mut r.function)?;
        let version = fast(VERSION, &mut r.version)?;
        let level = fast(LEVEL, &mut r.level)?;
        let source = fast(SOURCE, &mut r.source)?;
        let mut request_id = StringBuilder::with_capacity(n, n * 36);
        let mut message = StringBuilder::with_capacity(n, n * 64);
        let mut attributes = StringBuilder::with_capacity(n, n * 2);
        let schema = &self.log_schema;
        for &d in docs {
            match &r.store {
                Some(store) => {
                    let doc: TantivyDocument = store.get(d).map_err(tantivy_error)?;
                    let text = |f: Field| doc.get_first(f).and_then(|v| v.as_str());
                    request_id.append_option(text(schema.request_id));
                    message.append_value(text(schema.message).unwrap_or_default());
                    attributes.append_value(text(schema.attributes_json).unwrap_or("{}"));
                }
                None => {
                    request_id.append_null();
                    message.append_value("");
                    attributes.append_value("");
                }
            }
        }
        let columns: Vec<ArrayRef> = vec![
            ts,
            function,
            version,
            Arc::new(request_id.finish()),
            level,
            source,
            Arc::new(message.finish()),
            Arc::new(attributes.finish()),
        ];
        Ok(RecordBatch::try_new(self.schema.clone(), columns)?)
    }
}

/// The readers of one segment, for the projected columns only.
struct SegmentColumns {
    ts: Option<tantivy::columnar::Column<i64>>,
    function: Option<StrReader>,
    version: Option<StrReader>,
    level: Option<StrReader>,
    source: Option<StrReader>,
    store: Option<tantivy::store::StoreReader>,
}

impl SegmentColumns {
    fn open(reader: &tantivy::SegmentReader, columns: &HashSet<usize>) -> DfResult<Self> {
        let want = |c: usize| columns.contains(&c);
        let str_reader = |c: usize, name: &str| -> DfResult<Option<StrReader>> {
            if want(c) {
                Ok(Some(StrReader::open(reader, name)?))
            } else {
                Ok(None)
            }
        };
        Ok(SegmentColumns {
            ts: if want(TS) {
                Some(reader.fast_fields().i64("ts").map_err(tantivy_error)?)
            } else {
                None
            },
            function: str_reader(FUNCTION, "function")?,
            version: str_reader(VERSION, "version")?,
            level: str_reader(LEVEL, "level")?,
            source: str_reader(SOURCE, "source")?,
            store: if want(REQUEST_ID) || want(MESSAGE) || want(ATTRIBUTES) {
                Some(
                    reader
                        .get_store_reader(64)
                        .map_err(|e| DataFusionError::External(Box::new(e)))?,
                )
            } else {
                None
            },
        })
    }
}
