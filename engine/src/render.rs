//! Pictures of a graph: Mermaid and Graphviz dot.

use std::fmt::Write;

use crate::{Partitioning, PipelineGraph, StageKind};

fn edge_label(graph: &PipelineGraph, e: &crate::Edge) -> String {
    let from = &graph.nodes[e.from];
    let mut parts = Vec::new();
    if from.output_ports.len() > 1 {
        parts.push(from.output_ports[e.from_port].clone());
    }
    match &e.partitioning {
        Partitioning::Forward => {}
        Partitioning::RoundRobin => parts.push("round-robin".into()),
        Partitioning::Hash(cols) => parts.push(format!("hash({})", cols.join(", "))),
        Partitioning::Broadcast => parts.push("broadcast".into()),
    }
    parts.join(" ")
}

fn node_label(kind: StageKind, id: &str) -> String {
    format!("{id}<br/><i>{}</i>", kind.name())
}

/// A Mermaid flowchart.
pub(crate) fn mermaid(graph: &PipelineGraph) -> String {
    let mut s = String::from("flowchart LR\n");
    for (i, n) in graph.nodes.iter().enumerate() {
        let label = node_label(n.kind, &n.id).replace('"', "'");
        let (open, close) = match n.kind {
            StageKind::Source => ("[(", ")]"),
            StageKind::Sink => ("[/", "/]"),
            StageKind::Accumulator => ("[[", "]]"),
            StageKind::Branch => ("{", "}"),
            StageKind::Merge => ("((", "))"),
            StageKind::Transform => ("[", "]"),
        };
        let _ = writeln!(s, "  n{i}{open}\"{label}\"{close}");
    }
    for e in &graph.edges {
        let label = edge_label(graph, e);
        if label.is_empty() {
            let _ = writeln!(s, "  n{} --> n{}", e.from, e.to);
        } else {
            let _ = writeln!(s, "  n{} -->|\"{}\"| n{}", e.from, label.replace('"', "'"), e.to);
        }
    }
    s
}

/// A Graphviz digraph.
pub(crate) fn dot(graph: &PipelineGraph) -> String {
    let mut s =
        format!("digraph \"{}\" {{\n  rankdir=LR;\n  node [fontname=\"Helvetica\"];\n", escape(&graph.name));
    for (i, n) in graph.nodes.iter().enumerate() {
        let shape = match n.kind {
            StageKind::Source => "cylinder",
            StageKind::Sink => "folder",
            StageKind::Accumulator => "box3d",
            StageKind::Branch => "diamond",
            StageKind::Merge => "circle",
            StageKind::Transform => "box",
        };
        let _ = writeln!(s, "  n{i} [label=\"{}\\n({})\", shape={shape}];", escape(&n.id), n.kind.name());
    }
    for e in &graph.edges {
        let _ = writeln!(s, "  n{} -> n{} [label=\"{}\"];", e.from, e.to, escape(&edge_label(graph, e)));
    }
    s.push_str("}\n");
    s
}

fn escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}
