//! The flow run graph: task runs (or the subflows they stand for) and their dependencies.

use std::collections::{HashMap, HashSet};

use prefect_domain::filters::{ArtifactFilter, FlowFilter, FlowRunFilter, IdFilter, NullableIdFilter, RunFilters, StringFilter};
use prefect_domain::graph::{Edge, Graph, GraphArtifact, GraphState, Node};
use prefect_domain::sorts::{ArtifactCollectionSort, ArtifactSort, FlowRunSort, FlowSort};
use prefect_domain::state::StateType;
use prefect_domain::time::{self, DateTime};
use prefect_storage::{artifacts, flow_runs, flows, task_runs};
use uuid::Uuid;

use crate::{Core, Error, Result};

impl Core {
    /// The graph of a flow run's task runs and subflows with an end time at or after `since`.
    pub async fn flow_run_graph(&self, flow_run_id: Uuid, since: Option<DateTime>) -> Result<Graph> {
        let now = time::now();
        let reader = self.db().reader();
        let backend = self.db().backend();
        let run = flow_runs::read(reader, flow_run_id, now).await?.ok_or_else(|| Error::not_found("Flow run not found"))?;
        let tasks = task_runs::of_flow_run(reader, flow_run_id, now).await?;

        let task_ids: Vec<Uuid> = tasks.iter().map(|t| t.id).collect();
        let subflows = if task_ids.is_empty() {
            Vec::new()
        } else {
            let filters = RunFilters {
                flow_runs: Some(FlowRunFilter {
                    parent_task_run_id: Some(NullableIdFilter { any_: Some(task_ids.clone()), ..Default::default() }),
                    ..Default::default()
                }),
                ..Default::default()
            };
            flow_runs::filter(reader, backend, &filters, FlowRunSort::IdDesc, task_ids.len() as u64 * 2 + 1, 0, now).await?
        };
        let flow_ids: Vec<Uuid> = subflows.iter().map(|r| r.flow_id).collect::<HashSet<_>>().into_iter().collect();
        let flow_names: HashMap<Uuid, String> = if flow_ids.is_empty() {
            HashMap::new()
        } else {
            let filters = RunFilters {
                flows: Some(FlowFilter { id: Some(IdFilter { any_: Some(flow_ids.clone()), not_any_: None }), ..Default::default() }),
                ..Default::default()
            };
            flows::filter(reader, backend, &filters, FlowSort::NameAsc, flow_ids.len() as u64, 0).await?.into_iter().map(|f| (f.id, f.name)).collect()
        };
        let subflow_of: HashMap<Uuid, _> = subflows.into_iter().filter_map(|r| r.parent_task_run_id.map(|p| (p, r))).collect();

        struct Draft {
            node: Node,
            inputs: Vec<(bool, Uuid)>,
        }
        let mut drafts: Vec<Draft> = Vec::new();
        for task in &tasks {
            let node = match subflow_of.get(&task.id) {
                Some(sub) => Node {
                    kind: "flow-run".to_owned(),
                    id: sub.id,
                    label: format!("{} / {}", flow_names.get(&sub.flow_id).map_or("", String::as_str), sub.name),
                    state_type: sub.state_type,
                    start_time: match sub.start_time.or(sub.expected_start_time) {
                        Some(t) => t,
                        None => continue,
                    },
                    end_time: sub.end_time,
                    parents: vec![],
                    children: vec![],
                    encapsulating: vec![],
                    artifacts: vec![],
                },
                None => Node {
                    kind: "task-run".to_owned(),
                    id: task.id,
                    label: task.name.clone(),
                    state_type: task.state_type,
                    start_time: match task.start_time.or(task.expected_start_time) {
                        Some(t) => t,
                        None => continue,
                    },
                    end_time: task.end_time.or(if task.state_type == Some(StateType::Completed) { task.expected_start_time } else { None }),
                    parents: vec![],
                    children: vec![],
                    encapsulating: vec![],
                    artifacts: vec![],
                },
            };
            let mut inputs = Vec::new();
            for (key, args) in &task.task_inputs {
                for arg in args.as_array().into_iter().flatten() {
                    if let Some(id) = arg.get("id").and_then(|v| v.as_str()).and_then(|s| Uuid::parse_str(s).ok()) {
                        inputs.push((key == "__parents__", id));
                    }
                }
            }
            drafts.push(Draft { node, inputs });
        }

        let present: HashSet<Uuid> = drafts.iter().map(|d| d.node.id).collect();
        let mut children: HashMap<Uuid, Vec<Uuid>> = HashMap::new();
        for draft in &mut drafts {
            let mut seen = HashSet::new();
            for (encapsulating, parent) in draft.inputs.clone() {
                if !present.contains(&parent) || !seen.insert((encapsulating, parent)) {
                    continue;
                }
                if encapsulating {
                    draft.node.encapsulating.push(Edge { id: parent });
                } else {
                    draft.node.parents.push(Edge { id: parent });
                    children.entry(parent).or_default().push(draft.node.id);
                }
            }
        }

        let (mut by_task, top_level) = self.graph_artifacts(flow_run_id).await?;
        let mut nodes: Vec<Node> = drafts
            .into_iter()
            .map(|mut d| {
                d.node.children = children.remove(&d.node.id).unwrap_or_default().into_iter().map(|id| Edge { id }).collect();
                d.node.artifacts = by_task.remove(&d.node.id).unwrap_or_default();
                d.node
            })
            .filter(|n| match (since, n.end_time) {
                (Some(since), Some(end)) => end >= since,
                _ => true,
            })
            .collect();
        nodes.sort_by(|a, b| a.start_time.cmp(&b.start_time).then(a.end_time.cmp(&b.end_time)));
        let max_nodes = self.settings().max_flow_run_graph_nodes;
        if nodes.len() > max_nodes {
            return Err(Error::BadRequest(format!("The graph of flow run {flow_run_id} has more than {max_nodes} nodes.")));
        }
        let root_node_ids = nodes.iter().filter(|n| n.parents.is_empty()).map(|n| n.id).collect();
        let states = flow_runs::states_of(reader, flow_run_id)
            .await?
            .into_iter()
            .map(|s| GraphState { id: s.id, timestamp: s.timestamp, state_type: s.state_type, name: s.name().to_owned() })
            .collect();
        Ok(Graph {
            start_time: run.start_time.or(run.expected_start_time),
            end_time: run.end_time,
            root_node_ids,
            nodes: nodes.into_iter().map(|n| (n.id, n)).collect(),
            artifacts: top_level,
            states,
        })
    }

