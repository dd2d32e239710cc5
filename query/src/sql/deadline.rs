//! A deadline every operator of a plan checks between batches.
//!
//! Aborting a query's task only takes effect when the task yields, and a join that produces
//! batch after batch from its in-memory side may not yield for minutes. So every node of the
//! physical plan is wrapped in a [`DeadlineExec`], which fails its stream once the deadline has
//! passed: the query ends at the next batch any operator hands on.

use std::fmt;
use std::sync::Arc;
use std::time::Instant;

use arrow::datatypes::SchemaRef;
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{DisplayAs, DisplayFormatType, ExecutionPlan, PlanProperties};
use futures::StreamExt;

use crate::QueryError;

/// Wraps every node of `plan` so that its output stream fails after `deadline`.
pub(crate) fn with_deadline(
    plan: Arc<dyn ExecutionPlan>,
    deadline: Instant,
    message: Arc<str>,
) -> DfResult<Arc<dyn ExecutionPlan>> {
    Ok(plan
        .transform_up(|node| {
            Ok(Transformed::yes(Arc::new(DeadlineExec {
                input: node,
                deadline,
                message: message.clone(),
            }) as Arc<dyn ExecutionPlan>))
        })?
        .data)
}

#[derive(Debug, Clone)]
pub(crate) struct DeadlineExec {
    input: Arc<dyn ExecutionPlan>,
    deadline: Instant,
    message: Arc<str>,
}

impl DisplayAs for DeadlineExec {
    fn fmt_as(&self, t: DisplayFormatType, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.input.fmt_as(t, f)
    }
}

impl ExecutionPlan for DeadlineExec {
    fn name(&self) -> &str {
        "DeadlineExec"
    }

    fn schema(&self) -> SchemaRef {
        self.input.schema()
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        self.input.properties()
    }

    fn maintains_input_order(&self) -> Vec<bool> {
        vec![true]
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.input]
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> DfResult<TreeNodeRecursion>,
    ) -> DfResult<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn with_new_children(
        self: Arc<Self>,
        mut children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        if children.len() != 1 {
            return Err(DataFusionError::Internal(
                "DeadlineExec has one child".into(),
            ));
        }
        Ok(Arc::new(DeadlineExec {
            input: children.swap_remove(0),
            ..(*self).clone()
        }))
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> DfResult<SendableRecordBatchStream> {
        let stream = self.input.execute(partition, context)?;
        let deadline = self.deadline;
        let message = self.message.clone();
        let checked = stream.map(move |batch| {
            if Instant::now() >= deadline {
                return Err(DataFusionError::External(Box::new(QueryError::Timeout(
                    message.to_string(),
                ))));
            }
            batch
        });
        Ok(Box::pin(RecordBatchStreamAdapter::new(
            self.input.schema(),
            checked,
        )))
    }
}
