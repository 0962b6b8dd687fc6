//! [`Graph`] (docs/design.md §6): a DAG of tasks that is itself a task in the log.
//!
//! Nodes are tasks (any `Fn(A) -> impl Future<Output = flux::Result<B>>`, so a `#[flux::task]`
//! function), edges say whose output feeds whom, optionally under a condition on that output.
//! Inside a workflow, running the graph records a task named after the graph whose
//! `TASK_STARTED` and `TASK_COMPLETED` wrap the events of the nodes that ran. Values pass between
//! nodes as MessagePack (see [`crate::value`]), so nodes of different types can be joined: here
//! `total` takes the pair of its two upstream outputs, which run concurrently.
//!
//! ```
//! use flux::prelude::*;
//! use flux::Graph;
//!
//! #[flux::task]
//! async fn lines(text: String) -> Vec<String> {
//!     text.lines().map(str::to_string).collect()
//! }
//!
//! #[flux::task]
//! async fn count(lines: Vec<String>) -> usize {
//!     lines.len()
//! }
//!
//! #[flux::task]
//! async fn longest(lines: Vec<String>) -> String {
//!     lines.into_iter().max_by_key(String::len).unwrap_or_default()
//! }
//!
//! #[flux::task]
//! async fn total(parts: (usize, String)) -> String {
//!     format!("{} lines, the longest is {:?}", parts.0, parts.1)
//! }
//!
//! #[flux::workflow]
//! async fn report(ctx: ExecutionContext<String>) -> flux::Result<String> {
//!     let graph = Graph::new("report")
//!         .add_node("lines", lines)
//!         .add_node("count", count)
//!         .add_node("longest", longest)
//!         .add_node("total", total)
//!         .add_edge("lines", "count")
//!         .add_edge("lines", "longest")
//!         .add_edge("count", "total")
//!         .add_edge("longest", "total")
//!         .start_with("lines")
//!         .end_with("total")
//!         .validate()?;
//!     graph.run(ctx.input().clone()).await
//! }
//! ```

use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::sync::Arc;

use futures::FutureExt as _;
use futures::StreamExt as _;
use futures::stream::FuturesUnordered;

mod error;
mod plan;

pub use error::GraphError;
use plan::Plan;

use crate::compose::composite;
use crate::error::{Error, ErrorKind, Result};
use crate::task::{Args, BoxFuture, codec};
use crate::value::{self, Storable};

/// A node's task, type-erased: decodes its input, makes the call, encodes the output.
type NodeFn = Arc<dyn Fn(&[u8]) -> Result<BoxFuture<Result<Vec<u8>>>> + Send + Sync>;

/// An edge's condition, type-erased: decodes the upstream output and tests it.
type CondFn = Arc<dyn Fn(&[u8]) -> Result<bool> + Send + Sync>;

#[derive(Clone)]
struct Node {
    name: String,
    call: NodeFn,
}

#[derive(Clone)]
struct Edge {
    from: String,
    to: String,
    cond: Option<CondFn>,
}

impl Edge {
    fn label(&self) -> String {
        format!("`{}` -> `{}`", self.from, self.to)
    }
}

#[derive(Clone)]
struct Inner {
    name: String,
    nodes: Vec<Node>,
    edges: Vec<Edge>,
    start: Option<String>,
    ends: Vec<String>,
}

