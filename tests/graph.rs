//! `flux::Graph` (docs/design.md §6): a DAG of tasks run as one task, with conditional edges,
//! concurrent branches, skip propagation, validation and replay.

use std::sync::LazyLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use EventType::*;
use flux::prelude::*;
use flux::{Error, ErrorKind, Event, Graph, GraphError};
use flux_suite::{StoppedLog, kinds};

/// The id of a call of `task` with `args` (a tuple), as the log records it.
fn id_of<A: serde::Serialize>(task: &str, args: &A) -> String {
    flux::identity::encode_call(task, args).unwrap().1
}

/// The id of the task a graph named `graph` runs as (it records no arguments).
fn graph_id(graph: &str) -> String {
    id_of(graph, &Vec::<u32>::new())
}

/// `(kind, name)` of each event after `WORKFLOW_STARTED` and before the final workflow event.
fn task_events(events: &[Event]) -> Vec<(EventType, &str)> {
    events[1..events.len() - 1].iter().map(|e| (e.kind(), e.name())).collect()
}

fn mentions(events: &[Event], name: &str) -> bool {
    events.iter().any(|e| e.name() == name || e.source_id().starts_with(&format!("{name}_")))
}

// --- 1. A linear graph ---------------------------------------------------------------------

#[flux::task]
async fn get_name(id: u32) -> String {
    match id {
        42 => "Joe".to_string(),
        _ => format!("user {id}"),
    }
}

#[flux::task]
async fn say_hello(name: String) -> String {
    format!("Hello, {name}")
}

#[flux::workflow]
async fn greeting(ctx: ExecutionContext<u32>) -> flux::Result<String> {
    let graph = Graph::new("greet")
        .add_node("get_name", get_name)
        .add_node("say_hello", say_hello)
        .add_edge("get_name", "say_hello")
        .start_with("get_name")
        .end_with("say_hello")
        .validate()?;
    graph.run(*ctx.input()).await
}

#[tokio::test]
async fn a_linear_graph_is_a_task_wrapping_its_nodes() {
    let engine = Engine::in_memory();
    let execution = greeting.on(&engine).run(42).await.unwrap();
    assert_eq!(execution.state(), ExecutionState::Completed, "{:?}", execution.error());
    assert_eq!(execution.output().map(String::as_str), Some("Hello, Joe"));

    let events = execution.events();
    assert_eq!(
        kinds(events),
        [
            WorkflowStarted,
            TaskStarted,
            TaskStarted,
            TaskCompleted,
            TaskStarted,
            TaskCompleted,
            TaskCompleted,
            WorkflowCompleted
        ]
    );
    let names: Vec<&str> = events.iter().map(Event::name).collect();
    assert_eq!(names, ["greeting", "greet", "get_name", "get_name", "say_hello", "say_hello", "greet", "greeting"]);

    let workflow = format!("greeting_{}", execution.execution_id());
    let graph = graph_id("greet");
    let first = id_of("get_name", &(42u32,));
    let second = id_of("say_hello", &("Joe".to_string(),));
    let sources: Vec<&str> = events.iter().map(Event::source_id).collect();
    assert_eq!(sources, [&workflow, &graph, &first, &first, &second, &second, &graph, &workflow]);
    assert!(graph.starts_with("greet_") && graph.len() == "greet_".len() + 16, "{graph}");

    // The nodes' inputs and outputs, and the graph's output, are recorded.
    assert_eq!(events[2].value::<(u32,)>().unwrap(), (42,));
    assert_eq!(events[3].value::<String>().unwrap(), "Joe");
    assert_eq!(events[4].value::<(String,)>().unwrap(), ("Joe".to_string(),));
    assert_eq!(events[6].value::<String>().unwrap(), "Hello, Joe");
}

// --- 2. Conditional branches ---------------------------------------------------------------

#[flux::task]
async fn measure(x: u32) -> u32 {
    x
}

