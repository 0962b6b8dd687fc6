//! Why a graph cannot run: [`GraphError`].

use std::fmt;

use crate::error::{Error, ErrorKind};

#[cfg(doc)]
use super::Graph;

/// Why a [`Graph`] is not a valid DAG of tasks; see [`Graph::validate`].
///
/// Converts into a [`flux::Error`](crate::Error) of kind [`ErrorKind::Config`], so
/// `graph.validate()?` works in a workflow.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum GraphError {
    /// [`Graph::start_with`] was never called.
    MissingStart {
        /// The graph's name.
        graph: String,
    },
    /// [`Graph::end_with`] was never called.
    MissingEnd {
        /// The graph's name.
        graph: String,
    },
    /// An edge, the start or an end names a node that was never added.
    UnknownNode {
        /// The graph's name.
        graph: String,
        /// The unknown name.
        node: String,
        /// Where it was named: `` the edge `a` -> `b` ``, `start_with` or `end_with`.
        context: String,
    },
    /// Two nodes were added with the same name.
    DuplicateNode {
        /// The graph's name.
        graph: String,
        /// The name added twice.
        node: String,
    },
    /// Some nodes cannot be reached from the start node.
    Unreachable {
        /// The graph's name.
        graph: String,
        /// The unreachable nodes, in the order they were added.
        nodes: Vec<String>,
    },
    /// The edges form a cycle.
    Cycle {
        /// The graph's name.
        graph: String,
        /// The nodes of the cycle, in edge order, the first repeated at the end (`a`, `b`, `a`).
        path: Vec<String>,
    },
}

/// Writes `` `a`, `b` `` (or with `sep` between the names).
fn names(f: &mut fmt::Formatter<'_>, names: &[String], sep: &str) -> fmt::Result {
    for (i, name) in names.iter().enumerate() {
        if i > 0 {
            f.write_str(sep)?;
        }
        write!(f, "`{name}`")?;
    }
    Ok(())
}

impl fmt::Display for GraphError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GraphError::MissingStart { graph } => {
                write!(f, "graph `{graph}` has no start node: call `start_with(node)`")
            }
            GraphError::MissingEnd { graph } => {
                write!(f, "graph `{graph}` has no end node: call `end_with(node)`")
            }
            GraphError::UnknownNode { graph, node, context } => {
                write!(f, "graph `{graph}` has no node `{node}` (named by {context})")
            }
            GraphError::DuplicateNode { graph, node } => {
                write!(f, "graph `{graph}` has two nodes named `{node}`")
            }
            GraphError::Unreachable { graph, nodes } => {
                write!(f, "graph `{graph}`: ")?;
                names(f, nodes, ", ")?;
                let verb = if nodes.len() == 1 { "is" } else { "are" };
                write!(f, " {verb} not reachable from the start node")
            }
            GraphError::Cycle { graph, path } => {
                write!(f, "graph `{graph}` has a cycle: ")?;
                names(f, path, " -> ")
            }
        }
    }
}

impl std::error::Error for GraphError {}

impl From<GraphError> for Error {
    fn from(e: GraphError) -> Self {
        Error::new(ErrorKind::Config, e.to_string())
    }
}