/// A directed acyclic graph of tasks, run as one task: `flux::Graph`.
///
/// Build it with [`Graph::new`], [`add_node`](Graph::add_node), [`add_edge`](Graph::add_edge) /
/// [`add_edge_if`](Graph::add_edge_if), [`start_with`](Graph::start_with) and
/// [`end_with`](Graph::end_with); check it with [`validate`](Graph::validate); run it inside a
/// workflow with [`run`](Graph::run), where it is a task named after the graph wrapping the
/// events of its nodes.
///
/// ```no_run
/// use flux::prelude::*;
/// use flux::Graph;
///
/// #[flux::task]
/// async fn get_name(id: u32) -> String {
///     if id == 1 { "Joe".to_string() } else { format!("user {id}") }
/// }
///
/// #[flux::task]
/// async fn say_hello(name: String) -> String {
///     format!("Hello, {name}")
/// }
///
/// #[flux::task]
/// async fn shout(name: String) -> String {
///     format!("HELLO, {}!", name.to_uppercase())
/// }
///
/// #[flux::workflow]
/// async fn greet(ctx: ExecutionContext<u32>) -> flux::Result<String> {
///     let graph = Graph::new("greeting")
///         .add_node("get_name", get_name)
///         .add_node("say_hello", say_hello)
///         .add_node("shout", shout)
///         .add_edge_if("get_name", "say_hello", |name: &String| name.len() <= 3)
///         .add_edge_if("get_name", "shout", |name: &String| name.len() > 3)
///         .start_with("get_name")
///         .end_with("say_hello")
///         .end_with("shout")
///         .validate()?;
///     graph.run(*ctx.input()).await
/// }
///
/// #[tokio::main]
/// async fn main() -> flux::Result<()> {
///     let execution = greet.run(1).await?;
///     assert_eq!(execution.output().map(String::as_str), Some("Hello, Joe"));
///     // WORKFLOW_STARTED, TASK_STARTED greeting, TASK_STARTED get_name, TASK_COMPLETED get_name,
///     // TASK_STARTED say_hello, TASK_COMPLETED say_hello, TASK_COMPLETED greeting,
///     // WORKFLOW_COMPLETED; `shout` never starts.
///     Ok(())
/// }
/// ```
///
/// How a graph runs:
///
/// - The start node receives the graph's input.
/// - A node runs once every upstream node is decided (ran or was skipped) and at least one of its
///   incoming edges is active: its upstream ran and the edge's condition (if any) holds for that
///   upstream's output. Its input is the output of that upstream; when several incoming edges are
///   active, it is the array of their outputs in the order the edges were added, so the node can
///   take a tuple or a `Vec`.
/// - A node whose incoming edges are all inactive is skipped, and so are the nodes fed only by
///   skipped nodes.
/// - Nodes that become ready together run concurrently; their calls are made in the order the
///   nodes were added, so their task ids are the same in every run.
/// - The first node that fails fails the graph (the nodes still running are dropped).
/// - The graph's output is the output of the end node that ran (the first one given to
///   [`Graph::end_with`] if several ran); when every end node was skipped, the graph fails with
///   [`ErrorKind::InvalidState`].
///
/// Values pass between nodes as MessagePack (see [`crate::value`]), so adjacent nodes need not
/// share a Rust type, only a compatible encoding; a value that does not fit is an
/// [`ErrorKind::Decode`] error naming the node (or edge, or graph) and the expected type.
///
/// A `Graph` is cheap to clone (its parts are shared) and `Send + Sync`, so it can be built once
/// (in a `static` `LazyLock`, say) and run by many executions. [`validate`](Graph::validate)
/// rejects what cannot run:
///
/// ```
/// use flux::{Graph, GraphError};
///
/// #[flux::task]
/// async fn inc(x: u32) -> u32 {
///     x + 1
/// }
///
/// let looping = Graph::new("looping")
///     .add_node("a", inc)
///     .add_node("b", inc)
///     .add_edge("a", "b")
///     .add_edge("b", "a")
///     .start_with("a")
///     .end_with("b");
/// let err = looping.validate().unwrap_err();
/// assert!(matches!(&err, GraphError::Cycle { path, .. } if path == &["a", "b", "a"]));
/// assert_eq!(err.to_string(), "graph `looping` has a cycle: `a` -> `b` -> `a`");
/// ```
#[derive(Clone)]
#[must_use = "a graph does nothing until it is run"]
pub struct Graph {
    inner: Arc<Inner>,
}

/// Where a node stands during a run.
enum NodeState {
    Pending,
    Running,
    Ran(Vec<u8>),
    Skipped,
}