#[flux::task]
async fn big(x: u32) -> String {
    format!("{x} is big")
}

#[flux::task]
async fn small(x: u32) -> String {
    format!("{x} is small")
}

#[flux::workflow]
async fn sizes(ctx: ExecutionContext<u32>) -> flux::Result<String> {
    let graph = Graph::new("sizes")
        .add_node("start", measure)
        .add_node("big", big)
        .add_node("small", small)
        .add_edge_if("start", "big", |x: &u32| *x > 10)
        .add_edge_if("start", "small", |x: &u32| *x <= 10)
        .start_with("start")
        .end_with("big")
        .end_with("small")
        .validate()?;
    graph.run(*ctx.input()).await
}

#[tokio::test]
async fn only_the_branch_whose_condition_holds_runs() {
    let engine = Engine::in_memory();
    for (input, output, ran, skipped) in [(42, "42 is big", "big", "small"), (3, "3 is small", "small", "big")] {
        let execution = sizes.on(&engine).run(input).await.unwrap();
        assert_eq!(execution.output().map(String::as_str), Some(output), "{:?}", execution.error());
        let events = execution.events();
        assert_eq!(
            task_events(events),
            [
                (TaskStarted, "sizes"),
                (TaskStarted, "measure"),
                (TaskCompleted, "measure"),
                (TaskStarted, ran),
                (TaskCompleted, ran),
                (TaskCompleted, "sizes"),
            ]
        );
        assert_eq!(kinds(events).last(), Some(&WorkflowCompleted));
        assert!(!mentions(events, skipped), "`{skipped}` must never start: {events:?}");
    }
}

// --- 3. Validation -------------------------------------------------------------------------

#[flux::task]
async fn inc(x: u32) -> u32 {
    x + 1
}

fn abc() -> Graph {
    Graph::new("abc").add_node("a", inc).add_node("b", inc).add_node("c", inc)
}

#[test]
fn a_cycle_is_rejected_with_its_path() {
    let err = abc()
        .add_edge("a", "b")
        .add_edge("b", "c")
        .add_edge("c", "b")
        .start_with("a")
        .end_with("c")
        .validate()
        .unwrap_err();
    assert_eq!(err, GraphError::Cycle { graph: "abc".into(), path: vec!["b".into(), "c".into(), "b".into()] });
    assert_eq!(err.to_string(), "graph `abc` has a cycle: `b` -> `c` -> `b`");
}

#[test]
fn an_unknown_node_is_rejected_with_where_it_was_named() {
    let err = abc().add_edge("a", "b").add_edge("b", "zed").start_with("a").end_with("b").validate().unwrap_err();
    assert!(matches!(&err, GraphError::UnknownNode { node, .. } if node == "zed"), "{err:?}");
    assert_eq!(err.to_string(), "graph `abc` has no node `zed` (named by the edge `b` -> `zed`)");

    let err = abc().add_edge("a", "b").start_with("a").end_with("omega").validate().unwrap_err();
    assert_eq!(err.to_string(), "graph `abc` has no node `omega` (named by `end_with`)");
    let err = abc().start_with("alpha").end_with("a").validate().unwrap_err();
    assert_eq!(err.to_string(), "graph `abc` has no node `alpha` (named by `start_with`)");
}

#[test]
fn a_graph_without_an_end_or_a_start_is_rejected() {
    let err = abc().add_edge("a", "b").add_edge("b", "c").start_with("a").validate().unwrap_err();
    assert_eq!(err, GraphError::MissingEnd { graph: "abc".into() });
    assert_eq!(err.to_string(), "graph `abc` has no end node: call `end_with(node)`");

    let err = abc().add_edge("a", "b").add_edge("b", "c").end_with("c").validate().unwrap_err();
    assert_eq!(err, GraphError::MissingStart { graph: "abc".into() });
    assert_eq!(err.to_string(), "graph `abc` has no start node: call `start_with(node)`");
}

