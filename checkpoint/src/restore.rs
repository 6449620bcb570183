//! Which state of a snapshot goes to which node of the job being started.
//!
//! A pure function over the snapshot's metadata and the new job's nodes:
//! state is matched by each node's stable id ([`OperatorInfo::uid`]), never
//! by its position in the graph, so that a query changed around its
//! stateful operators (a filter or projection added downstream, another
//! sink) still finds its state. The same plan drives the restore, the
//! check before any data flows, and `EXPLAIN RESTORE`.

use std::fmt::Write as _;

use crate::metadata::{CheckpointMetadata, NodeRole, OperatorInfo};

/// What happens to one node of the new job.
#[derive(Debug, Clone, PartialEq)]
pub enum NodeRestore {
    /// It keeps no state: nothing to restore.
    Stateless,
    /// The snapshot has no node with its id: it starts empty.
    New,
    /// Its state comes from the snapshot's node `from`, written by
    /// `parallelism` subtasks (redistributed by key group when that differs).
    Restored {
        /// The node in the snapshot's graph.
        from: usize,
        /// Subtasks that wrote it.
        parallelism: usize,
    },
    /// The snapshot's node of the same id kept state of another shape.
    Incompatible {
        /// What changed, for the user.
        reason: String,
    },
}

/// The restore of a whole job.
#[derive(Debug, Clone, PartialEq)]
pub struct RestorePlan {
    /// Each node of the new job with its fate, in graph order.
    pub nodes: Vec<(OperatorInfo, NodeRestore)>,
    /// Nodes of the snapshot with state that no node of the new job claims.
    pub unclaimed: Vec<OperatorInfo>,
    /// Whether the snapshot's graph is the new job's, node for node, at the
    /// same parallelism: then it restores as it was written (in-flight data
    /// included).
    pub same_layout: bool,
}

/// Whether a node keeps state that a restore must carry over.
fn has_state(info: &OperatorInfo) -> bool {
    match info.role {
        NodeRole::Source => true,
        NodeRole::Operator => info.state.is_some(),
        // A sink's state is output pre-committed by the snapshot; it is
        // committed when the snapshot completes, so nothing is lost when a
        // new query drops the sink.
        NodeRole::Sink => false,
    }
}

/// Plans the restore of `snapshot` into a job whose nodes are `job`.
pub fn plan_restore(snapshot: &CheckpointMetadata, job: &[OperatorInfo]) -> RestorePlan {
    let mut nodes = Vec::with_capacity(job.len());
    for info in job {
        let old = snapshot
            .operators
            .iter()
            .find(|o| o.uid == info.uid)
            .or_else(|| legacy_sink(snapshot, job, info));
        let fate = match old {
            _ if !has_state(info) && info.role != NodeRole::Sink => NodeRestore::Stateless,
            None => NodeRestore::New,
            Some(old) => match incompatibility(old, info) {
                Some(reason) => NodeRestore::Incompatible { reason },
                None => NodeRestore::Restored {
                    from: old.node,
                    parallelism: old.parallelism,
                },
            },
        };
        nodes.push((info.clone(), fate));
    }
    let unclaimed = snapshot
        .operators
        .iter()
        .filter(|o| has_state(o) && !job.iter().any(|n| n.uid == o.uid))
        .cloned()
        .collect();
    let same_layout = snapshot.operators.len() == job.len()
        && snapshot
            .operators
            .iter()
            .zip(job)
            .all(|(o, n)| o.uid == n.uid && o.node == n.node && o.parallelism == n.parallelism);
    RestorePlan {
        nodes,
        unclaimed,
        same_layout,
    }
}

