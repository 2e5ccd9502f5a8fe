//! The physical plan shared by the parallel engines: every node expanded
//! into instances, chains of stateless stages fused into one actor, and
//! every edge expanded into links between instances with a distribution.
//!
//! Order is kept without sequence bookkeeping by one invariant:
//! 1. a source emits one *unit* (a list of batches) per batch it reads;
//! 2. every actor emits exactly one unit per unit it receives on each
//!    ordered out-link (possibly empty), in the order it received them;
//! 3. a round-robin distribution sends unit `n` to instance `n % P`, a hash
//!    or broadcast distribution sends one unit to every instance; here `n`
//!    is the unit's index in the producing node's *logical stream*: a node
//!    whose instances are *striped* (instance `p` of `P` holds units
//!    `p, p+P, p+2P, ...` of the stream, which is what a round-robin or
//!    forward feed from a striped node gives) numbers its `k`-th unit
//!    `p + k*P`, so a repartition between two different parallelisms keeps
//!    order too: consumer `q` of `Q` reads its `k`-th unit `q + k*Q` from
//!    producer `(q + k*Q) % P`, i.e. its cursor starts at `q % P` and steps
//!    by `Q % P`;
//! 4. an ordered consumer reads the links of each input edge cyclically,
//!    one unit from each in turn (or with the step of point 3); once a link
//!    of the edge has ended, it reads the rest cyclically, skipping ended
//!    links, which only hold the producers' last flushes;
//!    with several input edges (a merge), it takes one unit from every
//!    edge, in the topological order of their producers, and processes
//!    them as one unit, which is the order in which the `SyncEngine`
//!    queues them.
//!
//! Then every consumer sees units in source order (round-robin replicas
//! cover units `i, i+P, ...`; hash-fed instances all cover every unit), so
//! each accumulator instance sees its keys' fragments in source order and
//! an ordered sink writes in source order, as the `SyncEngine` does.
//! Unordered links skip empty units and are read in whatever order they
//! fill.

use std::sync::Arc;

use garner_columnar::{BatchSink, BatchSource};

use super::exchange::HashPartitioner;
use crate::graph::NodeBody;
use crate::{Error, NodeId, Ordering, Partitioning, PipelineGraph, Result, Stage, StageKind};

/// Index of an actor in [`Plan::actors`].
pub(crate) type ActorId = usize;
/// Index of a link in [`Plan::links`].
pub(crate) type LinkId = usize;

/// How a unit leaving an out-edge is spread over the consumer's links.
#[derive(Debug)]
pub(crate) enum Distribution {
    /// One link (forward to the same instance, or fan-in).
    One,
    /// Unit `n` to link `n % links`.
    RoundRobin,
    /// Rows by the hash of key columns, one part to every link; parts carry
    /// the watermark of this event-time column (index), if the consumer keeps one.
    Hash(HashPartitioner, Option<usize>),
    /// The whole unit to every link.
    Broadcast,
}

/// One edge leaving an actor's last stage, expanded.
#[derive(Debug)]
pub(crate) struct OutEdge {
    pub(crate) distribution: Distribution,
    /// One link per consumer instance reached (instance order).
    pub(crate) links: Vec<LinkId>,
    /// Whether the consumer reads these links in order (then empty units
    /// must be sent too).
    pub(crate) ordered: bool,
    /// Round robin: this instance's `k`-th unit is unit `offset + k*step`
    /// of the node's logical stream, and goes to link `(offset + k*step) % links`.
    pub(crate) stride: (u64, u64),
}

/// One graph edge into an actor, expanded: its links in producer-instance order.
#[derive(Debug)]
pub(crate) struct InGroup {
    pub(crate) links: Vec<LinkId>,
    pub(crate) ordered: bool,
    /// Topological position of the producing node: ordered consumers take
    /// one unit from each group per cycle, in this order, as the
    /// `SyncEngine` queues them.
    pub(crate) rank: usize,
    /// Ordered groups: the link of the first unit, and how far the cursor
    /// moves per unit (mod the links), until a link ends.
    pub(crate) start: usize,
    pub(crate) step: usize,
}