#[test]
fn unreachable_and_duplicate_nodes_are_rejected() {
    let err = abc().add_node("d", inc).add_edge("a", "b").add_edge("c", "d").start_with("a").end_with("b").validate();
    let err = err.unwrap_err();
    assert_eq!(err, GraphError::Unreachable { graph: "abc".into(), nodes: vec!["c".into(), "d".into()] });
    assert_eq!(err.to_string(), "graph `abc`: `c`, `d` are not reachable from the start node");

    let err = abc().add_node("b", say_hello).add_edge("a", "b").start_with("a").end_with("b").validate().unwrap_err();
    assert_eq!(err, GraphError::DuplicateNode { graph: "abc".into(), node: "b".into() });
    assert_eq!(err.to_string(), "graph `abc` has two nodes named `b`");
}

#[test]
fn the_errors_are_distinct_and_become_config_errors() {
    let cycle = abc().add_edge("a", "a").start_with("a").end_with("a").validate().unwrap_err();
    let unknown = abc().add_edge("a", "x").start_with("a").end_with("a").validate().unwrap_err();
    let no_end = abc().start_with("a").validate().unwrap_err();
    assert!(matches!(cycle, GraphError::Cycle { .. }), "{cycle:?}");
    assert!(matches!(unknown, GraphError::UnknownNode { .. }), "{unknown:?}");
    assert!(matches!(no_end, GraphError::MissingEnd { .. }), "{no_end:?}");
    assert_eq!(cycle.to_string(), "graph `abc` has a cycle: `a` -> `a`");

    let err = Error::from(unknown.clone());
    assert_eq!(err.kind(), ErrorKind::Config);
    assert_eq!(err.message(), unknown.to_string());
    let _: &dyn std::error::Error = &unknown;
    // A valid graph is returned as it was, and prints its parts.
    let valid = abc().add_edge("a", "b").add_edge_if("a", "c", |x: &u32| *x > 1).start_with("a").end_with("b");
    let debug = format!("{:?}", valid.validate().unwrap());
    assert!(debug.contains(r#"nodes: ["a", "b", "c"]"#) && debug.contains(r#""a -> c (if)""#), "{debug}");
}

#[flux::workflow]
async fn broken_graph(ctx: ExecutionContext<u32>) -> flux::Result<u32> {
    // Not validated by the body: `run` validates, and nothing is recorded for an invalid graph.
    abc().add_edge("a", "b").add_edge("b", "a").start_with("a").end_with("b").run(*ctx.input()).await
}

#[tokio::test]
async fn running_an_invalid_graph_fails_the_workflow_without_running_a_node() {
    let engine = Engine::in_memory();
    let execution = broken_graph.on(&engine).run(1).await.unwrap();
    assert!(execution.has_failed());
    assert_eq!(kinds(execution.events()), [WorkflowStarted, WorkflowFailed]);
    let err = execution.error().unwrap();
    assert_eq!(err.kind(), ErrorKind::Config);
    assert_eq!(err.message(), "graph `abc` has a cycle: `a` -> `b` -> `a`");
}

// --- 4. Types, a diamond, concurrency, skipping ----------------------------------------------

#[flux::task]
async fn to_text(n: u32) -> String {
    format!("#{n}")
}

#[flux::task]
async fn length(text: String) -> usize {
    text.len()
}

#[flux::workflow]
async fn typed_chain(ctx: ExecutionContext<u32>) -> flux::Result<usize> {
    let graph = Graph::new("typed")
        .add_node("to_text", to_text)
        .add_node("length", length)
        .add_edge("to_text", "length")
        .start_with("to_text")
        .end_with("length")
        .validate()?;
    graph.run(*ctx.input()).await
}

#[tokio::test]
async fn nodes_of_different_types_feed_each_other() {
    let engine = Engine::in_memory();
    let execution = typed_chain.on(&engine).run(12345).await.unwrap();
    assert_eq!(execution.output(), Some(&6), "{:?}", execution.error());
    assert_eq!(
        task_events(execution.events()),
        [
            (TaskStarted, "typed"),
            (TaskStarted, "to_text"),
            (TaskCompleted, "to_text"),
            (TaskStarted, "length"),
            (TaskCompleted, "length"),
            (TaskCompleted, "typed"),
        ]
    );
}

/// Both branches of the diamond wait here: if they ran one after the other, neither would pass.
static DIAMOND_BARRIER: LazyLock<tokio::sync::Barrier> = LazyLock::new(|| tokio::sync::Barrier::new(2));

#[flux::task]
async fn split(n: u32) -> u32 {
    n * 10
}

#[flux::task]
async fn left(n: u32) -> String {
    DIAMOND_BARRIER.wait().await;
    format!("left {n}")
}

#[flux::task]
async fn right(n: u32) -> u64 {
    DIAMOND_BARRIER.wait().await;
    u64::from(n) + 1
}

#[flux::task]
async fn join(pair: (String, u64)) -> String {
    format!("{} and {}", pair.0, pair.1)
}

#[flux::workflow]
async fn diamond(ctx: ExecutionContext<u32>) -> flux::Result<String> {
    let graph = Graph::new("diamond")
        .add_node("a", split)
        .add_node("b", left)
        .add_node("c", right)
        .add_node("d", join)
        .add_edge("a", "b")
        .add_edge("a", "c")
        .add_edge("b", "d")
        .add_edge("c", "d")
        .start_with("a")
        .end_with("d")
        .validate()?;
    graph.run(*ctx.input()).await
}

#[tokio::test]
async fn a_diamond_runs_its_branches_concurrently_and_joins_them_in_edge_order() {
    let engine = Engine::in_memory();
    let execution = tokio::time::timeout(Duration::from_secs(10), diamond.on(&engine).run(4))
        .await
        .expect("b and c wait for each other, so they must run concurrently")
        .unwrap();
    assert_eq!(execution.output().map(String::as_str), Some("left 40 and 41"), "{:?}", execution.error());
    let events = execution.events();
    assert_eq!(
        kinds(events),
        [
            WorkflowStarted,
            TaskStarted,
            TaskStarted,
            TaskCompleted,
            TaskStarted,
            TaskStarted,
            TaskCompleted,
            TaskCompleted,
            TaskStarted,
            TaskCompleted,
            TaskCompleted,
            WorkflowCompleted
        ]
    );
    let names: Vec<&str> = events.iter().map(Event::name).collect();
    // b and c start in the order the nodes were added, before either completes; they may
    // complete in either order.
    assert_eq!(names[..6], ["diamond", "diamond", "split", "split", "left", "right"]);
    let mut finished = [names[6], names[7]];
    finished.sort_unstable();
    assert_eq!(finished, ["left", "right"]);
    assert_eq!(names[8..], ["join", "join", "diamond", "diamond"]);
    // d received the array of its upstream outputs, in edge order.
    assert_eq!(events[8].value::<((String, u64),)>().unwrap(), (("left 40".to_string(), 41),));
}

#[flux::task]
async fn pass(x: u32) -> u32 {
    x
}

#[flux::task]
async fn rare(x: u32) -> u32 {
    x * 1000
}

#[flux::task]
async fn after_rare(x: u32) -> String {
    format!("rare path: {x}")
}

#[flux::task]
async fn common(x: u32) -> String {
    format!("common path: {x}")
}

/// Takes one value, or the array of several.
#[derive(serde::Serialize, serde::Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(u32),
    Many(Vec<u32>),
}

#[flux::task]
async fn summary(x: OneOrMany) -> String {
    match x {
        OneOrMany::One(x) => format!("summary of {x}"),
        OneOrMany::Many(xs) => format!("summary of {xs:?}"),
    }
}

#[flux::workflow]
async fn skip_propagation(ctx: ExecutionContext<u32>) -> flux::Result<(String, String)> {
    // `start → rare` only for inputs above 100, `rare → after_rare` (fed only by `rare`),
    // `start → common`; both `after_rare` and `common` end the graph.
    let skipping = Graph::new("skipping")
        .add_node("start", pass)
        .add_node("rare", rare)
        .add_node("after_rare", after_rare)
        .add_node("common", common)
        .add_edge_if("start", "rare", |x: &u32| *x > 100)
        .add_edge("rare", "after_rare")
        .add_edge("start", "common")
        .start_with("start")
        .end_with("after_rare")
        .end_with("common")
        .validate()?;
    let main = skipping.run(*ctx.input()).await?;
    // `summary` is fed by `rare` (skipped for small inputs) and by `start`.
    let summary_only = Graph::new("summary_only")
        .add_node("start", pass)
        .add_node("rare", rare)
        .add_node("summary", summary)
        .add_edge_if("start", "rare", |x: &u32| *x > 100)
        .add_edge("rare", "summary")
        .add_edge("start", "summary")
        .start_with("start")
        .end_with("summary")
        .validate()?;
    let summary = summary_only.run(*ctx.input()).await?;
    Ok((main, summary))
}

#[tokio::test]
async fn a_node_fed_only_by_a_skipped_node_is_skipped_too() {
    let engine = Engine::in_memory();
    let execution = skip_propagation.on(&engine).run(7).await.unwrap();
    assert_eq!(
        execution.output(),
        Some(&("common path: 7".to_string(), "summary of 7".to_string())),
        "{:?}",
        execution.error()
    );
    let events = execution.events();
    assert_eq!(
        task_events(events),
        [
            (TaskStarted, "skipping"),
            (TaskStarted, "pass"),
            (TaskCompleted, "pass"),
            (TaskStarted, "common"),
            (TaskCompleted, "common"),
            (TaskCompleted, "skipping"),
            // `summary` has an active edge (from `start`) besides the skipped one: it runs, with
            // the single active upstream's output as its input.
            (TaskStarted, "summary_only"),
            (TaskStarted, "pass"),
            (TaskCompleted, "pass"),
            (TaskStarted, "summary"),
            (TaskCompleted, "summary"),
            (TaskCompleted, "summary_only"),
        ]
    );
    assert!(!mentions(events, "rare") && !mentions(events, "after_rare"), "{events:?}");
    // The same start call in both graphs: the second is its first repeat.
    assert_eq!(events[8].source_id(), format!("{}~1", events[2].source_id()));

    // With the rare branch taken, both end nodes run and the first declared one gives the
    // output; `summary` gets the array of its two upstream outputs, in edge order.
    let execution = skip_propagation.on(&engine).run(500).await.unwrap();
    assert_eq!(
        execution.output(),
        Some(&("rare path: 500000".to_string(), "summary of [500000, 500]".to_string())),
        "{:?}",
        execution.error()
    );
    assert_eq!(
        task_events(execution.events()),
        [
            (TaskStarted, "skipping"),
            (TaskStarted, "pass"),
            (TaskCompleted, "pass"),
            (TaskStarted, "rare"),
            (TaskCompleted, "rare"),
            (TaskStarted, "common"),
            (TaskCompleted, "common"),
            (TaskStarted, "after_rare"),
            (TaskCompleted, "after_rare"),
            (TaskCompleted, "skipping"),
            (TaskStarted, "summary_only"),
            (TaskStarted, "pass"),
            (TaskCompleted, "pass"),
            (TaskStarted, "rare"),
            (TaskCompleted, "rare"),
            (TaskStarted, "summary"),
            (TaskCompleted, "summary"),
            (TaskCompleted, "summary_only"),
        ]
    );
}

#[flux::workflow]
async fn nothing_ran(ctx: ExecutionContext<u32>) -> flux::Result<String> {
    Graph::new("nothing_ran")
        .add_node("start", pass)
        .add_node("rare", rare)
        .add_node("after_rare", after_rare)
        .add_edge_if("start", "rare", |x: &u32| *x > 100)
        .add_edge("rare", "after_rare")
        .start_with("start")
        .end_with("after_rare")
        .validate()?
        .run(*ctx.input())
        .await
}

#[tokio::test]
async fn skipped_end_nodes_fail_the_graph_task_in_the_log() {
    let engine = Engine::in_memory();
    let execution = nothing_ran.on(&engine).run(1).await.unwrap();
    assert!(execution.has_failed());
    assert_eq!(
        task_events(execution.events()),
        [(TaskStarted, "nothing_ran"), (TaskStarted, "pass"), (TaskCompleted, "pass"), (TaskFailed, "nothing_ran")]
    );
    assert_eq!(kinds(execution.events()).last(), Some(&WorkflowFailed));
    let err = execution.error().unwrap();
    assert_eq!(err.kind(), ErrorKind::InvalidState);
    assert_eq!(err.message(), "graph `nothing_ran` has no output: its end node `after_rare` was skipped");

    // Outside a workflow, the same: every end node is named.
    let only_rare = Graph::new("only_rare")
        .add_node("start", pass)
        .add_node("rare", rare)
        .add_node("after_rare", after_rare)
        .add_edge_if("start", "rare", |x: &u32| *x > 100)
        .add_edge("rare", "after_rare")
        .start_with("start")
        .end_with("rare")
        .end_with("after_rare");
    let err = only_rare.run::<u32, String>(1).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidState);
    assert_eq!(err.message(), "graph `only_rare` has no output: its end nodes `rare`, `after_rare` were all skipped");
}

