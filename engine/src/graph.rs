//! The job graph: what the planner emits and the runtime starts.
//!
//! Nodes are sources, operators and sinks, each with a parallelism; edges say
//! how rows move between the subtasks of two nodes ([`Exchange`]).

use std::fmt;
use std::sync::Arc;

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::physical_expr::PhysicalExpr;

use crate::connectors::{SinkFactory, SourceSpec};
use crate::operators::OperatorFactory;

/// Index of a node in its [`JobGraph`].
pub type NodeId = usize;

/// How the rows of one node reach the subtasks of the next.
#[derive(Clone)]
pub enum Exchange {
    /// Subtask `i` sends to subtask `i` (round-robin when parallelisms differ).
    Forward,
    /// Rows are hashed on these key expressions into key groups, and key
    /// groups are assigned to subtasks by range.
    Hash(Vec<Arc<dyn PhysicalExpr>>),
    /// Every row goes to subtask 0 of the next node.
    Single,
}

impl fmt::Debug for Exchange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Exchange::Forward => write!(f, "FORWARD"),
            Exchange::Single => write!(f, "GLOBAL"),
            Exchange::Hash(keys) => {
                let keys: Vec<String> = keys.iter().map(|k| k.to_string()).collect();
                write!(f, "HASH[{}]", keys.join(", "))
            }
        }
    }
}

/// What a node does.
#[derive(Clone)]
pub enum NodeKind {
    /// Reads a connector.
    Source(Arc<SourceSpec>),
    /// Transforms batches.
    Operator(Arc<dyn OperatorFactory>),
    /// Writes to a connector.
    Sink(Arc<dyn SinkFactory>),
}

/// One node of the graph.
#[derive(Clone)]
pub struct Node {
    /// Its position in [`JobGraph::nodes`].
    pub id: NodeId,
    /// What it does.
    pub kind: NodeKind,
    /// Number of subtasks.
    pub parallelism: usize,
    /// Upstream nodes and how their rows arrive.
    pub inputs: Vec<(NodeId, Exchange)>,
    /// The schema of the batches this node emits.
    pub schema: SchemaRef,
    /// Whether the emitted stream is updating (carries change kinds).
    pub updating: bool,
}

impl Node {
    /// A one-line description, as `EXPLAIN` prints it.
    pub fn describe(&self) -> String {
        match &self.kind {
            NodeKind::Source(s) => s.describe(),
            NodeKind::Operator(o) => o.describe(),
            NodeKind::Sink(s) => s.describe(),
        }
    }
}

/// A dataflow of sources, operators and sinks.
#[derive(Clone, Default)]
pub struct JobGraph {
    /// The nodes, upstream before downstream.
    pub nodes: Vec<Node>,
}

impl JobGraph {
    /// Adds a node and returns its id.
    pub fn add(
        &mut self,
        kind: NodeKind,
        parallelism: usize,
        inputs: Vec<(NodeId, Exchange)>,
        schema: SchemaRef,
        updating: bool,
    ) -> NodeId {
        let id = self.nodes.len();
        self.nodes.push(Node {
            id,
            kind,
            parallelism,
            inputs,
            schema,
            updating,
        });
        id
    }

    /// Whether every source of the graph ends by itself.
    pub fn is_bounded(&self) -> bool {
        self.nodes.iter().all(|n| match &n.kind {
            NodeKind::Source(s) => s.connector.is_bounded(),
            _ => true,
        })
    }

    /// Each node with its stable id and state shape, as snapshots record
    /// them (see `weir_checkpoint::restore`).
    ///
    /// A node's id comes from what it does and what it reads, not from its
    /// place in the graph: a source is `source[<table>]`; an operator with
    /// keyed state is `<Kind>(<its inputs' lineage>)`, where the lineage of a
    /// stateless operator is that of its inputs; a sink is
    /// `sink[<connector>]`. So adding a filter or projection after an
    /// aggregate, or another sink, leaves the aggregate's id alone. Equal
    /// ids get `#1`, `#2`… in graph order.
    pub fn operator_infos(&self) -> Vec<weir_checkpoint::OperatorInfo> {
        use weir_checkpoint::NodeRole;
        let mut lineage: Vec<String> = Vec::with_capacity(self.nodes.len());
        let mut seen: std::collections::HashMap<String, usize> = Default::default();
        let mut out = Vec::with_capacity(self.nodes.len());
        for node in &self.nodes {
            let inputs = || {
                node.inputs
                    .iter()
                    .map(|(i, _)| lineage[*i].clone())
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            let (role, base, state) = match &node.kind {
                NodeKind::Source(s) => (NodeRole::Source, format!("source[{}]", s.table), None),
                NodeKind::Operator(o) => match o.state_signature() {
                    Some(sig) => {
                        let describe = o.describe();
                        let kind = describe.split('(').next().unwrap_or("Operator");
                        (
                            NodeRole::Operator,
                            format!("{kind}({})", inputs()),
                            Some(sig),
                        )
                    }
                    None => (NodeRole::Operator, format!("Calc({})", inputs()), None),
                },
                NodeKind::Sink(s) => (NodeRole::Sink, format!("sink[{}]", s.describe()), None),
            };
            let n = seen.entry(base.clone()).or_default();
            let uid = if *n == 0 {
                base.clone()
            } else {
                format!("{base}#{n}")
            };
            *n += 1;
            lineage.push(if state.is_some() || role == NodeRole::Source {
                uid.clone()
            } else {
                inputs()
            });
            out.push(weir_checkpoint::OperatorInfo {
                node: node.id,
                uid,
                description: node.describe(),
                role,
                parallelism: node.parallelism,
                state,
            });
        }
        out
    }

    /// The graph as `EXPLAIN` prints it: sinks at the top, each node with its
    /// parallelism, and each edge with its exchange.
    pub fn explain(&self) -> String {
        let mut out = String::new();
        let roots: Vec<&Node> = self
            .nodes
            .iter()
            .filter(|n| {
                !self
                    .nodes
                    .iter()
                    .any(|m| m.inputs.iter().any(|(i, _)| *i == n.id))
            })
            .collect();
        for root in roots {
            self.explain_node(root.id, 0, None, &mut out);
        }
        out
    }

    fn explain_node(&self, id: NodeId, depth: usize, via: Option<&Exchange>, out: &mut String) {
        let node = &self.nodes[id];
        let indent = "  ".repeat(depth);
        if let Some(ex) = via {
            out.push_str(&format!("{indent}+- {ex:?}\n"));
        }
        let changelog = if node.updating { ", changelog" } else { "" };
        out.push_str(&format!(
            "{indent}{} [parallelism={}{changelog}]\n",
            node.describe(),
            node.parallelism
        ));
        for (input, ex) in &node.inputs {
            self.explain_node(*input, depth + 1, Some(ex), out);
        }
    }
}
