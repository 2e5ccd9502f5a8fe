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

fn node_label(kind: StageKind, id: &str, notes: &[String]) -> String {
    let mut label = format!("{id}<br/><i>{}</i>", kind.name());
    for note in notes {
        label.push_str("<br/>");
        label.push_str(note);
    }
    label
}

impl PipelineGraph {
    /// [`to_mermaid`](Self::to_mermaid) with lines of text under each
    /// stage's id and kind: `notes(stage_id)` (e.g. a run's figures; no
    /// lines, no change).
    pub fn to_mermaid_annotated(&self, notes: impl Fn(&str) -> Vec<String>) -> String {
        mermaid_with(self, &notes)
    }

    /// [`to_dot`](Self::to_dot) with lines of text under each stage's id
    /// and kind, as [`to_mermaid_annotated`](Self::to_mermaid_annotated).
    pub fn to_dot_annotated(&self, notes: impl Fn(&str) -> Vec<String>) -> String {
        dot_with(self, &notes)
    }
}

/// A Mermaid flowchart.
pub(crate) fn mermaid(graph: &PipelineGraph) -> String {
    mermaid_with(graph, &|_| Vec::new())
}

/// A Mermaid flowchart, `notes` under each stage's kind.
fn mermaid_with(graph: &PipelineGraph, notes: &dyn Fn(&str) -> Vec<String>) -> String {
    let mut s = String::from("flowchart LR\n");
    for (i, n) in graph.nodes.iter().enumerate() {
        let label = node_label(n.kind, &n.id, &notes(&n.id)).replace('"', "'");
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
    dot_with(graph, &|_| Vec::new())
}

/// A Graphviz digraph, `notes` under each stage's kind.
fn dot_with(graph: &PipelineGraph, notes: &dyn Fn(&str) -> Vec<String>) -> String {
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
        let extra: String = notes(&n.id).iter().map(|note| format!("\\n{}", escape(note))).collect();
        let _ =
            writeln!(s, "  n{i} [label=\"{}\\n({}){extra}\", shape={shape}];", escape(&n.id), n.kind.name());
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
