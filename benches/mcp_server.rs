//! One `execute_workflow_sync` round trip through the MCP server mounted on a flux server:
//! rmcp's client over streamable HTTP -> the MCP endpoint -> the flux API -> an in-process
//! workflow, and back.
//!
//! ```text
//! cargo bench -p flux-suite --features mcp --bench mcp_server
//! ```

use criterion::{Criterion, criterion_group, criterion_main};
use flux::prelude::*;
use rmcp::ServiceExt as _;
use rmcp::model::CallToolRequestParams;
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;

#[flux::workflow]
async fn echo(ctx: ExecutionContext<String>) -> String {
    ctx.input().clone()
}

fn execute_workflow_sync(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    let (server, client) = runtime.block_on(async {
        let server = flux::server::Server::from_config(flux::Config::default())
            .engine(&Engine::in_memory())
            .admin_token("bench")
            .register(echo)
            .mcp()
            .bind("127.0.0.1:0")
            .await
            .expect("server");
        let config =
            StreamableHttpClientTransportConfig::with_uri(format!("{}/mcp", server.url())).auth_header("bench");
        let client = ().serve(StreamableHttpClientTransport::from_config(config)).await.expect("client");
        (server, client)
    });
    let arguments = serde_json::json!({"workflow_name": "echo", "input_data": "\"ping\""});
    let arguments = arguments.as_object().cloned().expect("an object");
    c.bench_function("mcp execute_workflow_sync round trip", |b| {
        b.iter(|| {
            runtime.block_on(async {
                let params = CallToolRequestParams::new("execute_workflow_sync").with_arguments(arguments.clone());
                let result = client.call_tool(params).await.expect("call");
                assert_eq!(result.structured_content.as_ref().map(|v| v["state"].clone()), Some("COMPLETED".into()));
            })
        })
    });
    runtime.block_on(async {
        let _ = client.cancel().await;
        let _ = server.shutdown().await;
    });
}

criterion_group!(benches, execute_workflow_sync);
criterion_main!(benches);