impl Graph {
    /// An empty graph named `name`; inside a workflow it runs as a task of that name.
    pub fn new(name: impl Into<String>) -> Self {
        Graph {
            inner: Arc::new(Inner {
                name: name.into(),
                nodes: Vec::new(),
                edges: Vec::new(),
                start: None,
                ends: Vec::new(),
            }),
        }
    }

    /// The graph's name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    fn edit(mut self, f: impl FnOnce(&mut Inner)) -> Self {
        f(Arc::make_mut(&mut self.inner));
        self
    }

    /// Adds the node `name`, which runs `task`: a `#[flux::task]` function or any
    /// `Fn(A) -> impl Future<Output = flux::Result<B>>`.
    ///
    /// Its input (the graph's input for the start node, else the output of its upstream nodes)
    /// is decoded into `A`; a value that does not fit fails the graph with a `Decode` error
    /// naming the node and `A`. Adding two nodes of the same name is rejected by
    /// [`validate`](Graph::validate).
    pub fn add_node<A, B, F, Fut>(self, name: impl Into<String>, task: F) -> Self
    where
        F: Fn(A) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<B>> + Send + 'static,
        A: Storable + Send + 'static,
        B: Storable + Send + 'static,
    {
        let name = name.into();
        let node: Arc<str> = Arc::from(name.as_str());
        let graph: Arc<str> = Arc::from(self.inner.name.as_str());
        let call: NodeFn = Arc::new(move |input: &[u8]| {
            let arg: A = rmp_serde::from_slice(input).map_err(|e| {
                Error::new(
                    ErrorKind::Decode,
                    format!(
                        "the input of node `{node}` of graph `{graph}` does not fit `{}`",
                        std::any::type_name::<A>()
                    ),
                )
                .with_cause(e.to_string())
            })?;
            let call = task(arg);
            let (node, graph) = (node.clone(), graph.clone());
            Ok(Box::pin(async move {
                let output = call.await?;
                value::to_msgpack(&output).map_err(|e| {
                    Error::new(
                        ErrorKind::Encode,
                        format!("the output of node `{node}` of graph `{graph}` cannot be encoded"),
                    )
                    .with_cause(e.to_string())
                })
            }) as BoxFuture<Result<Vec<u8>>>)
        });
        self.edit(|inner| inner.nodes.push(Node { name, call }))
    }

    /// Adds an edge: the output of `from` feeds `to`.
    pub fn add_edge(self, from: impl Into<String>, to: impl Into<String>) -> Self {
        let edge = Edge { from: from.into(), to: to.into(), cond: None };
        self.edit(|inner| inner.edges.push(edge))
    }

    /// Adds an edge that is active only when `cond` holds for the output of `from` (decoded into
    /// `T`, so the closure's parameter type must be written: `|n: &u32| *n > 10`).
    ///
    /// An output that does not decode into `T` fails the graph with a `Decode` error naming the
    /// edge and `T`.
    pub fn add_edge_if<T, C>(self, from: impl Into<String>, to: impl Into<String>, cond: C) -> Self
    where
        T: Storable,
        C: Fn(&T) -> bool + Send + Sync + 'static,
    {
        let (from, to) = (from.into(), to.into());
        let label = format!("`{from}` -> `{to}`");
        let graph = self.inner.name.clone();
        let cond: CondFn = Arc::new(move |output: &[u8]| {
            let value: T = rmp_serde::from_slice(output).map_err(|e| {
                Error::new(
                    ErrorKind::Decode,
                    format!(
                        "the condition of the edge {label} of graph `{graph}` expects `{}`, which the output does not fit",
                        std::any::type_name::<T>()
                    ),
                )
                .with_cause(e.to_string())
            })?;
            Ok(cond(&value))
        });
        let edge = Edge { from, to, cond: Some(cond) };
        self.edit(|inner| inner.edges.push(edge))
    }

    /// Makes `node` the start node, which receives the graph's input (a later call replaces an
    /// earlier one).
    pub fn start_with(self, node: impl Into<String>) -> Self {
        let node = node.into();
        self.edit(|inner| inner.start = Some(node))
    }

    /// Adds `node` to the end nodes, whose output is the graph's. Call it once per possible end
    /// (two conditional branches, say): the graph returns the output of the first end node given
    /// here that ran.
    pub fn end_with(self, node: impl Into<String>) -> Self {
        let node = node.into();
        self.edit(|inner| {
            if !inner.ends.contains(&node) {
                inner.ends.push(node);
            }
        })
    }

    /// Checks that the graph is a DAG that can run, and returns it.
    ///
    /// Rejects, in this order: a node added twice ([`GraphError::DuplicateNode`]), no start node
    /// ([`GraphError::MissingStart`]), no end node ([`GraphError::MissingEnd`]), a start, end or
    /// edge naming a node that was not added ([`GraphError::UnknownNode`]), a cycle
    /// ([`GraphError::Cycle`]), and nodes that cannot be reached from the start node
    /// ([`GraphError::Unreachable`]). [`run`](Graph::run) checks the same before running.
    pub fn validate(self) -> std::result::Result<Graph, GraphError> {
        self.plan()?;
        Ok(self)
    }

    /// Runs the graph on `input` and returns the output of the end node that ran, decoded into
    /// `O`.
    ///
    /// Validates first (an invalid graph is an error of kind [`ErrorKind::Config`], and nothing
    /// is recorded). Inside a workflow the run is a task named after the graph, with the nodes'
    /// calls inside it; on replay, finished nodes answer from the log. Outside a workflow the
    /// nodes simply run.
    pub fn run<I, O>(&self, input: I) -> impl Future<Output = Result<O>> + Send + use<I, O>
    where
        I: Storable,
        O: Storable + Send + 'static,
    {
        let graph = self.clone();
        let prepared = self.plan().map_err(Error::from).and_then(|plan| {
            let input = value::to_msgpack(&input).map_err(|e| {
                Error::new(ErrorKind::Encode, format!("the input of graph `{}` cannot be encoded", graph.name()))
                    .with_cause(e.to_string())
            })?;
            Ok((plan, input))
        });
        async move {
            let (plan, input) = prepared?;
            composite(&graph.inner.name, Args::new(0), codec::<O>(), graph.execute::<O>(plan, input)).await
        }
    }

    /// The body of [`Graph::run`]: walks the plan, running nodes as they become ready.
    async fn execute<O: Storable>(&self, plan: Plan, input: Vec<u8>) -> Result<O> {
        let inner = &*self.inner;
        let mut states: Vec<NodeState> = inner.nodes.iter().map(|_| NodeState::Pending).collect();
        let mut running = FuturesUnordered::new();
        let call =
            |i: usize, input: &[u8]| -> Result<_> { Ok((inner.nodes[i].call)(input)?.map(move |result| (i, result))) };
        states[plan.start] = NodeState::Running;
        running.push(call(plan.start, &input)?);
        while let Some((done, result)) = running.next().await {
            // The first failure returns, dropping the nodes still running.
            states[done] = NodeState::Ran(result?);
            let mut ready = self.settle(&plan, &mut states, done)?;
            ready.sort_unstable_by_key(|(i, _)| *i);
            for (i, input) in ready {
                running.push(call(i, &input)?);
            }
        }
        let output = plan.ends.iter().find_map(|&i| match &states[i] {
            NodeState::Ran(output) => Some((i, output)),
            _ => None,
        });
        let Some((end, output)) = output else {
            let ends: Vec<String> = plan.ends.iter().map(|&i| format!("`{}`", inner.nodes[i].name)).collect();
            let ends = match ends.as_slice() {
                [end] => format!("its end node {end} was skipped"),
                _ => format!("its end nodes {} were all skipped", ends.join(", ")),
            };
            return Err(Error::new(ErrorKind::InvalidState, format!("graph `{}` has no output: {ends}", inner.name)));
        };
        value::from_msgpack(output).map_err(|e| {
            Error::new(
                ErrorKind::Decode,
                format!(
                    "the output of graph `{}` (from its end node `{}`) does not fit `{}`",
                    inner.name,
                    inner.nodes[end].name,
                    std::any::type_name::<O>()
                ),
            )
            .with_cause(e.to_string())
        })
    }

    /// Decides what follows node `done` having run: nodes whose upstream nodes are all decided
    /// either become ready (returned with their input) or are skipped, and skipping propagates.
    fn settle(&self, plan: &Plan, states: &mut [NodeState], done: usize) -> Result<Vec<(usize, Vec<u8>)>> {
        let inner = &*self.inner;
        let mut ready = Vec::new();
        let mut queue: VecDeque<usize> = plan.downstream[done].iter().copied().collect();
        'nodes: while let Some(node) = queue.pop_front() {
            if !matches!(states[node], NodeState::Pending) {
                continue;
            }
            let mut active: Vec<&[u8]> = Vec::new();
            for &e in &plan.incoming[node] {
                let (from, _) = plan.edges[e];
                match &states[from] {
                    NodeState::Pending | NodeState::Running => continue 'nodes,
                    NodeState::Skipped => {}
                    NodeState::Ran(output) => {
                        let holds = match &inner.edges[e].cond {
                            Some(cond) => cond(output)?,
                            None => true,
                        };
                        if holds {
                            active.push(output);
                        }
                    }
                }
            }
            match active.as_slice() {
                [] => {
                    states[node] = NodeState::Skipped;
                    queue.extend(plan.downstream[node].iter().copied());
                }
                [single] => {
                    ready.push((node, single.to_vec()));
                    states[node] = NodeState::Running;
                }
                several => {
                    let mut input = Vec::with_capacity(5 + several.iter().map(|o| o.len()).sum::<usize>());
                    let len = u32::try_from(several.len()).map_err(|_| {
                        Error::new(ErrorKind::Encode, format!("node `{}` has too many inputs", inner.nodes[node].name))
                    })?;
                    // Writing into a Vec cannot fail.
                    let _ = rmp::encode::write_array_len(&mut input, len);
                    for output in several {
                        input.extend_from_slice(output);
                    }
                    ready.push((node, input));
                    states[node] = NodeState::Running;
                }
            }
        }
        Ok(ready)
    }
}

