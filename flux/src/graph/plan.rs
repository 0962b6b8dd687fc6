//! Validation: a graph's names turned into the indices [`Graph::run`] walks, refused when the
//! graph is not a DAG that can run.

use std::collections::HashMap;

use super::{Graph, GraphError};

/// A valid graph in indices: what [`Graph::run`] walks.
pub(super) struct Plan {
    pub(super) start: usize,
    pub(super) ends: Vec<usize>,
    /// Per edge: (from, to).
    pub(super) edges: Vec<(usize, usize)>,
    /// Per node: its incoming edges, in the order they were added.
    pub(super) incoming: Vec<Vec<usize>>,
    /// Per node: the nodes its outgoing edges lead to, in the order the edges were added.
    pub(super) downstream: Vec<Vec<usize>>,
}

impl Graph {
    /// The graph in indices, or why it cannot run (see [`Graph::validate`]).
    pub(super) fn plan(&self) -> std::result::Result<Plan, GraphError> {
        let inner = &*self.inner;
        let graph = || inner.name.clone();
        let mut index: HashMap<&str, usize> = HashMap::with_capacity(inner.nodes.len());
        for (i, node) in inner.nodes.iter().enumerate() {
            if index.insert(&node.name, i).is_some() {
                return Err(GraphError::DuplicateNode { graph: graph(), node: node.name.clone() });
            }
        }
        let find = |node: &str, context: &dyn Fn() -> String| {
            index.get(node).copied().ok_or_else(|| GraphError::UnknownNode {
                graph: graph(),
                node: node.to_string(),
                context: context(),
            })
        };
        let start = inner.start.as_deref().ok_or_else(|| GraphError::MissingStart { graph: graph() })?;
        if inner.ends.is_empty() {
            return Err(GraphError::MissingEnd { graph: graph() });
        }
        let start = find(start, &|| "`start_with`".to_string())?;
        let ends =
            inner.ends.iter().map(|end| find(end, &|| "`end_with`".to_string())).collect::<Result<Vec<_>, _>>()?;
        let mut edges = Vec::with_capacity(inner.edges.len());
        let mut incoming = vec![Vec::new(); inner.nodes.len()];
        let mut downstream = vec![Vec::new(); inner.nodes.len()];
        for (e, edge) in inner.edges.iter().enumerate() {
            let context = || format!("the edge {}", edge.label());
            let (from, to) = (find(&edge.from, &context)?, find(&edge.to, &context)?);
            edges.push((from, to));
            incoming[to].push(e);
            downstream[from].push(to);
        }
        if let Some(cycle) = find_cycle(&downstream) {
            let path = cycle.into_iter().map(|i| inner.nodes[i].name.clone()).collect();
            return Err(GraphError::Cycle { graph: graph(), path });
        }
        let mut reached = vec![false; inner.nodes.len()];
        let mut stack = vec![start];
        reached[start] = true;
        while let Some(i) = stack.pop() {
            for &j in &downstream[i] {
                if !reached[j] {
                    reached[j] = true;
                    stack.push(j);
                }
            }
        }
        let unreachable: Vec<String> =
            inner.nodes.iter().zip(&reached).filter(|(_, reached)| !**reached).map(|(n, _)| n.name.clone()).collect();
        if !unreachable.is_empty() {
            return Err(GraphError::Unreachable { graph: graph(), nodes: unreachable });
        }
        Ok(Plan { start, ends, edges, incoming, downstream })
    }
}

/// The first cycle found by a depth-first search over the nodes in order (successors in edge
/// order), as a path of node indices whose last is its first.
fn find_cycle(downstream: &[Vec<usize>]) -> Option<Vec<usize>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        OnPath,
        Done,
    }
    let mut marks = vec![Mark::New; downstream.len()];
    for root in 0..downstream.len() {
        if marks[root] != Mark::New {
            continue;
        }
        // The current path: (node, index of its next successor to visit).
        let mut path: Vec<(usize, usize)> = vec![(root, 0)];
        marks[root] = Mark::OnPath;
        while let Some((node, next)) = path.last_mut() {
            let node = *node;
            match downstream[node].get(*next) {
                Some(&succ) => {
                    *next += 1;
                    match marks[succ] {
                        Mark::New => {
                            marks[succ] = Mark::OnPath;
                            path.push((succ, 0));
                        }
                        Mark::OnPath => {
                            let from = path.iter().position(|&(n, _)| n == succ).unwrap_or(0);
                            let mut cycle: Vec<usize> = path[from..].iter().map(|&(n, _)| n).collect();
                            cycle.push(succ);
                            return Some(cycle);
                        }
                        Mark::Done => {}
                    }
                }
                None => {
                    marks[node] = Mark::Done;
                    path.pop();
                }
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cycles_are_found_with_their_path() {
        assert_eq!(find_cycle(&[vec![1], vec![2], vec![]]), None);
        assert_eq!(find_cycle(&[vec![1], vec![2], vec![1]]), Some(vec![1, 2, 1]));
        assert_eq!(find_cycle(&[vec![0]]), Some(vec![0, 0]));
        // A diamond is not a cycle.
        assert_eq!(find_cycle(&[vec![1, 2], vec![3], vec![3], vec![]]), None);
    }
}
