//! `Pipeline::build`: resolve references, check the shape of the graph,
//! propagate schemas. Every error names the stage (and the column).

use std::collections::HashMap;
use std::sync::Arc;

use arrow_schema::{Field, Schema, SchemaRef};

use crate::builder::PendingNode;
use crate::graph::NodeBody;
use crate::{
    Edge, Error, Node, NodeId, ParallelismHint, Partitioning, Pipeline, PipelineGraph, Result, StageKind,
};

pub(crate) fn build(pipeline: Pipeline) -> Result<PipelineGraph> {
    let Pipeline { name, nodes: pending, .. } = pipeline;

    // 1. Ids are valid and unique.
    let mut index: HashMap<&str, NodeId> = HashMap::new();
    for (i, n) in pending.iter().enumerate() {
        if n.id.is_empty() || n.id.contains('.') {
            return Err(Error::InvalidStageId { stage: n.id.clone() });
        }
        if index.insert(n.id.as_str(), i).is_some() {
            return Err(Error::DuplicateStage { stage: n.id.clone() });
        }
    }

    // 2. Output ports, from a prototype of each stage; the kind must fit
    //    the body and its ports.
    let mut ports: Vec<Vec<String>> = Vec::with_capacity(pending.len());
    for n in &pending {
        let p = match &n.body {
            NodeBody::Source(_) => vec!["out".to_owned()],
            NodeBody::Sink(_) => Vec::new(),
            NodeBody::Stage(f) => f.create(0).output_ports(),
        };
        check_kind(n, &p)?;
        if let Some(b) = &n.batching {
            b.validate().map_err(|e| Error::InvalidStage {
                stage: n.id.clone(),
                message: format!("batching: {e}"),
            })?;
        }
        ports.push(p);
    }

    // 3. Resolve inputs into edges.
    let mut edges = Vec::new();
    for (to, n) in pending.iter().enumerate() {
        if n.inputs.is_empty() && n.kind != StageKind::Source {
            return Err(Error::UnconnectedPort {
                stage: n.id.clone(),
                port: "input".into(),
                hint: Some("a stage after a sink or a branch needs .from(\"stage\") or `inputs = [...]`"),
            });
        }
        let first_edge = edges.len();
        for input in &n.inputs {
            let unknown = |what: String| Error::UnknownInput { stage: n.id.clone(), input: what };
            let &from = index.get(input.stage.as_str()).ok_or_else(|| unknown(input.to_string()))?;
            let out_ports = &ports[from];
            let from_port = match &input.port {
                Some(p) => out_ports.iter().position(|q| q == p).ok_or_else(|| {
                    unknown(format!("{input} (`{}` has outputs: {})", input.stage, out_ports.join(", ")))
                })?,
                None if out_ports.len() == 1 => 0,
                None if out_ports.is_empty() => {
                    return Err(unknown(format!("{input} (a sink has no output)")));
                }
                None => {
                    let named: Vec<String> =
                        out_ports.iter().map(|p| format!("{}.{p}", input.stage)).collect();
                    return Err(unknown(format!("{input} (name one of its outputs: {})", named.join(", "))));
                }
            };
            // The same port twice would feed every batch twice.
            if edges[first_edge..].iter().any(|e: &Edge| e.from == from && e.from_port == from_port) {
                return Err(Error::InvalidStage {
                    stage: n.id.clone(),
                    message: format!("input `{input}` is listed twice"),
                });
            }
            edges.push(Edge {
                from,
                from_port,
                to,
                partitioning: Partitioning::Forward,
                ordering: n.ordering,
            });
        }
    }

    // 4. Every output port is read by someone.
    for (i, n) in pending.iter().enumerate() {
        for (p, port) in ports[i].iter().enumerate() {
            if !edges.iter().any(|e| e.from == i && e.from_port == p) {
                let port = if ports[i].len() == 1 { "output".to_owned() } else { format!("output `{port}`") };
                return Err(Error::UnconnectedPort {
                    stage: n.id.clone(),
                    port,
                    hint: Some("end every chain with a sink"),
                });
            }
        }
    }
    if !pending.iter().any(|n| n.kind == StageKind::Source) {
        return Err(Error::NoSource);
    }

    // 5. Topological order, or the cycle.
    let topo = topo_sort(&pending, &edges)?;

    // 6. Schemas, in topological order.
    let mut nodes: Vec<Option<Node>> = Vec::with_capacity(pending.len());
    let mut parts: Vec<Option<PendingNode>> = pending.into_iter().map(Some).collect();
    nodes.resize_with(parts.len(), || None);
    let mut out_schema: Vec<Option<SchemaRef>> = vec![None; parts.len()];
    for &i in &topo {
        let n = parts[i].take().ok_or_else(|| Error::Internal("node visited twice".into()))?;
        let mut input_schema: Option<SchemaRef> = None;
        for e in edges.iter().filter(|e| e.to == i) {
            let s = out_schema[e.from]
                .clone()
                .ok_or_else(|| Error::Internal("producer without schema".into()))?;
            input_schema = Some(match input_schema {
                None => s,
                Some(merged) => union_schema(&merged, &s).ok_or_else(|| Error::SchemaMismatch {
                    stage: n.id.clone(),
                    input: nodes_id(&nodes, &parts, e.from),
                    expected: schema_str(&merged),
                    found: schema_str(&s),
                })?,
            });
        }
        let mut key_columns = Vec::new();
        let output_schema = match &n.body {
            NodeBody::Source(s) => Some(s.schema()),
            NodeBody::Sink(_) => None,
            NodeBody::Stage(f) => {
                let input =
                    input_schema.as_ref().ok_or_else(|| Error::Internal("stage without input".into()))?;
                let proto = f.create(0);
                key_columns = proto.key_columns();
                Some(proto.output_schema(input).map_err(|e| e.in_stage(&n.id))?)
            }
        };
        out_schema[i] = output_schema.clone();
        let parallelism = match n.kind {
            StageKind::Source | StageKind::Sink => 1,
            _ => n.parallelism.unwrap_or(0),
        };
        nodes[i] = Some(Node {
            id: n.id,
            kind: n.kind,
            parallelism,
            hint: n.hint.unwrap_or(ParallelismHint::default_for(n.kind)),
            input_schema,
            output_schema,
            output_ports: ports[i].clone(),
            key_columns,
            mailbox: n.mailbox,
            batching: n.batching,
            body: n.body,
        });
    }
    let nodes: Vec<Node> =
        nodes.into_iter().map(|n| n.expect("every node is in the topological order")).collect();

    // 7. Keyed stages get hash partitioning on their input edges.
    for e in &mut edges {
        let to = &nodes[e.to];
        if to.kind == StageKind::Accumulator && !to.key_columns.is_empty() {
            e.partitioning = Partitioning::Hash(to.key_columns.clone());
        }
    }
    Ok(PipelineGraph { name, nodes, edges, topo })
}

