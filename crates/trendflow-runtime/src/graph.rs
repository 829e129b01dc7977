//! The shape of a pipeline: named nodes wired by their inputs, checked to be a DAG.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use trendflow_core::{DeadLetterSink, Operator, Sink, Source};

/// When a source polls its input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// A micro-batch every interval (Spark's `processingTime`); 0 means as fast as possible.
    ProcessingTime(Duration),
    /// Read everything available at start, in as many epochs as the source's limits allow,
    /// then stop (Spark's `availableNow`).
    AvailableNow,
}

/// How a source's epochs move event time beyond its data.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SourceOptions {
    /// A bounded input ends with a last epoch carrying the maximal watermark, which closes
    /// every window (off by default: Spark's `availableNow` leaves the last windows open).
    pub final_watermark: bool,
    /// While no data comes, close an empty epoch this often, so operators with an idle
    /// timeout can advance their watermark.
    pub heartbeat: Option<Duration>,
}

/// Builds a fresh operator; called once per parallel instance.
pub type OperatorFactory = Box<dyn Fn() -> Box<dyn Operator> + Send + Sync>;

pub enum NodeBody {
    Source {
        source: Box<dyn Source>,
        trigger: Trigger,
        options: SourceOptions,
    },
    Operator {
        factory: OperatorFactory,
        parallelism: usize,
    },
    Sink(Box<dyn Sink>),
}

pub struct NodeSpec {
    pub name: String,
    pub body: NodeBody,
    pub inputs: Vec<String>,
    /// Mailbox capacity, in batches.
    pub mailbox: usize,
}

/// A whole pipeline, ready to run.
pub struct PipelineGraph {
    pub name: String,
    pub nodes: Vec<NodeSpec>,
    pub dead_letters: Option<Box<dyn DeadLetterSink>>,
    pub metrics: trendflow_core::metrics::Metrics,
}

#[derive(Debug, thiserror::Error)]
pub enum GraphError {
    #[error("two components are named `{0}`")]
    DuplicateName(String),
    #[error("`{node}` takes input from `{input}`, which does not exist")]
    UnknownInput { node: String, input: String },
    #[error("`{0}` is a source and cannot have inputs")]
    SourceWithInputs(String),
    #[error("`{0}` has no inputs")]
    NoInputs(String),
    #[error("`{0}` feeds into nothing")]
    Dangling(String),
    #[error("the pipeline has a cycle through `{0}`")]
    Cycle(String),
    #[error("`{0}` is a sink and cannot feed other components")]
    SinkAsInput(String),
    #[error("the pipeline has no source")]
    NoSource,
}

impl PipelineGraph {
    /// Checks the wiring; returns node indexes in topological order (sources first).
    pub fn validate(&self) -> Result<Vec<usize>, Vec<GraphError>> {
        let mut errors = Vec::new();
        let mut index = HashMap::new();
        for (i, n) in self.nodes.iter().enumerate() {
            if index.insert(n.name.clone(), i).is_some() {
                errors.push(GraphError::DuplicateName(n.name.clone()));
            }
        }
        let mut used = HashSet::new();
        for n in &self.nodes {
            match n.body {
                NodeBody::Source { .. } if !n.inputs.is_empty() => {
                    errors.push(GraphError::SourceWithInputs(n.name.clone()))
                }
                NodeBody::Operator { .. } | NodeBody::Sink(_) if n.inputs.is_empty() => {
                    errors.push(GraphError::NoInputs(n.name.clone()))
                }
                _ => {}
            }
            for i in &n.inputs {
                match index.get(i) {
                    None => errors.push(GraphError::UnknownInput {
                        node: n.name.clone(),
                        input: i.clone(),
                    }),
                    Some(&j) => {
                        used.insert(j);
                        if matches!(self.nodes[j].body, NodeBody::Sink(_)) {
                            errors.push(GraphError::SinkAsInput(i.clone()));
                        }
                    }
                }
            }
        }
        if !self
            .nodes
            .iter()
            .any(|n| matches!(n.body, NodeBody::Source { .. }))
        {
            errors.push(GraphError::NoSource);
        }
        for (i, n) in self.nodes.iter().enumerate() {
            if !matches!(n.body, NodeBody::Sink(_)) && !used.contains(&i) {
                errors.push(GraphError::Dangling(n.name.clone()));
            }
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        // Kahn's algorithm
        let mut indegree: Vec<usize> = self.nodes.iter().map(|n| n.inputs.len()).collect();
        let mut order = Vec::new();
        let mut ready: Vec<usize> = (0..self.nodes.len())
            .filter(|&i| indegree[i] == 0)
            .collect();
        while let Some(i) = ready.pop() {
            order.push(i);
            for (j, n) in self.nodes.iter().enumerate() {
                for inp in &n.inputs {
                    if index[inp] == i {
                        indegree[j] -= 1;
                        if indegree[j] == 0 {
                            ready.push(j);
                        }
                    }
                }
            }
        }
        if order.len() != self.nodes.len() {
            let stuck = (0..self.nodes.len()).find(|i| !order.contains(i)).unwrap();
            return Err(vec![GraphError::Cycle(self.nodes[stuck].name.clone())]);
        }
        Ok(order)
    }
}
