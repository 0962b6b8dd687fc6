//! A tool call through the MCP client task, on loopback: a workflow whose one task is the call
//! `mcp_calc_add` to the rmcp test server (`flux_suite::mcp`), the session already open. Measures
//! what the task adds to an MCP round trip: the id, `TASK_STARTED`, the call, `TASK_COMPLETED`.

use std::sync::OnceLock;

use criterion::{Criterion, criterion_group, criterion_main};
use flux::prelude::*;

/// The client, shared by every run so that its session stays open.
static CLIENT: OnceLock<flux::mcp::McpClient> = OnceLock::new();

#[flux::workflow]
async fn one_call(ctx: ExecutionContext<u32>) -> flux::Result<String> {
    let client = CLIENT.get().expect("the client is set before the runs");
    Ok(client.call("add", serde_json::json!({"a": ctx.input(), "b": 1})).await?.text())
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let server = rt.block_on(flux_suite::mcp::serve()).expect("server");
    let _ = CLIENT.set(flux::mcp::client(&server.url).name("calc"));
    let engine = Engine::in_memory();
    let mut i = 0u32;
    c.bench_function("mcp tool call (loopback, task recorded)", |b| {
        b.iter(|| {
            i += 1;
            let done = rt.block_on(one_call.on(&engine).run(i)).expect("run");
            assert_eq!(done.output().map(String::as_str), Some((i + 1).to_string().as_str()));
        })
    });
    rt.block_on(server.stop());
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(1000);
    targets = bench
}
criterion_main!(benches);