/// The sink of a snapshot written before sinks were named after their
/// table (`sink[<table>]`), when their uid was `sink[<description>]`: the
/// old sink with the same description that no node of the job claims.
fn legacy_sink<'a>(
    snapshot: &'a CheckpointMetadata,
    job: &[OperatorInfo],
    info: &OperatorInfo,
) -> Option<&'a OperatorInfo> {
    if info.role != NodeRole::Sink {
        return None;
    }
    let legacy = format!("sink[{}]", info.description);
    snapshot.operators.iter().find(|o| {
        o.role == NodeRole::Sink
            && o.uid.split('#').next() == Some(legacy.as_str())
            && !job.iter().any(|n| n.uid == o.uid)
    })
}

/// Why `new` cannot take the state `old` wrote, if it cannot.
fn incompatibility(old: &OperatorInfo, new: &OperatorInfo) -> Option<String> {
    let (Some(before), Some(after)) = (&old.state, &new.state) else {
        return None;
    };
    let mut changes = Vec::new();
    for (part, value) in after {
        match before.iter().find(|(p, _)| p == part) {
            Some((_, was)) if was != value => {
                changes.push(format!("{part} changed from [{was}] to [{value}]"))
            }
            None => changes.push(format!("{part} [{value}] is new")),
            _ => {}
        }
    }
    for (part, was) in before {
        if !after.iter().any(|(p, _)| p == part) {
            changes.push(format!("{part} [{was}] is gone"));
        }
    }
    (!changes.is_empty()).then(|| changes.join("; "))
}

impl RestorePlan {
    /// Checks the plan before the job starts. Incompatible state is an
    /// error naming the operator and what changed; unclaimed state is an
    /// error unless `ignore_unclaimed` (`execution.savepoint.ignore-unclaimed-state`),
    /// then a warning. Returns the warnings.
    pub fn check(&self, ignore_unclaimed: bool) -> Result<Vec<String>, String> {
        let incompatible: Vec<String> = self
            .nodes
            .iter()
            .filter_map(|(info, fate)| match fate {
                NodeRestore::Incompatible { reason } => Some(format!(
                    "operator '{}' cannot restore its state: {reason}",
                    info.uid
                )),
                _ => None,
            })
            .collect();
        if !incompatible.is_empty() {
            return Err(format!(
                "{}. Start the changed query without state, or keep the operator's keys and aggregates as they were.",
                incompatible.join("; ")
            ));
        }
        let unclaimed: Vec<String> = self
            .unclaimed
            .iter()
            .map(|o| format!("'{}'", o.uid))
            .collect();
        if unclaimed.is_empty() {
            return Ok(Vec::new());
        }
        let text = format!(
            "the snapshot has state for {} that no operator of this job claims",
            unclaimed.join(", ")
        );
        if ignore_unclaimed {
            Ok(vec![format!(
                "{text}; it is dropped (execution.savepoint.ignore-unclaimed-state = true)"
            )])
        } else {
            Err(format!(
                "{text}. Set 'execution.savepoint.ignore-unclaimed-state' = 'true' to drop it."
            ))
        }
    }