/// A node's kind must fit its body (a source, a sink, or a stage factory)
/// and the stage's output ports.
fn check_kind(n: &PendingNode, ports: &[String]) -> Result<()> {
    let invalid = |message: String| Err(Error::InvalidStage { stage: n.id.clone(), message });
    let kind = n.kind.name();
    let (fits, body) = match &n.body {
        NodeBody::Source(_) => (n.kind == StageKind::Source, "a source"),
        NodeBody::Sink(_) => (n.kind == StageKind::Sink, "a sink"),
        NodeBody::Stage(_) => (!matches!(n.kind, StageKind::Source | StageKind::Sink), "a stage"),
    };
    if !fits {
        return invalid(format!(
            "kind `{kind}` does not fit {body}: add sources with .source, sinks with .sink, \
             and stages with .transform, .accumulate, .branch, .merge or .stage"
        ));
    }
    match n.kind {
        StageKind::Branch if ports.is_empty() => {
            invalid("a branch needs at least one output (a route or `otherwise`)".into())
        }
        StageKind::Transform | StageKind::Accumulator | StageKind::Merge if ports.len() != 1 => {
            invalid(format!(
                "a stage of kind `{kind}` has one output; this one has {} ({}): add it as a branch",
                ports.len(),
                ports.join(", ")
            ))
        }
        _ => Ok(()),
    }
}