/// A link: a bounded FIFO of units from one actor to another.
#[derive(Debug, Clone, Copy)]
pub(crate) struct LinkSpec {
    pub(crate) from: ActorId,
    pub(crate) to: ActorId,
    /// The target stage's mailbox, when it sets one.
    pub(crate) mailbox: Option<crate::resilience::MailboxPolicy>,
}

/// What an actor runs.
pub(crate) enum Body {
    Source(Box<dyn BatchSource>),
    /// A fused chain: each stage feeds the next; the last one's ports are
    /// the actor's outputs.
    Chain(Vec<Box<dyn Stage>>),
    Sink(Box<dyn BatchSink>),
}

/// An actor: one instance of a node (or of a fused chain of nodes).
pub(crate) struct ActorSpec {
    /// The nodes it runs, in chain order.
    pub(crate) nodes: Vec<NodeId>,
    pub(crate) instance: usize,
    pub(crate) instances: usize,
    pub(crate) body: Body,
    pub(crate) inputs: Vec<InGroup>,
    /// Per output port of the last node: the edges leaving it.
    pub(crate) outputs: Vec<Vec<OutEdge>>,
    /// Whether the last node is stateful (gets ticks).
    pub(crate) stateful: bool,
}

/// Per graph node: what the reports need.
#[derive(Debug, Clone)]
pub(crate) struct NodeInfo {
    pub(crate) id: String,
    pub(crate) kind: StageKind,
    pub(crate) instances: usize,
    pub(crate) input_schema: Option<arrow_schema::SchemaRef>,
    pub(crate) hint: crate::ParallelismHint,
    pub(crate) mailbox: Option<crate::resilience::MailboxPolicy>,
    pub(crate) batching: Option<crate::flow::Batching>,
}

/// The expanded graph.
pub(crate) struct Plan {
    pub(crate) nodes: Vec<NodeInfo>,
    pub(crate) actors: Vec<ActorSpec>,
    pub(crate) links: Vec<LinkSpec>,
}

/// Planning choices.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PlanOptions {
    /// Instances of a replicated node without an explicit parallelism.
    pub(crate) threads: usize,
    /// Fuse chains of stateless stages into one actor.
    pub(crate) fuse: bool,
}

fn instances_of(kind: StageKind, parallelism: usize, threads: usize) -> usize {
    match kind {
        StageKind::Source | StageKind::Sink => 1,
        _ if parallelism > 0 => parallelism,
        _ => threads.max(1),
    }
}