// --- Failures ------------------------------------------------------------------------------

#[flux::task]
async fn never_finishes(x: u32) -> u32 {
    std::future::pending::<()>().await;
    x
}

#[flux::task]
async fn boom(x: u32) -> Result<u32, std::io::Error> {
    Err(std::io::Error::other(format!("boom at {x}")))
}

#[flux::workflow]
async fn exploding(ctx: ExecutionContext<u32>) -> flux::Result<u32> {
    Graph::new("exploding")
        .add_node("start", pass)
        .add_node("slow", never_finishes)
        .add_node("boom", boom)
        .add_node("end", pass)
        .add_edge("start", "slow")
        .add_edge("start", "boom")
        .add_edge("slow", "end")
        .add_edge("boom", "end")
        .start_with("start")
        .end_with("end")
        .run(*ctx.input())
        .await
}

#[tokio::test]
async fn the_first_failing_node_fails_the_graph_and_drops_the_others() {
    let engine = Engine::in_memory();
    let execution = tokio::time::timeout(Duration::from_secs(10), exploding.on(&engine).run(9))
        .await
        .expect("the failure must not wait for the node still running")
        .unwrap();
    assert!(execution.has_failed());
    assert_eq!(
        task_events(execution.events()),
        [
            (TaskStarted, "exploding"),
            (TaskStarted, "pass"),
            (TaskCompleted, "pass"),
            (TaskStarted, "never_finishes"),
            (TaskStarted, "boom"),
            (TaskFailed, "boom"),
            (TaskFailed, "exploding"),
        ]
    );
    assert_eq!(kinds(execution.events()).last(), Some(&WorkflowFailed));
    let err = execution.error().unwrap();
    assert_eq!(err.kind(), ErrorKind::TaskFailed);
    assert_eq!(err.message(), "boom at 9");
    assert!(err.task_id().unwrap().starts_with("boom_"), "{err:?}");
}

