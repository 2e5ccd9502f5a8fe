//! The inert pipeline graph: nodes (stage bodies), edges, and what
//! validation learned (schemas, topological order).

use std::fmt;
use std::sync::Arc;

use arrow_schema::SchemaRef;
use garner_columnar::{BatchSink, BatchSource};

use crate::{Stage, StageKind};

/// Index of a node in [`PipelineGraph::nodes`].
pub type NodeId = usize;

/// Makes stage instances: one per partition of a node.
///
/// Every `Stage + Clone + Sync` is a factory of clones of itself, so most
/// stages are passed to the builder as they are.
pub trait StageFactory: Send + Sync {
    /// A fresh instance for `partition`.
    fn create(&self, partition: usize) -> Box<dyn Stage>;
}

impl<S: Stage + Clone + Sync + 'static> StageFactory for S {
    fn create(&self, _partition: usize) -> Box<dyn Stage> {
        Box::new(self.clone())
    }
}

/// How an edge spreads batches over the instances of its target.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Partitioning {
    /// Instance `i` feeds instance `i` (or the only one).
    Forward,
    /// Batches go to the instances in turn.
    RoundRobin,
    /// Rows go to the instance owning the hash of these columns: what keyed
    /// state needs, so each instance owns its keys and needs no lock.
    Hash(Vec<String>),
    /// Every instance gets every batch.
    Broadcast,
}

/// Whether an edge must keep the order in which its source produced batches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Ordering {
    /// Batches arrive in source order.
    #[default]
    Ordered,
    /// Any order will do (cheaper for parallel engines).
    Unordered,
}

/// What a stage mostly spends its time on: the hybrid engine places stages
/// by it (see [`HybridEngine`](crate::HybridEngine)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ParallelismHint {
    /// Computation on batches (the default for transforms and merges).
    CpuBound,
    /// Waits on files, sockets or devices (the default for sources and sinks).
    IoBound,
    /// Holds keyed state (the default for accumulators).
    Stateful,
    /// Spreads rows over many outputs (the default for branches).
    FanOut,
}

impl ParallelismHint {
    /// The default hint of a stage kind.
    pub fn default_for(kind: StageKind) -> Self {
        match kind {
            StageKind::Source | StageKind::Sink => ParallelismHint::IoBound,
            StageKind::Accumulator => ParallelismHint::Stateful,
            StageKind::Branch => ParallelismHint::FanOut,
            StageKind::Transform | StageKind::Merge => ParallelismHint::CpuBound,
        }
    }
}

/// A reference to an output port: `stage` or `stage.port`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PortRef {
    /// The stage id.
    pub stage: String,
    /// The port name; `None` is the stage's only output.
    pub port: Option<String>,
}

impl PortRef {
    /// Parses `stage` or `stage.port`.
    pub fn parse(s: &str) -> Self {
        match s.split_once('.') {
            Some((stage, port)) => PortRef { stage: stage.to_owned(), port: Some(port.to_owned()) },
            None => PortRef { stage: s.to_owned(), port: None },
        }
    }
}

impl fmt::Display for PortRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.port {
            Some(p) => write!(f, "{}.{p}", self.stage),
            None => f.write_str(&self.stage),
        }
    }
}

/// What a node runs.
pub(crate) enum NodeBody {
    Source(Box<dyn BatchSource>),
    Stage(Arc<dyn StageFactory>),
    Sink(Box<dyn BatchSink>),
}

/// A stage in the graph.
pub struct Node {
    /// The stage id, unique in the graph.
    pub id: String,
    /// Its kind.
    pub kind: StageKind,
    /// Instances a parallel engine should run (0: as many as it has
    /// threads; always 1 for sources and sinks).
    pub parallelism: usize,
    /// What the stage spends its time on.
    pub hint: ParallelismHint,
    /// The schema it receives (none for sources).
    pub input_schema: Option<SchemaRef>,
    /// The schema it emits (none for sinks).
    pub output_schema: Option<SchemaRef>,
    /// Names of its output ports.
    pub output_ports: Vec<String>,
    /// Key columns, for accumulators.
    pub key_columns: Vec<String>,
    /// Its input mailbox, when set (else the run's capacity, blocking).
    pub mailbox: Option<crate::resilience::MailboxPolicy>,
    /// How the engines cut its input batches, when set.
    pub batching: Option<crate::flow::Batching>,
    pub(crate) body: NodeBody,
}