    /// Non-result artifacts of a flow run, grouped by task run (and those of the flow run itself).
    async fn graph_artifacts(&self, flow_run_id: Uuid) -> Result<(HashMap<Uuid, Vec<GraphArtifact>>, Vec<GraphArtifact>)> {
        let reader = self.db().reader();
        let backend = self.db().backend();
        let filter = ArtifactFilter {
            flow_run_id: Some(IdFilter { any_: Some(vec![flow_run_id]), not_any_: None }),
            kind: Some(StringFilter { not_any_: Some(vec!["result".to_owned()]), ..Default::default() }),
            ..Default::default()
        };
        let limit = self.settings().max_flow_run_graph_artifacts as u64;
        let mut found = artifacts::filter(reader, backend, Some(&filter), &RunFilters::default(), ArtifactSort::IdDesc, limit, 0).await?;
        found.sort_by_key(|a| a.created);
        let keys: Vec<String> = found.iter().filter_map(|a| a.key.clone()).collect();
        let latest: HashSet<Uuid> = if keys.is_empty() {
            HashSet::new()
        } else {
            let filter =
                ArtifactFilter { key: Some(prefect_domain::filters::ArtifactKeyFilter { any_: Some(keys), ..Default::default() }), ..Default::default() };
            artifacts::filter_latest(reader, backend, Some(&filter), &RunFilters::default(), ArtifactCollectionSort::IdDesc, limit, 0)
                .await?
                .into_iter()
                .map(|c| c.latest_id)
                .collect()
        };
        let mut by_task: HashMap<Uuid, Vec<GraphArtifact>> = HashMap::new();
        let mut top_level = Vec::new();
        for a in found {
            let graph_artifact = GraphArtifact {
                id: a.id,
                created: a.created,
                is_latest: a.key.is_none() || latest.contains(&a.id),
                data: if a.kind.as_deref() == Some("progress") { a.data.clone() } else { None },
                key: a.key,
                kind: a.kind,
            };
            match a.task_run_id {
                Some(task) => by_task.entry(task).or_default().push(graph_artifact),
                None => top_level.push(graph_artifact),
            }
        }
        Ok((by_task, top_level))
    }
}