#[flux::workflow]
async fn mistyped(ctx: ExecutionContext<u32>) -> flux::Result<usize> {
    // `to_text` gives a String, `inc` wants a u32.
    Graph::new("mistyped")
        .add_node("to_text", to_text)
        .add_node("inc", inc)
        .add_edge("to_text", "inc")
        .start_with("to_text")
        .end_with("inc")
        .run(*ctx.input())
        .await
}

#[tokio::test]
async fn an_input_that_does_not_fit_a_node_names_the_node_and_its_type() {
    let engine = Engine::in_memory();
    let execution = mistyped.on(&engine).run(5).await.unwrap();
    assert!(execution.has_failed());
    assert_eq!(
        task_events(execution.events()),
        [(TaskStarted, "mistyped"), (TaskStarted, "to_text"), (TaskCompleted, "to_text"), (TaskFailed, "mistyped")]
    );
    let err = execution.error().unwrap();
    assert_eq!(err.kind(), ErrorKind::Decode);
    assert_eq!(err.message(), "the input of node `inc` of graph `mistyped` does not fit `u32`");
}

#[flux::workflow]
async fn mistyped_condition(ctx: ExecutionContext<u32>) -> flux::Result<String> {
    Graph::new("mistyped_condition")
        .add_node("to_text", to_text)
        .add_node("say_hello", say_hello)
        .add_edge_if("to_text", "say_hello", |n: &u64| *n > 3)
        .start_with("to_text")
        .end_with("say_hello")
        .run(*ctx.input())
        .await
}