impl fmt::Debug for Node {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Node")
            .field("id", &self.id)
            .field("kind", &self.kind)
            .field("parallelism", &self.parallelism)
            .field("output_ports", &self.output_ports)
            .finish_non_exhaustive()
    }
}

/// A connection from an output port to a stage's input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Edge {
    /// Producing node.
    pub from: NodeId,
    /// Index into the producer's `output_ports`.
    pub from_port: usize,
    /// Consuming node.
    pub to: NodeId,
    /// How batches spread over the consumer's instances.
    pub partitioning: Partitioning,
    /// Whether order must be kept.
    pub ordering: Ordering,
}

/// A validated pipeline, ready for an engine. Nothing runs until an
/// [`Engine`](crate::Engine) runs it; running consumes it.
#[derive(Debug)]
pub struct PipelineGraph {
    pub(crate) name: String,
    pub(crate) nodes: Vec<Node>,
    pub(crate) edges: Vec<Edge>,
    pub(crate) topo: Vec<NodeId>,
}

impl PipelineGraph {
    /// Applies a policy snapshot (take it from a
    /// [`PolicyRegistry`](crate::resilience::PolicyRegistry) for each run:
    /// a run keeps the snapshot it started with, the next run picks up a
    /// changed one). Every transform, accumulator, branch and merge the set
    /// names (`for_stage`: its override, else the default policy) runs
    /// [`Guarded`](crate::resilience::Guarded) under it, sending what fails
    /// for good to `dead_letters`; its mailbox policy applies where the
    /// graph set none.
    pub fn with_policies(
        mut self,
        policies: &crate::resilience::PolicySet,
        dead_letters: Option<&crate::DeadLetterQueue>,
    ) -> Self {
        for node in &mut self.nodes {
            let NodeBody::Stage(factory) = &node.body else { continue };
            let policy = policies.for_stage(&node.id).clone();
            if node.mailbox.is_none() {
                node.mailbox = Some(policy.mailbox);
            }
            let mut guarded = crate::resilience::Guarded::from_factory(factory.clone(), policy);
            if let Some(q) = dead_letters {
                guarded = guarded.dead_letters(q.clone());
            }
            node.body = NodeBody::Stage(Arc::new(guarded));
        }
        self
    }

    /// The pipeline's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// All nodes, in the order they were added.
    pub fn nodes(&self) -> &[Node] {
        &self.nodes
    }

    /// All edges.
    pub fn edges(&self) -> &[Edge] {
        &self.edges
    }

    /// Node ids in topological order (every producer before its consumers).
    pub fn topo_order(&self) -> &[NodeId] {
        &self.topo
    }

    /// The node with this stage id.
    pub fn node(&self, id: &str) -> Option<&Node> {
        self.nodes.iter().find(|n| n.id == id)
    }

    /// Edges into `node`.
    pub fn inputs_of(&self, node: NodeId) -> impl Iterator<Item = &Edge> {
        self.edges.iter().filter(move |e| e.to == node)
    }

    /// Edges out of `node`.
    pub fn outputs_of(&self, node: NodeId) -> impl Iterator<Item = &Edge> {
        self.edges.iter().filter(move |e| e.from == node)
    }

    /// Rows the sources announce up front, if all of them do.
    pub fn rows_hint(&self) -> Option<u64> {
        self.nodes
            .iter()
            .filter_map(|n| match &n.body {
                NodeBody::Source(s) => Some(s.rows_hint()),
                _ => None,
            })
            .sum()
    }

    /// The graph as a Mermaid flowchart.
    pub fn to_mermaid(&self) -> String {
        crate::render::mermaid(self)
    }

    /// The graph in Graphviz dot.
    pub fn to_dot(&self) -> String {
        crate::render::dot(self)
    }
}
