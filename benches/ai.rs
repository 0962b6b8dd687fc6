//! One model call of an agent, on loopback against the scripted provider (`flux_suite::ai`,
//! OpenAI's wire format): what the agent adds to the HTTP round trip. Four measurements in one
//! run, so that their ratios hold on a noisy machine:
//!
//! - `raw HTTP round trip`: a POST of the same request body with reqwest, the response read;
//! - `workflow without agent`: a workflow returning a constant (the execution around the call);
//! - `agent call (journaled)`: a workflow whose body is one agent call with one model turn:
//!   the agent task `chat`, the model call task `llm_0` through genai, four events recorded.
//!
//! The overhead of a journaled model call is `agent call - raw HTTP round trip`, of which
//! `workflow without agent` is the execution's share.

use criterion::{Criterion, criterion_group, criterion_main};
use flux::ai::{ProviderSettings, Providers};
use flux::prelude::*;
use flux_suite::ai::{Dialect, Script, ScriptedProvider, Turn};

#[flux::workflow]
async fn one_model_call(ctx: ExecutionContext<u32>) -> flux::Result<String> {
    flux::ai::agent("You answer.")
        .model("openai/bench")
        .name("chat")
        .stream(false)
        .call(format!("question {}", ctx.input()))
        .await
}

#[flux::workflow]
async fn no_agent(ctx: ExecutionContext<u32>) -> flux::Result<String> {
    Ok(format!("answer {}", ctx.input()))
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let script = Script::new().model("bench", vec![Turn::Text("The answer is forty two.".into())]);
    let provider = rt.block_on(ScriptedProvider::start(Dialect::OpenAi, script)).expect("provider").require_key("k");
    let engine = Engine::in_memory();
    flux::secrets::set(&engine, "key", "k").expect("secret");
    let settings = ProviderSettings::new().base_url(provider.base_url()).api_key_secret("key");
    let engine = engine.with_state(Providers::new().provider("openai", settings));

    // The body the agent sends, taken from its first request.
    let first = rt.block_on(one_model_call.on(&engine).run(0)).expect("run");
    assert_eq!(first.output().map(String::as_str), Some("The answer is forty two."), "{:?}", first.error());
    let body = provider.requests()[0].body.clone();
    let url = format!("{}chat/completions", provider.base_url());
    let http = reqwest::Client::new();

    let mut group = c.benchmark_group("ai");
    group.bench_function("raw HTTP round trip", |b| {
        b.iter(|| {
            let response =
                rt.block_on(http.post(&url).bearer_auth("k").json(&body).send()).expect("the provider answers");
            assert!(response.status().is_success());
            rt.block_on(response.bytes()).expect("body");
        })
    });
    let mut i = 0u32;
    group.bench_function("workflow without agent", |b| {
        b.iter(|| {
            i += 1;
            rt.block_on(no_agent.on(&engine).run(i)).expect("run");
        })
    });
    group.bench_function("agent call (journaled)", |b| {
        b.iter(|| {
            i += 1;
            let done = rt.block_on(one_model_call.on(&engine).run(i)).expect("run");
            assert!(done.output().is_some(), "{:?}", done.error());
        })
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(1000);
    targets = bench
}
criterion_main!(benches);