#[tokio::test]
async fn an_output_that_does_not_fit_a_condition_names_the_edge() {
    let engine = Engine::in_memory();
    let execution = mistyped_condition.on(&engine).run(5).await.unwrap();
    assert!(execution.has_failed());
    assert_eq!(
        task_events(execution.events()),
        [
            (TaskStarted, "mistyped_condition"),
            (TaskStarted, "to_text"),
            (TaskCompleted, "to_text"),
            (TaskFailed, "mistyped_condition")
        ]
    );
    let err = execution.error().unwrap();
    assert_eq!(err.kind(), ErrorKind::Decode);
    assert_eq!(
        err.message(),
        "the condition of the edge `to_text` -> `say_hello` of graph `mistyped_condition` expects `u64`, \
         which the output does not fit"
    );
}

#[flux::workflow]
async fn wrong_output(ctx: ExecutionContext<u32>) -> flux::Result<u32> {
    Graph::new("wrong_output")
        .add_node("to_text", to_text)
        .start_with("to_text")
        .end_with("to_text")
        .run(*ctx.input())
        .await
}

#[tokio::test]
async fn an_output_that_does_not_fit_the_graph_output_type_names_the_graph() {
    let engine = Engine::in_memory();
    let execution = wrong_output.on(&engine).run(5).await.unwrap();
    assert_eq!(
        task_events(execution.events()),
        [
            (TaskStarted, "wrong_output"),
            (TaskStarted, "to_text"),
            (TaskCompleted, "to_text"),
            (TaskFailed, "wrong_output")
        ]
    );
    let err = execution.error().unwrap();
    assert_eq!(err.kind(), ErrorKind::Decode);
    assert_eq!(err.message(), "the output of graph `wrong_output` (from its end node `to_text`) does not fit `u32`");
}