impl Plan {
    /// Expands `graph`.
    pub(crate) fn new(graph: PipelineGraph, opts: PlanOptions) -> Result<Plan> {
        let PipelineGraph { nodes, edges, topo, .. } = graph;
        let n = nodes.len();
        let instances: Vec<usize> =
            nodes.iter().map(|nd| instances_of(nd.kind, nd.parallelism, opts.threads)).collect();
        let in_edges: Vec<Vec<usize>> =
            (0..n).map(|i| (0..edges.len()).filter(|&e| edges[e].to == i).collect()).collect();
        let out_edges: Vec<Vec<usize>> =
            (0..n).map(|i| (0..edges.len()).filter(|&e| edges[e].from == i).collect()).collect();

        // 1. Fusion: `next[a] = b` when b continues a's chain.
        let fusable = |a: usize| -> Option<usize> {
            if !opts.fuse || nodes[a].kind != StageKind::Transform || out_edges[a].len() != 1 {
                return None;
            }
            let e = &edges[out_edges[a][0]];
            let b = e.to;
            let ok = matches!(nodes[b].kind, StageKind::Transform | StageKind::Branch)
                && in_edges[b].len() == 1
                && e.partitioning == Partitioning::Forward
                && instances[a] == instances[b];
            ok.then_some(b)
        };
        let mut chain_of: Vec<Option<usize>> = vec![None; n]; // node -> chain index
        let mut chains: Vec<Vec<NodeId>> = Vec::new();
        for &i in &topo {
            if chain_of[i].is_some() {
                continue;
            }
            let mut chain = vec![i];
            let mut at = i;
            while let Some(b) = fusable(at) {
                chain.push(b);
                at = b;
            }
            for &m in &chain {
                chain_of[m] = Some(chains.len());
            }
            chains.push(chain);
        }

        // 2. Actors: one per chain instance.
        let mut bodies: Vec<Option<NodeBody>> = Vec::with_capacity(n);
        let mut infos = Vec::with_capacity(n);
        for nd in nodes {
            infos.push(NodeInfo {
                id: nd.id.clone(),
                kind: nd.kind,
                instances: instances_of(nd.kind, nd.parallelism, opts.threads),
                input_schema: nd.input_schema.clone(),
                hint: nd.hint,
                mailbox: nd.mailbox,
                batching: nd.batching,
            });
            bodies.push(Some(nd.body));
        }
        let mut actors: Vec<ActorSpec> = Vec::new();
        let mut actor_of: Vec<Vec<ActorId>> = vec![Vec::new(); chains.len()]; // chain -> instance -> actor
        for (c, chain) in chains.iter().enumerate() {
            let head = chain[0];
            let count = instances[head];
            let factories: Vec<Option<Arc<dyn crate::StageFactory>>> = chain
                .iter()
                .map(|&m| match &bodies[m] {
                    Some(NodeBody::Stage(f)) => Some(f.clone()),
                    _ => None,
                })
                .collect();
            for inst in 0..count {
                let body = match infos[head].kind {
                    StageKind::Source => match bodies[head].take() {
                        Some(NodeBody::Source(s)) => Body::Source(s),
                        _ => return Err(Error::Internal("source body missing".into())),
                    },
                    StageKind::Sink => match bodies[head].take() {
                        Some(NodeBody::Sink(s)) => Body::Sink(s),
                        _ => return Err(Error::Internal("sink body missing".into())),
                    },
                    _ => Body::Chain(
                        factories
                            .iter()
                            .map(|f| f.as_ref().map(|f| f.create(inst)))
                            .collect::<Option<Vec<_>>>()
                            .ok_or_else(|| Error::Internal("stage factory missing".into()))?,
                    ),
                };
                let last = *chain.last().expect("chains are non-empty");
                actor_of[c].push(actors.len());
                actors.push(ActorSpec {
                    nodes: chain.clone(),
                    instance: inst,
                    instances: count,
                    body,
                    inputs: Vec::new(),
                    outputs: Vec::new(),
                    stateful: infos[last].kind == StageKind::Accumulator,
                });
                let ports = match &infos[last].kind {
                    StageKind::Sink => 0,
                    _ => out_ports(&edges, &out_edges[last]),
                };
                actors.last_mut().expect("just pushed").outputs = (0..ports).map(|_| Vec::new()).collect();
            }
        }

        // 3. Which edges keep order: the edge asks for it, its distribution
        //    can keep it (a round-robin spread over several instances needs
        //    a striped producer, point 3 above: not an accumulator's shards
        //    or another hash-fed stage), and its producer emits units in source order, which
        //    holds only when every edge into the producer's chain keeps
        //    order too. An ordered read of a producer whose instances see
        //    unequal numbers of units would wait forever on the short one.
        let mut edge_ordered = vec![false; edges.len()];
        let mut chain_in_order = vec![true; chains.len()];
        // Striped: instance `p` of `P` holds units `p + k*P` of the chain's
        // logical stream (every single-instance chain is).
        let mut striped = vec![false; chains.len()];
        for (c, chain) in chains.iter().enumerate() {
            let head = chain[0];
            let pb = actor_of[c].len();
            let mut all_striping = true;
            for &ei in &in_edges[head] {
                let e = &edges[ei];
                let ca = chain_of[e.from].expect("planned");
                let pa = actor_of[ca].len();
                // Chains are numbered in topological order: `ca` is settled.
                let spread = spreads_round_robin(&e.partitioning, pa, pb);
                let keeps = match e.partitioning {
                    Partitioning::Hash(_) | Partitioning::Broadcast => true,
                    _ if !spread => true,
                    _ => pa == 1 || pb == 1 || striped[ca],
                };
                if e.ordering == Ordering::Ordered && !keeps {
                    tracing::warn!(
                        from = %infos[e.from].id,
                        to = %infos[e.to].id,
                        from_instances = pa,
                        to_instances = pb,
                        "an ordered edge between two different parallelisms does not keep source order \
                         after a stage whose instances each see every unit (an accumulator)"
                    );
                }
                edge_ordered[ei] = e.ordering == Ordering::Ordered && keeps && chain_in_order[ca];
                chain_in_order[c] &= edge_ordered[ei];
                all_striping &= edge_ordered[ei]
                    && match e.partitioning {
                        Partitioning::Hash(_) | Partitioning::Broadcast => false,
                        _ if spread => pa == 1 || striped[ca],
                        _ => pa == pb && striped[ca],
                    };
            }
            striped[c] = pb == 1 || (!in_edges[head].is_empty() && all_striping);
        }

        // 4. Links, edge by edge (edges inside a chain are function calls).
        let mut links: Vec<LinkSpec> = Vec::new();
        for (ei, e) in edges.iter().enumerate() {
            let (ca, cb) = (chain_of[e.from].expect("planned"), chain_of[e.to].expect("planned"));
            if ca == cb {
                continue;
            }
            let (pa, pb) = (actor_of[ca].len(), actor_of[cb].len());
            let ordered = edge_ordered[ei];
            // Which producer instances feed which consumer instances, and how.
            let mut group_links: Vec<Vec<LinkId>> = vec![Vec::new(); pb]; // consumer instance -> links
            for (i, &a) in actor_of[ca].iter().enumerate() {
                let targets: Vec<usize> = match (&e.partitioning, pa, pb) {
                    (Partitioning::Hash(_) | Partitioning::Broadcast | Partitioning::RoundRobin, _, _) => {
                        (0..pb).collect()
                    }
                    (Partitioning::Forward, _, 1) => vec![0],
                    (Partitioning::Forward, x, y) if x == y => vec![i],
                    (Partitioning::Forward, _, _) => (0..pb).collect(),
                };
                let distribution = match (&e.partitioning, targets.len()) {
                    (_, 1) => Distribution::One,
                    (Partitioning::Hash(cols), _) => {
                        let schema = infos[e.to]
                            .input_schema
                            .clone()
                            .ok_or_else(|| Error::Internal("no input schema".into()))?;
                        let time = match &bodies[e.to] {
                            Some(NodeBody::Stage(f)) => f.create(0).event_time_column(),
                            _ => None,
                        };
                        let time = time.and_then(|c| schema.index_of(&c).ok());
                        Distribution::Hash(HashPartitioner::new(&schema, cols, targets.len())?, time)
                    }
                    (Partitioning::Broadcast, _) => Distribution::Broadcast,
                    _ => Distribution::RoundRobin,
                };
                let mut out_links = Vec::with_capacity(targets.len());
                for &t in &targets {
                    let b = actor_of[cb][t];
                    out_links.push(links.len());
                    group_links[t].push(links.len());
                    links.push(LinkSpec { from: a, to: b, mailbox: infos[e.to].mailbox });
                }
                let stride = if striped[ca] { (i as u64, pa as u64) } else { (0, 1) };
                actors[a].outputs[e.from_port].push(OutEdge {
                    distribution,
                    links: out_links,
                    ordered,
                    stride,
                });
            }
            let rank = topo.iter().position(|&n| n == e.from).unwrap_or(usize::MAX);
            let spread = spreads_round_robin(&e.partitioning, pa, pb) && striped[ca];
            for (t, group) in group_links.into_iter().enumerate() {
                // Point 3 of the module doc: consumer `t` of `pb` reads unit
                // `t + k*pb` of the stream from producer `(t + k*pb) % pa`.
                let (start, step) = if spread && group.len() == pa { (t % pa, pb % pa) } else { (0, 1) };
                actors[actor_of[cb][t]].inputs.push(InGroup { links: group, ordered, rank, start, step });
            }
        }
        for a in &mut actors {
            a.inputs.sort_by_key(|g| g.rank);
        }
        Ok(Plan { nodes: infos, actors, links })
    }
}

/// Whether an edge spreads units round robin over several consumer
/// instances (rather than forwarding instance to instance, or fanning in).
fn spreads_round_robin(partitioning: &Partitioning, pa: usize, pb: usize) -> bool {
    match partitioning {
        Partitioning::RoundRobin => pb > 1,
        Partitioning::Forward => pb > 1 && pa != pb,
        Partitioning::Hash(_) | Partitioning::Broadcast => false,
    }
}

fn out_ports(edges: &[crate::Edge], out: &[usize]) -> usize {
    out.iter().map(|&e| edges[e].from_port + 1).max().unwrap_or(0)
}
