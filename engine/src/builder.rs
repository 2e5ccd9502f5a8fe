//! The pipeline DSL: a builder that produces an inert, validated graph.
//!
//! Chains read top to bottom: each stage takes the previous stage's output.
//! For DAGs, [`Pipeline::from`] points the chain at any output port
//! (`"stage"` or `"stage.port"` for a branch's named outputs) and
//! [`Pipeline::merge`] unions several outputs. References are resolved at
//! [`Pipeline::build`], so they may name stages added later.

use std::sync::Arc;

use garner_columnar::{BatchSink, BatchSource};

use crate::graph::NodeBody;
use crate::stages::{AccumulateStage, Branch, Merge};
use crate::{Ordering, ParallelismHint, PipelineGraph, PortRef, Result, StageFactory, StageKind};

/// One or more output-port references: `"a"`, `["a", "b.hi"]`, a `Vec<String>`.
pub trait IntoPorts {
    /// The references.
    fn into_ports(self) -> Vec<PortRef>;
}

impl IntoPorts for &str {
    fn into_ports(self) -> Vec<PortRef> {
        vec![PortRef::parse(self)]
    }
}

impl IntoPorts for String {
    fn into_ports(self) -> Vec<PortRef> {
        vec![PortRef::parse(&self)]
    }
}

impl<S: AsRef<str>, const N: usize> IntoPorts for [S; N] {
    fn into_ports(self) -> Vec<PortRef> {
        self.iter().map(|s| PortRef::parse(s.as_ref())).collect()
    }
}

impl<S: AsRef<str>> IntoPorts for Vec<S> {
    fn into_ports(self) -> Vec<PortRef> {
        self.iter().map(|s| PortRef::parse(s.as_ref())).collect()
    }
}

impl<S: AsRef<str>> IntoPorts for &[S] {
    fn into_ports(self) -> Vec<PortRef> {
        self.iter().map(|s| PortRef::parse(s.as_ref())).collect()
    }
}

pub(crate) struct PendingNode {
    pub(crate) id: String,
    pub(crate) kind: StageKind,
    pub(crate) body: NodeBody,
    pub(crate) inputs: Vec<PortRef>,
    pub(crate) parallelism: Option<usize>,
    pub(crate) ordering: Ordering,
    pub(crate) hint: Option<ParallelismHint>,
    pub(crate) mailbox: Option<crate::resilience::MailboxPolicy>,
    pub(crate) batching: Option<crate::flow::Batching>,
}

/// Builds a [`PipelineGraph`].
///
/// ```
/// use std::sync::Arc;
/// use arrow_array::{Int64Array, RecordBatch};
/// use garner_columnar::sink::CollectSink;
/// use garner_columnar::source::MemorySource;
/// use garner_engine::prelude::*;
///
/// let data = RecordBatch::try_from_iter([("x", Arc::new(Int64Array::from(vec![1, 5, 9])) as _)]).unwrap();
/// let (small, small_rows) = CollectSink::new();
/// let (big, big_rows) = CollectSink::new();
/// let graph = Pipeline::new("split")
///     .source("read", MemorySource::try_from_batches(vec![data]).unwrap())
///     .branch("by-size", Branch::new().route("big", col("x").gt(4)).otherwise("small"))
///     .from("by-size.big").sink("big-out", big)
///     .from("by-size.small").sink("small-out", small)
///     .build()
///     .unwrap();
/// SyncEngine::new().run(graph, RunOptions::default()).unwrap();
/// assert_eq!(big_rows.concat().unwrap().num_rows(), 2);
/// assert_eq!(small_rows.concat().unwrap().num_rows(), 1);
/// ```
pub struct Pipeline {
    pub(crate) name: String,
    pub(crate) nodes: Vec<PendingNode>,
    cursor: Vec<PortRef>,
}

impl Pipeline {
    /// An empty pipeline.
    pub fn new(name: impl Into<String>) -> Self {
        Self { name: name.into(), nodes: Vec::new(), cursor: Vec::new() }
    }

    fn push(mut self, id: String, kind: StageKind, body: NodeBody) -> Self {
        let inputs = if kind == StageKind::Source { Vec::new() } else { std::mem::take(&mut self.cursor) };
        self.cursor = match kind {
            StageKind::Sink | StageKind::Branch => Vec::new(),
            _ => vec![PortRef { stage: id.clone(), port: None }],
        };
        self.nodes.push(PendingNode {
            id,
            kind,
            body,
            inputs,
            parallelism: None,
            ordering: Ordering::Ordered,
            hint: None,
            mailbox: None,
            batching: None,
        });
        self
    }

    /// Adds a source; the chain continues from it.
    pub fn source(self, id: impl Into<String>, source: impl BatchSource + 'static) -> Self {
        self.push(id.into(), StageKind::Source, NodeBody::Source(Box::new(source)))
    }

    /// Adds a stateless transform fed by the chain.
    pub fn transform(self, id: impl Into<String>, stage: impl StageFactory + 'static) -> Self {
        self.stage(id, StageKind::Transform, Arc::new(stage))
    }

    /// Adds an accumulator fed by the chain; its input edge is hash
    /// partitioned on the key columns.
    pub fn accumulate(self, id: impl Into<String>, acc: impl Into<AccumulateStage>) -> Self {
        self.stage(id, StageKind::Accumulator, Arc::new(acc.into()))
    }