/// The schema a stage with inputs of schemas `a` and `b` receives: the same
/// field names and types in the same order; a field is nullable if it is in
/// either, and carries the metadata of both (`a`'s value where they
/// disagree). `None` if names or types differ.
fn union_schema(a: &SchemaRef, b: &SchemaRef) -> Option<SchemaRef> {
    if a.fields() == b.fields() {
        return Some(a.clone());
    }
    if a.fields().len() != b.fields().len() {
        return None;
    }
    let fields = a
        .fields()
        .iter()
        .zip(b.fields())
        .map(|(x, y)| {
            if x.name() != y.name() || x.data_type() != y.data_type() {
                return None;
            }
            let mut metadata = y.metadata().clone();
            metadata.extend(x.metadata().iter().map(|(k, v)| (k.clone(), v.clone())));
            Some(x.as_ref().clone().with_nullable(x.is_nullable() || y.is_nullable()).with_metadata(metadata))
        })
        .collect::<Option<Vec<Field>>>()?;
    Some(Arc::new(Schema::new_with_metadata(fields, a.metadata().clone())))
}

fn nodes_id(nodes: &[Option<Node>], parts: &[Option<PendingNode>], i: NodeId) -> String {
    nodes[i]
        .as_ref()
        .map(|n| n.id.clone())
        .or_else(|| parts[i].as_ref().map(|p| p.id.clone()))
        .unwrap_or_default()
}

/// Whether batches of schema `b` may stand where `a` was resolved: the same
/// field names and types in the same order (nullability and metadata aside,
/// so the inputs of a merge agree).
pub(crate) fn same_columns(a: &SchemaRef, b: &SchemaRef) -> bool {
    let (x, y) = (a.fields(), b.fields());
    Arc::ptr_eq(a, b)
        || (x.len() == y.len()
            && x.iter().zip(y).all(|(f, g)| f.name() == g.name() && f.data_type() == g.data_type()))
}

pub(crate) fn schema_str(schema: &SchemaRef) -> String {
    let fields: Vec<String> = schema
        .fields()
        .iter()
        .map(|f| format!("{}: {}{}", f.name(), f.data_type(), if f.is_nullable() { "" } else { " not null" }))
        .collect();
    format!("[{}]", fields.join(", "))
}

/// Kahn's algorithm; on a cycle, walks one and reports its stages.
fn topo_sort(nodes: &[PendingNode], edges: &[Edge]) -> Result<Vec<NodeId>> {
    let n = nodes.len();
    let mut indeg = vec![0usize; n];
    for e in edges {
        indeg[e.to] += 1;
    }
    let mut ready: Vec<NodeId> = (0..n).rev().filter(|&i| indeg[i] == 0).collect();
    let mut order = Vec::with_capacity(n);
    while let Some(i) = ready.pop() {
        order.push(i);
        // Keep insertion order among ready nodes: deterministic and readable.
        let mut next: Vec<NodeId> = Vec::new();
        for e in edges.iter().filter(|e| e.from == i) {
            indeg[e.to] -= 1;
            if indeg[e.to] == 0 {
                next.push(e.to);
            }
        }
        next.sort_unstable_by(|a, b| b.cmp(a));
        ready.extend(next);
    }
    if order.len() == n {
        return Ok(order);
    }
    // Every remaining node has an input from another remaining node: follow
    // inputs backwards until one repeats.
    let mut at = (0..n).find(|&i| indeg[i] > 0).expect("a node on a cycle");
    let mut seen = vec![usize::MAX; n];
    let mut path = Vec::new();
    while seen[at] == usize::MAX {
        seen[at] = path.len();
        path.push(at);
        at = edges
            .iter()
            .find(|e| e.to == at && indeg[e.from] > 0)
            .map(|e| e.from)
            .expect("an input on the cycle");
    }
    let mut cycle: Vec<String> = path[seen[at]..].iter().rev().map(|&i| nodes[i].id.clone()).collect();
    cycle.push(cycle[0].clone());
    Err(Error::Cycle { stages: cycle })
}