// --- 5. Replay -----------------------------------------------------------------------------

static REPLAY_FIRST_RUNS: AtomicU32 = AtomicU32::new(0);
static REPLAY_SECOND_RUNS: AtomicU32 = AtomicU32::new(0);

#[flux::task]
async fn replay_first(x: u32) -> u32 {
    REPLAY_FIRST_RUNS.fetch_add(1, Ordering::SeqCst);
    x + 1
}

#[flux::task]
async fn replay_second(x: u32) -> String {
    REPLAY_SECOND_RUNS.fetch_add(1, Ordering::SeqCst);
    format!("got {x}")
}

#[flux::workflow]
async fn replayed(ctx: ExecutionContext<u32>) -> flux::Result<String> {
    let graph = Graph::new("replayed")
        .add_node("first", replay_first)
        .add_node("second", replay_second)
        .add_edge("first", "second")
        .start_with("first")
        .end_with("second")
        .validate()?;
    graph.run(*ctx.input()).await
}

#[tokio::test]
async fn replaying_from_a_fresh_engine_does_not_run_the_nodes_again() {
    for place in flux_suite::places() {
        REPLAY_FIRST_RUNS.store(0, Ordering::SeqCst);
        REPLAY_SECOND_RUNS.store(0, Ordering::SeqCst);
        let first = {
            let engine = place.open();
            replayed.on(&engine).run(1).await.unwrap()
        };
        assert_eq!(first.output().map(String::as_str), Some("got 2"), "{place}: {:?}", first.error());
        let expected = [
            WorkflowStarted,
            TaskStarted,
            TaskStarted,
            TaskCompleted,
            TaskStarted,
            TaskCompleted,
            TaskCompleted,
            WorkflowCompleted,
        ];
        assert_eq!(kinds(first.events()), expected, "{place}");
        let runs = || (REPLAY_FIRST_RUNS.load(Ordering::SeqCst), REPLAY_SECOND_RUNS.load(Ordering::SeqCst));
        assert_eq!(runs(), (1, 1), "{place}");

        // A fresh engine on the same store, as in a new process.
        let engine = place.open();
        let again = replayed.on(&engine).replay(first.execution_id()).await.unwrap();
        assert_eq!(again.output(), first.output(), "{place}");
        assert_eq!(again.events(), first.events(), "{place}");
        assert_eq!(engine.store().load(first.execution_id()).unwrap().unwrap().events.len(), expected.len());
        assert_eq!(runs(), (1, 1), "{place}");
    }
}