    /// A table of the plan, one line per node, for `EXPLAIN RESTORE`.
    pub fn explain(&self) -> String {
        let mut out = String::new();
        for (info, fate) in &self.nodes {
            let what = match fate {
                NodeRestore::Stateless => "stateless".to_string(),
                NodeRestore::New => match info.role {
                    NodeRole::Sink => "new sink: nothing to commit".to_string(),
                    _ => "NEW: no state in the snapshot, starts empty".to_string(),
                },
                NodeRestore::Restored { parallelism, .. } => match info.role {
                    NodeRole::Sink => "restored: commits what the snapshot pre-committed".into(),
                    _ if *parallelism != info.parallelism => format!(
                        "RESTORED, redistributed from parallelism {parallelism} to {}",
                        info.parallelism
                    ),
                    NodeRole::Source => "RESTORED: resumes from its position".into(),
                    NodeRole::Operator => "RESTORED".into(),
                },
                NodeRestore::Incompatible { reason } => format!("INCOMPATIBLE: {reason}"),
            };
            let _ = writeln!(out, "{}\n    {what}", info.uid);
        }
        for o in &self.unclaimed {
            let _ = writeln!(
                out,
                "{}\n    DROPPED: no operator of the statement claims it (an error unless execution.savepoint.ignore-unclaimed-state)",
                o.uid
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(node: usize, uid: &str, role: NodeRole, p: usize, keys: Option<&str>) -> OperatorInfo {
        OperatorInfo {
            node,
            uid: uid.into(),
            description: uid.into(),
            role,
            parallelism: p,
            state: keys.map(|k| vec![("keys".to_string(), k.to_string())]),
        }
    }

    fn snapshot(operators: Vec<OperatorInfo>) -> CheckpointMetadata {
        CheckpointMetadata {
            checkpoint_id: 1,
            job_id: "j".into(),
            job_name: "n".into(),
            graph: String::new(),
            trigger_time_ms: 0,
            duration_ms: 0,
            unaligned: false,
            alignment_ms: 0,
            is_final: false,
            state_bytes: 0,
            uploaded_bytes: 0,
            tasks: vec![],
            snapshot_type: Default::default(),
            max_parallelism: 128,
            operators,
        }
    }

    fn old_job() -> Vec<OperatorInfo> {
        vec![
            info(0, "source[bid]", NodeRole::Source, 1, None),
            info(1, "calc#0", NodeRole::Operator, 1, None),
            info(
                2,
                "WindowAggregate(source[bid])",
                NodeRole::Operator,
                1,
                Some("a"),
            ),
            info(3, "sink[x]", NodeRole::Sink, 1, None),
        ]
    }

    #[test]
    fn state_follows_ids_not_positions() {
        let old = snapshot(old_job());
        // A filter added after the aggregate shifts the sink, and the job
        // runs at parallelism 2.
        let new = vec![
            info(0, "source[bid]", NodeRole::Source, 2, None),
            info(1, "calc#0", NodeRole::Operator, 2, None),
            info(
                2,
                "WindowAggregate(source[bid])",
                NodeRole::Operator,
                2,
                Some("a"),
            ),
            info(3, "calc#1", NodeRole::Operator, 2, None),
            info(4, "sink[x]", NodeRole::Sink, 2, None),
        ];
        let plan = plan_restore(&old, &new);
        assert!(!plan.same_layout);
        assert_eq!(
            plan.nodes[2].1,
            NodeRestore::Restored {
                from: 2,
                parallelism: 1
            }
        );
        assert_eq!(plan.nodes[3].1, NodeRestore::Stateless);
        assert_eq!(
            plan.nodes[4].1,
            NodeRestore::Restored {
                from: 3,
                parallelism: 1
            }
        );
        assert!(plan.check(false).unwrap().is_empty());
        assert!(plan
            .explain()
            .contains("redistributed from parallelism 1 to 2"));
        assert!(plan_restore(&old, &old_job()).same_layout);
    }

    #[test]
    fn changed_keys_are_incompatible_and_named() {
        let old = snapshot(old_job());
        let mut new = old_job();
        new[2].state = Some(vec![("keys".into(), "a, b".into())]);
        let plan = plan_restore(&old, &new);
        let err = plan.check(true).unwrap_err();
        assert!(err.contains("WindowAggregate(source[bid])"), "{err}");
        assert!(err.contains("keys changed from [a] to [a, b]"), "{err}");
        assert!(plan.explain().contains("INCOMPATIBLE"));
    }

    #[test]
    fn unclaimed_state_is_an_error_unless_ignored() {
        let old = snapshot(old_job());
        let new = vec![
            info(0, "source[bid]", NodeRole::Source, 1, None),
            info(1, "sink[x]", NodeRole::Sink, 1, None),
        ];
        let plan = plan_restore(&old, &new);
        assert_eq!(plan.unclaimed.len(), 1);
        let err = plan.check(false).unwrap_err();
        assert!(err.contains("ignore-unclaimed-state"), "{err}");
        let warnings = plan.check(true).unwrap();
        assert!(warnings[0].contains("dropped"), "{warnings:?}");
        assert!(plan.explain().contains("DROPPED"));
    }
}
