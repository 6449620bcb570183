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
    /// The node's id in snapshots, from its place in the plan (see
    /// [`JobGraph::operator_infos`]); the planner names sinks after their
    /// table with [`JobGraph::set_uid`].
    pub uid: String,
    /// What a stateful node downstream names this one by: its uid when it
    /// keeps state or reads a table, else its inputs' lineage.
    lineage: String,
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
        let lineage = || {
            inputs
                .iter()
                .filter_map(|(i, _)| self.nodes.get(*i).map(|n| n.lineage.clone()))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let (uid, lineage) = match &kind {
            NodeKind::Source(s) => {
                let uid = format!("source[{}]", s.table);
                (uid.clone(), uid)
            }
            NodeKind::Operator(o) => {
                let uid = format!("{}({})", o.kind(), lineage());
                if o.is_stateful() {
                    (uid.clone(), uid)
                } else {
                    (uid, lineage())
                }
            }
            NodeKind::Sink(_) => ("sink".to_string(), lineage()),
        };
        self.nodes.push(Node {
            id,
            kind,
            parallelism,
            inputs,
            schema,
            updating,
            uid,
            lineage,
        });
        id
    }

    /// Gives `node` an explicit uid (the planner names sinks after their
    /// table: `sink[<table>]`).
    pub fn set_uid(&mut self, node: NodeId, uid: impl Into<String>) {
        if let Some(n) = self.nodes.get_mut(node) {
            n.uid = uid.into();
        }
    }

    /// Whether every source of the graph ends by itself.
    pub fn is_bounded(&self) -> bool {
        self.nodes.iter().all(|n| match &n.kind {
            NodeKind::Source(s) => s.connector.is_bounded(),
            _ => true,
        })
    }

    /// Whether every source that `node` reads from (directly or through
    /// other nodes) ends by itself.
    pub fn is_bounded_from(&self, node: NodeId) -> bool {
        let mut seen = vec![false; self.nodes.len()];
        let mut todo = vec![node];
        while let Some(id) = todo.pop() {
            let Some(n) = self.nodes.get(id) else {
                continue;
            };
            if std::mem::replace(&mut seen[id], true) {
                continue;
            }
            if let NodeKind::Source(s) = &n.kind {
                if !s.connector.is_bounded() {
                    return false;
                }
            }
            todo.extend(n.inputs.iter().map(|(i, _)| *i));
        }
        true
    }

    /// Each node with its stable id and state shape, as snapshots record
    /// them (see `weir_checkpoint::restore`).
    ///
    /// A node's id comes from what it does and what it reads, never from
    /// its `EXPLAIN` text: a source is `source[<table>]`; an operator is
    /// `<kind>(<its inputs' lineage>)` with the stable
    /// [`crate::operators::OperatorFactory::kind`], where the lineage of a
    /// stateless operator is that of its inputs; a sink is
    /// `sink[<table>]`. So adding a filter or projection after an
    /// aggregate, another sink, or rewording a label leaves the aggregate's
    /// id alone. Equal ids get `#1`, `#2`… in graph order.
    pub fn operator_infos(&self) -> Vec<weir_checkpoint::OperatorInfo> {
        use weir_checkpoint::NodeRole;
        let mut seen: std::collections::HashMap<&str, usize> = Default::default();
        let mut out = Vec::with_capacity(self.nodes.len());
        for node in &self.nodes {
            let (role, state) = match &node.kind {
                NodeKind::Source(_) => (NodeRole::Source, None),
                NodeKind::Operator(o) => (NodeRole::Operator, o.state_signature()),
                NodeKind::Sink(_) => (NodeRole::Sink, None),
            };
            let n = seen.entry(node.uid.as_str()).or_default();
            let uid = if *n == 0 {
                node.uid.clone()
            } else {
                format!("{}#{n}", node.uid)
            };
            *n += 1;
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

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use datafusion::arrow::datatypes::{DataType, Field, Schema};

    use super::*;
    use crate::operators::{Operator, OperatorFactory, TaskContext};

    /// A stateful operator whose `EXPLAIN` label is free text.
    struct Labelled(&'static str);

    impl OperatorFactory for Labelled {
        fn create(&self, _ctx: &TaskContext) -> crate::Result<Box<dyn Operator>> {
            Err(crate::EngineError::Internal("not run".into()))
        }
        fn describe(&self) -> String {
            self.0.to_string()
        }
        fn kind(&self) -> &'static str {
            "TestAggregate"
        }
        fn is_stateful(&self) -> bool {
            true
        }
    }

    fn graph(label: &'static str, with_filter: bool) -> JobGraph {
        let schema = Arc::new(Schema::new(vec![Field::new("x", DataType::Int64, false)]));
        let calc = || {
            NodeKind::Operator(Arc::new(crate::operators::calc::CalcSpec {
                filter: None,
                projection: None,
                output_schema: schema.clone(),
            }))
        };
        let mut g = JobGraph::default();
        let mut last = g.add(calc(), 1, vec![], schema.clone(), false);
        if with_filter {
            last = g.add(
                calc(),
                1,
                vec![(last, Exchange::Forward)],
                schema.clone(),
                false,
            );
        }
        let agg = g.add(
            NodeKind::Operator(Arc::new(Labelled(label))),
            1,
            vec![(last, Exchange::Forward)],
            schema.clone(),
            false,
        );
        let _second = g.add(
            NodeKind::Operator(Arc::new(Labelled(label))),
            1,
            vec![(agg, Exchange::Forward)],
            schema,
            false,
        );
        g
    }

    #[test]
    fn uids_do_not_depend_on_explain_labels_or_stateless_nodes() {
        let uids = |g: &JobGraph| -> Vec<String> {
            g.operator_infos()
                .into_iter()
                .filter(|i| i.uid.starts_with("TestAggregate"))
                .map(|i| i.uid)
                .collect()
        };
        let before = uids(&graph("GroupAggregate(groupBy=[k])", false));
        let after = uids(&graph("Aggregated by key: k (reworded)", true));
        assert_eq!(before, after);
        assert_eq!(before.len(), 2);
        assert_ne!(before[0], before[1], "{before:?}");
    }
}