impl fmt::Debug for Graph {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let inner = &*self.inner;
        let nodes: Vec<&str> = inner.nodes.iter().map(|n| n.name.as_str()).collect();
        let edges: Vec<String> = inner
            .edges
            .iter()
            .map(|e| match e.cond {
                Some(_) => format!("{} -> {} (if)", e.from, e.to),
                None => format!("{} -> {}", e.from, e.to),
            })
            .collect();
        f.debug_struct("Graph")
            .field("name", &inner.name)
            .field("nodes", &nodes)
            .field("edges", &edges)
            .field("start", &inner.start)
            .field("end", &inner.ends)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn inc(x: u32) -> Result<u32> {
        Ok(x + 1)
    }

    fn assert_send_sync<T: Send + Sync>() {}

    #[test]
    fn graph_is_send_sync_and_debug_lists_nodes_and_edges() {
        assert_send_sync::<Graph>();
        let g = Graph::new("g").add_node("a", inc).add_node("b", inc).add_edge_if("a", "b", |x: &u32| *x > 1);
        let debug = format!("{g:?}");
        assert!(debug.contains(r#"nodes: ["a", "b"]"#) && debug.contains("a -> b (if)"), "{debug}");
    }

    #[tokio::test]
    async fn outside_a_workflow_the_nodes_simply_run() {
        let g = Graph::new("g").add_node("a", inc).add_node("b", inc).add_edge("a", "b").start_with("a").end_with("b");
        assert_eq!(g.run::<u32, u32>(1).await, Ok(3));
    }
}