    /// Adds a branch fed by the chain. The chain then ends: continue with
    /// [`from`](Self::from)`("id.port")` for each output.
    pub fn branch(self, id: impl Into<String>, branch: Branch) -> Self {
        self.stage(id, StageKind::Branch, Arc::new(branch))
    }

    /// Adds a union of `inputs`; the chain continues from it.
    pub fn merge(self, id: impl Into<String>, inputs: impl IntoPorts) -> Self {
        self.from(inputs).stage(id, StageKind::Merge, Arc::new(Merge))
    }

    /// Adds a sink fed by the chain; the chain ends.
    pub fn sink(self, id: impl Into<String>, sink: impl BatchSink + 'static) -> Self {
        self.push(id.into(), StageKind::Sink, NodeBody::Sink(Box::new(sink)))
    }

    /// Adds any stage of the given kind from a factory. The kind must fit
    /// the stage (`build` says [`Error::InvalidStage`](crate::Error::InvalidStage)
    /// otherwise): not `Source` or `Sink`, a branch with at least one
    /// output, any other kind with exactly one.
    pub fn stage(self, id: impl Into<String>, kind: StageKind, factory: Arc<dyn StageFactory>) -> Self {
        self.push(id.into(), kind, NodeBody::Stage(factory))
    }

    /// Points the chain at `inputs`: the next stage reads all of them.
    pub fn from(mut self, inputs: impl IntoPorts) -> Self {
        self.cursor = inputs.into_ports();
        self
    }

    /// Sets how many instances a parallel engine runs of the last stage added
    /// (0, the default, means the engine's thread count).
    ///
    /// Order: batches keep their source order through chains of stages, also
    /// across repartitions between different parallelisms, and through a
    /// hash exchange into an accumulator. An accumulator's output has no
    /// source order (its shards emit independently); an ordered edge that
    /// spreads it round robin over several instances is read unordered
    /// (the plan logs a `tracing` warning naming the edge).
    pub fn parallelism(mut self, instances: usize) -> Self {
        if let Some(n) = self.nodes.last_mut() {
            n.parallelism = Some(instances.max(1));
        }
        self
    }

    /// Sets the input mailbox of the last stage added (parallel engines):
    /// its capacity in units, and what a full one does — block the
    /// producer (the default), drop the newest or the oldest unit (counted
    /// in the stage's `mailbox_dropped`), or fail the run. The SyncEngine
    /// has no mailboxes and never drops.
    pub fn mailbox(mut self, policy: crate::resilience::MailboxPolicy) -> Self {
        if let Some(n) = self.nodes.last_mut() {
            n.mailbox = Some(policy);
        }
        self
    }

    /// Sets how the engines cut the input batches of the last stage added
    /// (a transform, accumulator, branch or merge; sources and sinks
    /// ignore it): [`Batching::Fixed`](crate::flow::Batching::Fixed) slices
    /// them to at most `n` rows, [`Batching::Adaptive`](crate::flow::Batching::Adaptive)
    /// to a size that follows the seed's adaptive rule on the stage's
    /// measured latency per slice and its input queue's fill. The
    /// `SyncEngine`, `StealEngine`, `DataflowEngine` and `HybridEngine` drive
    /// it (the `RayonEngine` ignores it); adjustments show in the stage's
    /// `adaptive_batch_adjustments` metric. `build` checks the parameters.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use arrow_array::{Int64Array, RecordBatch};
    /// use garner_columnar::sink::CollectSink;
    /// use garner_columnar::source::MemorySource;
    /// use garner_engine::flow::{AdaptiveConfig, Batching};
    /// use garner_engine::prelude::*;
    ///
    /// let data = RecordBatch::try_from_iter([("x", Arc::new(Int64Array::from_iter_values(0..1000)) as _)]).unwrap();
    /// let (sink, rows) = CollectSink::new();
    /// let config = AdaptiveConfig { min: 64, max: 4096, initial: 256, target_latency_ms: 5.0, alpha: 0.3 };
    /// let graph = Pipeline::new("adaptive")
    ///     .source("read", MemorySource::try_from_batches(vec![data]).unwrap())
    ///     .transform("pass", MapBatches::new(Ok))
    ///     .batching(Batching::Adaptive(config))
    ///     .sink("write", sink)
    ///     .build()
    ///     .unwrap();
    /// let report = SyncEngine::new().run(graph, RunOptions::default()).unwrap();
    /// assert_eq!(rows.concat().unwrap().num_rows(), 1000);
    /// assert!(report.stage("pass").unwrap().batches_in >= 1000 / 256);
    /// ```
    pub fn batching(mut self, batching: crate::flow::Batching) -> Self {
        if let Some(n) = self.nodes.last_mut() {
            n.batching = Some(batching);
        }
        self
    }

    /// Tells the engines what the last stage added spends its time on.
    pub fn hint(mut self, hint: ParallelismHint) -> Self {
        if let Some(n) = self.nodes.last_mut() {
            n.hint = Some(hint);
        }
        self
    }

    /// Lets the last stage added receive its input in any order.
    pub fn unordered(mut self) -> Self {
        if let Some(n) = self.nodes.last_mut() {
            n.ordering = Ordering::Unordered;
        }
        self
    }

    /// Validates the pipeline and returns the graph: acyclic, every port
    /// connected, schemas compatible, key columns present and hashable.
    /// Errors name the stage and the column.
    pub fn build(self) -> Result<PipelineGraph> {
        crate::validate::build(self)
    }
}