static CRASH_FIRST_RUNS: AtomicU32 = AtomicU32::new(0);
static CRASH_SECOND_RUNS: AtomicU32 = AtomicU32::new(0);

#[flux::task]
async fn crash_first(x: u32) -> u32 {
    CRASH_FIRST_RUNS.fetch_add(1, Ordering::SeqCst);
    x + 1
}

#[flux::task]
async fn crash_second(x: u32) -> String {
    CRASH_SECOND_RUNS.fetch_add(1, Ordering::SeqCst);
    format!("got {x}")
}

#[flux::workflow]
async fn crashed_graph(ctx: ExecutionContext<u32>) -> flux::Result<String> {
    let graph = Graph::new("crashy")
        .add_node("first", crash_first)
        .add_node("second", crash_second)
        .add_edge("first", "second")
        .start_with("first")
        .end_with("second")
        .validate()?;
    graph.run(*ctx.input()).await
}

#[test]
fn a_graph_interrupted_by_a_crash_continues_without_rerunning_finished_nodes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("flux.db");
    // The log a process leaves when it dies after the graph's first node completed.
    let mut log = StoppedLog::new("crashed_graph", "crashed", &1u32);
    let graph = log.task_started("crashy", &Vec::<u32>::new());
    assert_eq!(graph, graph_id("crashy"));
    let first = log.task_started("crash_first", &(1u32,));
    log.event(TaskCompleted, &first, "crash_first", &2u32);
    log.store(&Engine::open(&path).unwrap());

    let engine = Engine::open(&path).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let execution = rt.block_on(crashed_graph.on(&engine).replay("crashed")).unwrap();
    assert_eq!(execution.output().map(String::as_str), Some("got 2"), "{:?}", execution.error());
    assert_eq!((CRASH_FIRST_RUNS.load(Ordering::SeqCst), CRASH_SECOND_RUNS.load(Ordering::SeqCst)), (0, 1));
    // No second TASK_STARTED for the graph or its finished node.
    assert_eq!(
        task_events(execution.events()),
        [
            (TaskStarted, "crashy"),
            (TaskStarted, "crash_first"),
            (TaskCompleted, "crash_first"),
            (TaskStarted, "crash_second"),
            (TaskCompleted, "crash_second"),
            (TaskCompleted, "crashy"),
        ]
    );
    assert_eq!(execution.events()[1].source_id(), graph);
    assert_eq!(kinds(execution.events()).last(), Some(&WorkflowCompleted));
}
