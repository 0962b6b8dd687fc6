//! AI agents (`flux::ai`, SPEC §15, docs/design.md §19): against the scripted provider of
//! `flux_suite::ai`, which speaks OpenAI's, Anthropic's, Gemini's and Ollama's wire formats on
//! loopback and checks every request against the provider's documented shape.

use std::future::IntoFuture as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use flux::TaskOptions;
use flux::ai::{
    AgentOutput, Approval, ApprovalRequest, ProviderSettings, Providers, Skill, Skills, Tool, WorkingMemory,
};
use flux::prelude::*;
use flux_suite::ai::{Dialect, Script, ScriptedProvider, Turn};
use futures::StreamExt as _;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

const KEY: &str = "sk-test-0123456789";

/// The provider name of a dialect in model strings.
fn provider_name(dialect: Dialect) -> &'static str {
    match dialect {
        Dialect::OpenAi => "openai",
        Dialect::Anthropic => "anthropic",
        Dialect::Gemini => "google",
        Dialect::Ollama => "ollama",
    }
}

/// A scripted provider of `dialect` and an in-memory engine whose agents reach it, the key in
/// the engine's secrets.
async fn setup(dialect: Dialect, script: Script) -> (ScriptedProvider, Engine) {
    let mut provider = ScriptedProvider::start(dialect, script).await.expect("the scripted provider starts");
    let mut settings = ProviderSettings::new().base_url(provider.base_url());
    if dialect != Dialect::Ollama {
        provider = provider.require_key(KEY);
        settings = settings.api_key_secret("model_key");
    }
    let engine = Engine::in_memory();
    flux::secrets::set(&engine, "model_key", KEY).unwrap();
    let engine = engine.with_state(Providers::new().provider(provider_name(dialect), settings));
    (provider, engine)
}

/// The (type, name) of every task event.
fn task_events(events: &[flux::Event]) -> Vec<(EventType, String)> {
    use EventType::*;
    let task_kinds =
        [TaskStarted, TaskCompleted, TaskFailed, TaskPaused, TaskResumed, TaskRetryStarted, TaskRetryFailed];
    events.iter().filter(|e| task_kinds.contains(&e.kind())).map(|e| (e.kind(), e.name().to_string())).collect()
}

/// The names of the tasks started, in order.
fn started(events: &[flux::Event]) -> Vec<String> {
    task_events(events).into_iter().filter(|(k, _)| *k == EventType::TaskStarted).map(|(_, n)| n).collect()
}

/// The tool results (`role: tool` messages) an OpenAI-format request sends back.
fn tool_results(body: &Value) -> Vec<Value> {
    body["messages"].as_array().unwrap().iter().filter(|m| m["role"] == "tool").map(|m| m["content"].clone()).collect()
}

fn expect(pairs: &[(EventType, &str)]) -> Vec<(EventType, String)> {
    pairs.iter().map(|(k, n)| (*k, n.to_string())).collect()
}

static WEATHER_CALLS: AtomicU32 = AtomicU32::new(0);

/// Looks up the current weather of a city.
#[flux::task]
async fn get_weather(city: String) -> String {
    WEATHER_CALLS.fetch_add(1, Ordering::SeqCst);
    format!("{city}: 21 degrees Celsius, sunny")
}

/// Converts a temperature from Celsius to Fahrenheit.
#[flux::task]
async fn to_fahrenheit(celsius: f64) -> f64 {
    celsius * 9.0 / 5.0 + 32.0
}

/// The typed answer of the weather agent.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
struct Forecast {
    city: String,
    fahrenheit: f64,
    summary: String,
}

/// The weather agent on the model named by the input, with two tools and a typed answer.
#[flux::workflow]
async fn weather(ctx: ExecutionContext<String>) -> flux::Result<AgentOutput<Forecast>> {
    let agent = flux::ai::agent("You are a weather assistant.")
        .model(ctx.input())
        .name("weatherman")
        .tools([get_weather::tool(), to_fahrenheit::tool()])
        .response_format::<Forecast>();
    agent.call("What is the weather in Paris, in Fahrenheit?").with_usage().await
}

fn forecast() -> Forecast {
    Forecast { city: "Paris".into(), fahrenheit: 69.8, summary: "Sunny and mild.".into() }
}

fn two_tools_then_answer() -> Vec<Turn> {
    vec![
        Turn::ToolCalls(vec![
            ("get_weather".into(), json!({"city": "Paris"})),
            ("to_fahrenheit".into(), json!({"celsius": 21.0})),
        ]),
        Turn::Text(serde_json::to_string(&forecast()).unwrap()),
    ]
}

/// The SPEC §15 journal of a turn with two tool calls and a typed answer.
fn weather_journal() -> Vec<(EventType, String)> {
    use EventType::*;
    expect(&[
        (TaskStarted, "weatherman"),
        (TaskStarted, "llm_0"),
        (TaskCompleted, "llm_0"),
        (TaskStarted, "get_weather"),
        (TaskCompleted, "get_weather"),
        (TaskStarted, "to_fahrenheit"),
        (TaskCompleted, "to_fahrenheit"),
        (TaskStarted, "llm_1"),
        (TaskCompleted, "llm_1"),
        (TaskCompleted, "weatherman"),
    ])
}

/// Where each provider's structured-output mode shows in the request body.
fn structured_mode(dialect: Dialect, body: &Value) -> bool {
    match dialect {
        Dialect::OpenAi => body["response_format"]["type"] == "json_schema",
        Dialect::Anthropic => body["output_config"]["format"]["type"] == "json_schema",
        Dialect::Gemini => {
            body["generationConfig"]["responseMimeType"] == "application/json"
                && body["generationConfig"]["responseJsonSchema"].is_object()
        }
        // genai sends Ollama no schema: its JSON mode, the schema in the system prompt.
        Dialect::Ollama => body["format"] == "json",
    }
}

/// Where each provider's tool definitions are, as (name, description) pairs.
fn tool_definitions(dialect: Dialect, body: &Value) -> Vec<(String, String)> {
    let text = |v: &Value| v.as_str().unwrap_or_default().to_string();
    match dialect {
        Dialect::OpenAi | Dialect::Ollama => body["tools"]
            .as_array()
            .map(|tools| {
                tools.iter().map(|t| (text(&t["function"]["name"]), text(&t["function"]["description"]))).collect()
            })
            .unwrap_or_default(),
        Dialect::Anthropic => body["tools"]
            .as_array()
            .map(|tools| tools.iter().map(|t| (text(&t["name"]), text(&t["description"]))).collect())
            .unwrap_or_default(),
        Dialect::Gemini => body["tools"][0]["functionDeclarations"]
            .as_array()
            .map(|tools| tools.iter().map(|t| (text(&t["name"]), text(&t["description"]))).collect())
            .unwrap_or_default(),
    }
}

async fn two_tool_calls_and_a_typed_answer(dialect: Dialect) {
    let model = format!("{}/m1", provider_name(dialect));
    let (provider, engine) = setup(dialect, Script::new().model("m1", two_tools_then_answer())).await;
    let done = weather.on(&engine).run(model).await.unwrap();
    assert_eq!(done.state(), ExecutionState::Completed, "{:?}", done.error());
    let out = done.output().unwrap();
    assert_eq!(out.output, forecast());
    assert!(out.usage.input_tokens > 0 && out.usage.output_tokens > 0, "{:?}", out.usage);
    assert_eq!(task_events(done.events()), weather_journal());
    let requests = provider.requests();
    assert_eq!(requests.len(), 2, "one request per model call");
    assert!(provider.violations().is_empty(), "{:?}", provider.violations());
    let definitions = tool_definitions(dialect, &requests[0].body);
    assert_eq!(
        definitions,
        vec![
            ("get_weather".to_string(), "Looks up the current weather of a city.".to_string()),
            ("to_fahrenheit".to_string(), "Converts a temperature from Celsius to Fahrenheit.".to_string()),
        ]
    );
    for request in &requests {
        assert!(structured_mode(dialect, &request.body), "{dialect}: {}", request.body);
        assert!(!request.stream, "no streaming with a response format");
    }
    // The usage summed on the agent's completion is the sum of its model calls'.
    let llm_usage: u64 = done
        .events()
        .iter()
        .filter(|e| e.kind() == EventType::TaskCompleted && e.name().starts_with("llm_"))
        .map(|e| e.value::<flux::ai::ModelResponse>().unwrap().usage.total_tokens())
        .sum();
    assert_eq!(out.usage.total_tokens(), llm_usage);

    // Replaying the completed execution asks no model and runs no tool.
    let before = WEATHER_CALLS.load(Ordering::SeqCst);
    let again = weather.on(&engine).replay(done.execution_id()).await.unwrap();
    assert_eq!(again.output().unwrap().output, forecast());
    assert_eq!(provider.requests().len(), 2);
    assert_eq!(WEATHER_CALLS.load(Ordering::SeqCst), before);
}

/// A plain-text agent that streams.
#[flux::workflow]
async fn chatty(ctx: ExecutionContext<String>) -> flux::Result<String> {
    flux::ai::agent("You answer briefly.").model(ctx.input()).name("chatty").call("What is six times seven?").await
}

async fn tokens_stream_as_progress(dialect: Dialect) {
    let model = format!("{}/m2", provider_name(dialect));
    let script = Script::new().model("m2", vec![Turn::Text("Six times seven is forty two".into())]);
    let (provider, engine) = setup(dialect, script).await;
    let stream = chatty.on(&engine).stream(model).await.unwrap();
    let id = stream.execution_id().to_string();
    let events: Vec<flux::Event> = stream.map(|e| e.unwrap()).collect().await;
    let tokens: Vec<String> = events
        .iter()
        .filter(|e| e.kind() == EventType::TaskProgress)
        .map(|e| e.value::<Value>().unwrap()["token"].as_str().unwrap().to_string())
        .collect();
    assert!(tokens.len() > 1, "{dialect}: tokens come one chunk at a time: {tokens:?}");
    assert_eq!(tokens.concat().trim(), "Six times seven is forty two");
    let first_token = events.iter().position(|e| e.kind() == EventType::TaskProgress).unwrap();
    let llm_done = events
        .iter()
        .position(|e| e.kind() == EventType::TaskCompleted && e.name() == "llm_0")
        .expect("llm_0 completes");
    assert!(first_token < llm_done, "tokens arrive before the model call completes");
    assert!(events.iter().filter(|e| e.kind() == EventType::TaskProgress).all(|e| e.name() == "llm_0"));
    let requests = provider.requests();
    assert_eq!(requests.len(), 1);
    assert!(requests[0].stream, "{dialect}: the request asks for a stream");
    assert!(provider.violations().is_empty(), "{:?}", provider.violations());
    // Tokens are never stored.
    let stored = engine.store().load(&id).unwrap().unwrap();
    assert!(stored.events.iter().all(|e| e.kind() != EventType::TaskProgress));
}

macro_rules! per_provider {
    ($($module:ident => $dialect:expr),* $(,)?) => {$(
        mod $module {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn two_tool_calls_and_a_typed_answer() {
                super::two_tool_calls_and_a_typed_answer($dialect).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn tokens_stream_as_progress() {
                super::tokens_stream_as_progress($dialect).await;
            }
        }
    )*};
}

per_provider! {
    openai => flux_suite::ai::Dialect::OpenAi,
    anthropic => flux_suite::ai::Dialect::Anthropic,
    gemini => flux_suite::ai::Dialect::Gemini,
    ollama => flux_suite::ai::Dialect::Ollama,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rate_limit_is_retried_after_the_wait_the_provider_asks() {
    let turns = vec![Turn::Fail {
        status: 429,
        retry_after: Some(1),
        message: "Rate limit reached".into(),
        then: Box::new(Turn::Text("Fine.".into())),
    }];
    let (provider, engine) = setup(Dialect::OpenAi, Script::new().model("m3", turns)).await;
    #[flux::workflow]
    async fn patient(ctx: ExecutionContext<String>) -> flux::Result<String> {
        let quick = TaskOptions::new().retry_max_attempts(2).retry_delay(Duration::from_millis(10));
        flux::ai::agent("Be brief.").model(ctx.input()).stream(false).model_options(quick).call("How are you?").await
    }
    let started = Instant::now();
    let done = patient.on(&engine).run("openai/m3".to_string()).await.unwrap();
    let took = started.elapsed();
    assert_eq!(done.output().map(String::as_str), Some("Fine."), "{:?}", done.error());
    assert!(took >= Duration::from_millis(950), "Retry-After: 1 is honoured over a 10 ms delay: {took:?}");
    assert!(took < Duration::from_secs(5), "{took:?}");
    let retry = done.events().iter().find(|e| e.kind() == EventType::TaskRetryStarted).expect("a retry");
    assert_eq!(retry.value::<Value>().unwrap()["current_delay"], json!(1.0));
    assert_eq!(provider.requests().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_key_fails_at_once_and_for_good() {
    let (provider, engine) =
        setup(Dialect::Anthropic, Script::new().model("m4", vec![Turn::Text("never".into())])).await;
    // The engine's secret holds another key than the one the provider wants.
    flux::secrets::set(&engine, "model_key", "sk-wrong").unwrap();
    let failed = chatty.on(&engine).run("anthropic/m4".to_string()).await.unwrap();
    assert_eq!(failed.state(), ExecutionState::Failed);
    let error = failed.error().unwrap();
    assert!(error.is_terminal(), "{error:?}");
    assert_eq!(error.http_status(), Some(401));
    assert!(error.message().contains("provider `anthropic` refused the key for model `m4`"), "{error}");
    assert!(!format!("{error:?}").contains("sk-wrong") && !format!("{error:?}").contains(KEY));
    assert_eq!(provider.requests().len(), 1, "a refused key is not tried again");
    let kinds = flux_suite::kinds(failed.events());
    assert!(!kinds.contains(&EventType::TaskRetryStarted), "{kinds:?}");
    // The key is never recorded.
    for event in failed.events() {
        let text = format!("{:?}", event.value::<Value>());
        assert!(!text.contains("sk-wrong") && !text.contains(KEY), "{text}");
    }
}

/// A typed agent with no tools.
#[flux::workflow]
async fn typed(ctx: ExecutionContext<String>) -> flux::Result<Forecast> {
    flux::ai::agent("You forecast.")
        .model(ctx.input())
        .name("forecaster")
        .response_format::<Forecast>()
        .call("Paris?")
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_that_does_not_fit_is_asked_for_again_once() {
    let good = serde_json::to_string(&forecast()).unwrap();
    let turns = vec![Turn::Text("{\"city\": \"Paris\"}".into()), Turn::Text(format!("```json\n{good}\n```"))];
    let (provider, engine) = setup(Dialect::OpenAi, Script::new().model("m5", turns)).await;
    let done = typed.on(&engine).run("openai/m5".to_string()).await.unwrap();
    assert_eq!(done.output(), Some(&forecast()), "{:?}", done.error());
    let requests = provider.requests();
    assert_eq!(requests.len(), 2);
    let corrective = requests[1].body["messages"].as_array().unwrap().last().unwrap()["content"].as_str().unwrap();
    assert!(
        corrective.contains("did not match the required schema") && corrective.contains("missing field"),
        "{corrective}"
    );

    // Twice wrong: the agent fails with the validation error.
    let turns = vec![Turn::Text("not json".into()), Turn::Text("{\"city\": 3}".into())];
    let (provider, engine) = setup(Dialect::OpenAi, Script::new().model("m6", turns)).await;
    let failed = typed.on(&engine).run("openai/m6".to_string()).await.unwrap();
    let error = failed.error().unwrap();
    assert!(error.is_terminal(), "{error:?}");
    assert!(error.message().contains("does not match the schema `Forecast`"), "{error}");
    assert!(error.message().contains("invalid type"), "{error}");
    assert_eq!(provider.requests().len(), 2);
}

/// Three calls sharing a working memory; then pauses so that a resume replays it all.
#[flux::workflow]
async fn remembering(ctx: ExecutionContext<String>) -> flux::Result<Vec<String>> {
    let memory = WorkingMemory::new().window(4);
    let agent =
        flux::ai::agent("You remember.").model(ctx.input()).name("friend").stream(false).working_memory(memory.clone());
    let mut answers = vec![agent.call("My name is Ada.").await?, agent.call("I like tea.").await?];
    let _: bool = flux::pause("halfway").await?;
    answers.push(agent.call("What do you know about me?").await?);
    answers.push(memory.recall().len().to_string());
    Ok(answers)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn working_memory_carries_the_conversation_across_calls_and_replays() {
    let turns = vec![
        Turn::Text("Hello Ada.".into()),
        Turn::Text("Tea it is.".into()),
        Turn::Text("Your name is Ada and you like tea.".into()),
    ];
    let (provider, engine) = setup(Dialect::OpenAi, Script::new().model("m7", turns)).await;
    let paused = remembering.on(&engine).run("openai/m7".to_string()).await.unwrap();
    assert_eq!(paused.state(), ExecutionState::Paused, "{:?}", paused.error());
    let done = remembering.on(&engine).resume(paused.execution_id(), true).await.unwrap();
    assert_eq!(done.state(), ExecutionState::Completed, "{:?}", done.error());
    let answers = done.output().unwrap();
    assert_eq!(answers[2], "Your name is Ada and you like tea.");
    assert_eq!(answers[3], "4", "the window keeps the last four of six messages");
    // The resume replayed the first two calls (and their memory) from the log.
    let requests = provider.requests();
    assert_eq!(requests.len(), 3);
    let roles = |i: usize| -> Vec<(String, String)> {
        requests[i].body["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| (m["role"].as_str().unwrap().to_string(), m["content"].as_str().unwrap_or_default().to_string()))
            .filter(|(role, _)| role != "system")
            .collect()
    };
    let pair = |r: &str, c: &str| (r.to_string(), c.to_string());
    assert_eq!(roles(0), vec![pair("user", "My name is Ada.")]);
    assert_eq!(
        roles(1),
        vec![pair("user", "My name is Ada."), pair("assistant", "Hello Ada."), pair("user", "I like tea.")]
    );
    assert_eq!(
        roles(2),
        vec![
            pair("user", "My name is Ada."),
            pair("assistant", "Hello Ada."),
            pair("user", "I like tea."),
            pair("assistant", "Tea it is."),
            pair("user", "What do you know about me?"),
        ]
    );
    let memorized: Vec<String> = task_events(done.events())
        .into_iter()
        .filter(|(k, n)| *k == EventType::TaskCompleted && n.starts_with("wm_"))
        .map(|(_, n)| n)
        .collect();
    assert_eq!(
        memorized,
        ["wm_memorize_0", "wm_memorize_1", "wm_memorize_2", "wm_memorize_3", "wm_memorize_4", "wm_memorize_5"]
    );
}

static EMAILS_SENT: AtomicU32 = AtomicU32::new(0);

/// Sends an email.
#[flux::task]
async fn send_email(to: String, body: String) -> String {
    EMAILS_SENT.fetch_add(1, Ordering::SeqCst);
    format!("sent to {to}: {body}")
}

#[flux::workflow]
async fn mailer(ctx: ExecutionContext<String>) -> flux::Result<String> {
    let agent = flux::ai::agent("You send emails.")
        .model(ctx.input())
        .name("mailer")
        .stream(false)
        .tool(send_email::tool().requires_approval(true));
    agent.call("Tell Bob the build is green.").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tool_that_requires_approval_pauses_and_a_rejection_reaches_the_model() {
    let turns = vec![
        Turn::ToolCalls(vec![("send_email".into(), json!({"to": "bob@example.com", "body": "green"}))]),
        Turn::Text("I did not send it: it was rejected.".into()),
    ];
    let (provider, engine) = setup(Dialect::OpenAi, Script::new().model("m8", turns)).await;
    let paused = mailer.on(&engine).run("openai/m8".to_string()).await.unwrap();
    assert_eq!(paused.state(), ExecutionState::Paused, "{:?}", paused.error());
    let request: ApprovalRequest = paused.pause_output().unwrap().expect("the pause says what is asked");
    assert_eq!((request.agent.as_str(), request.tool.as_str()), ("mailer", "send_email"));
    assert_eq!(request.arguments["to"], "bob@example.com");
    let before = EMAILS_SENT.load(Ordering::SeqCst);
    let done = mailer.on(&engine).resume(paused.execution_id(), Approval::reject("not on a Friday")).await.unwrap();
    assert_eq!(done.output().map(String::as_str), Some("I did not send it: it was rejected."), "{:?}", done.error());
    assert_eq!(EMAILS_SENT.load(Ordering::SeqCst), before, "a rejected call does not run");
    let requests = provider.requests();
    assert_eq!(requests.len(), 2, "the resume asked the model only for the next turn");
    let told =
        requests[1].body["messages"].as_array().unwrap().last().unwrap()["content"].as_str().unwrap().to_string();
    assert_eq!(told, "Error: a person rejected this call of `send_email`: not on a Friday");
    use EventType::*;
    let journal = task_events(done.events());
    assert!(journal.contains(&(TaskPaused, "pause".to_string())), "{journal:?}");
    assert!(!journal.iter().any(|(_, n)| n == "send_email"), "{journal:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_approved_call_runs_once() {
    let turns = vec![
        Turn::ToolCalls(vec![("send_email".into(), json!({"to": "carol@example.com", "body": "green"}))]),
        Turn::Text("Sent.".into()),
    ];
    let (provider, engine) = setup(Dialect::OpenAi, Script::new().model("m9", turns)).await;
    let paused = mailer.on(&engine).run("openai/m9".to_string()).await.unwrap();
    let done = mailer.on(&engine).resume(paused.execution_id(), Approval::approve()).await.unwrap();
    assert_eq!(done.output().map(String::as_str), Some("Sent."), "{:?}", done.error());
    let told = provider.requests()[1].body["messages"].as_array().unwrap().last().unwrap()["content"].clone();
    assert_eq!(told, "sent to carol@example.com: green");
}

/// Fails for every city but Paris.
#[flux::task]
async fn lookup(city: String) -> Result<String, std::io::Error> {
    if city == "Paris" { Ok("found".into()) } else { Err(std::io::Error::other(format!("no city named {city}"))) }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_unknown_tools_and_the_call_limit_go_back_to_the_model() {
    #[flux::workflow]
    async fn searcher(ctx: ExecutionContext<String>) -> flux::Result<String> {
        flux::ai::agent("You search.")
            .model(ctx.input())
            .name("searcher")
            .stream(false)
            .max_tool_calls(4)
            .tool(lookup::tool().read_only(true))
            .call("Find Atlantis.")
            .await
    }
    let turns = vec![
        Turn::ToolCalls(vec![("lookup".into(), json!({"city": "Atlantis"})), ("teleport".into(), json!({}))]),
        Turn::ToolCalls(vec![("lookup".into(), json!({"city": "Paris"})), ("lookup".into(), json!({"town": 1}))]),
        Turn::ToolCalls(vec![("lookup".into(), json!({"city": "Mu"}))]),
        Turn::Text("Atlantis does not exist.".into()),
    ];
    let (provider, engine) = setup(Dialect::OpenAi, Script::new().model("m10", turns)).await;
    let done = searcher.on(&engine).run("openai/m10".to_string()).await.unwrap();
    assert_eq!(done.output().map(String::as_str), Some("Atlantis does not exist."), "{:?}", done.error());
    let requests = provider.requests();
    assert_eq!(requests.len(), 4);
    let tool_messages = |i: usize| -> Vec<String> {
        tool_results(&requests[i].body).iter().map(|m| m.as_str().unwrap().to_string()).collect()
    };
    assert_eq!(
        tool_messages(1),
        ["Error: no city named Atlantis", "Error: there is no tool `teleport`; the tools are: lookup"]
    );
    assert_eq!(
        tool_messages(2)[2..],
        [
            "found".to_string(),
            "Error: argument `city` of tool `lookup`: invalid type: null, expected a string".to_string()
        ]
    );
    // After four calls the third turn's is not made: no tools in the last request, which asks
    // for the final answer.
    assert!(requests[3].body.get("tools").is_none(), "{}", requests[3].body);
    let last =
        requests[3].body["messages"].as_array().unwrap().last().unwrap()["content"].as_str().unwrap().to_string();
    assert_eq!(last, "You must provide your final answer now. Do not call any more tools.");
    use EventType::*;
    let journal = task_events(done.events());
    let names: Vec<&str> = journal.iter().filter(|(k, _)| *k == TaskStarted).map(|(_, n)| n.as_str()).collect();
    // Tool calls after the first turn carry the turn (`lookup_1`); the bad arguments never
    // became a call.
    assert_eq!(names, ["searcher", "llm_0", "lookup", "llm_1", "lookup_1", "llm_2", "llm_3"]);
    assert!(journal.contains(&(TaskFailed, "lookup".to_string())), "{journal:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agents_skills_and_functions_are_tools() {
    #[flux::workflow]
    async fn editor(ctx: ExecutionContext<String>) -> flux::Result<String> {
        let model = ctx.input().clone();
        let writer = flux::ai::agent("You write one sentence.\nNothing more.")
            .model(format!("{model}-writer"))
            .name("writer")
            .stream(false);
        let skills =
            Skills::new([Skill::parse("tone", "---\nname: tone\ndescription: The house style\n---\nBe brief.")]);
        let clock = Tool::from_fn(
            "utc_offset",
            "The UTC offset of a city.",
            json!({"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}),
            |args| async move { Ok(json!(if args["city"] == "Paris" { 1 } else { 0 })) },
        );
        flux::ai::agent("You edit.")
            .model(model)
            .name("editor")
            .stream(false)
            .skills(skills)
            .tools([writer.as_tool(), clock])
            .call("Write about Paris.")
            .await
    }
    let script = Script::new()
        .model(
            "m11",
            vec![
                Turn::ToolCalls(vec![
                    ("use_skill".into(), json!({"name": "tone"})),
                    ("utc_offset".into(), json!({"city": "Paris"})),
                ]),
                Turn::ToolCalls(vec![("writer".into(), json!({"instruction": "Paris, briefly", "context": "UTC+1"}))]),
                Turn::Text("Paris: bright, brief.".into()),
            ],
        )
        .model("m11-writer", vec![Turn::Text("Paris shines.".into())]);
    let (provider, engine) = setup(Dialect::OpenAi, script).await;
    let done = editor.on(&engine).run("openai/m11".to_string()).await.unwrap();
    assert_eq!(done.output().map(String::as_str), Some("Paris: bright, brief."), "{:?}", done.error());
    let started = started(done.events());
    assert_eq!(started, ["editor", "llm_0", "use_skill", "utc_offset", "llm_1", "writer_1", "llm_0", "llm_2"]);
    let requests = provider.requests();
    let system = requests[0].body["messages"][0]["content"].as_str().unwrap().to_string();
    assert!(system.contains("- tone: The house style"), "{system}");
    let results = tool_results(&requests[1].body);
    assert_eq!(results, [json!("Be brief."), json!("1")]);
    let writer_request = requests.iter().find(|r| r.model == "m11-writer").unwrap();
    let asked =
        writer_request.body["messages"].as_array().unwrap().last().unwrap()["content"].as_str().unwrap().to_string();
    assert_eq!(asked, "Paris, briefly\n\nContext from previous work:\n\nUTC+1");
    let tools = tool_definitions(Dialect::OpenAi, &requests[0].body);
    assert!(tools.contains(&("writer".to_string(), "You write one sentence.".to_string())), "{tools:?}");
    assert!(provider.violations().is_empty(), "{:?}", provider.violations());
}

#[tokio::test]
async fn an_agent_without_a_model_or_provider_says_what_is_missing() {
    #[flux::workflow]
    async fn nameless(ctx: ExecutionContext<String>) -> flux::Result<String> {
        let agent = flux::ai::agent("x").name("lost");
        let agent = if ctx.input().is_empty() { agent } else { agent.model(ctx.input()) };
        agent.call("hi").await
    }
    let engine = Engine::in_memory();
    let failed = nameless.on(&engine).run(String::new()).await.unwrap();
    assert!(failed.error().unwrap().message().contains("agent `lost` has no model"), "{:?}", failed.error());
    let failed = nameless.on(&engine).run("gpt-4o".to_string()).await.unwrap();
    assert!(failed.error().unwrap().message().contains("write it as `provider/model`"), "{:?}", failed.error());
    let failed = nameless.on(&engine).run("nobody/m".to_string()).await.unwrap();
    assert!(failed.error().unwrap().message().contains("no provider `nobody`"), "{:?}", failed.error());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tool_arguments_carry_the_json_schema_of_their_types() {
    #[derive(Serialize, Deserialize, schemars::JsonSchema)]
    struct Query {
        /// What to look for.
        text: String,
        limit: Option<u32>,
    }
    /// Searches the archive.
    #[flux::task]
    async fn search(query: Query, exact: bool) -> Vec<String> {
        vec![format!("{}:{}:{exact}", query.text, query.limit.unwrap_or(10))]
    }
    let tool = search::tool();
    assert_eq!(tool.definition().description, "Searches the archive.");
    let schema = &tool.definition().parameters;
    assert_eq!(schema["required"], json!(["query", "exact"]));
    assert_eq!(schema["properties"]["exact"]["type"], "boolean");
    assert_eq!(schema["properties"]["query"]["properties"]["text"]["description"], "What to look for.");
    assert!(schema["properties"]["query"].get("$ref").is_none(), "schemas are inlined: {schema}");
    let _ = Arc::new(tool);
}

/// Lines of a file (none when it does not exist yet).
fn lines(file: &std::path::Path) -> Vec<String> {
    std::fs::read_to_string(file).map(|t| t.lines().map(str::to_string).collect()).unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_after_the_first_tool_a_new_process_asks_no_model_twice_and_records_once() {
    let turns = vec![
        Turn::ToolCalls(vec![("record".into(), json!({"note": "a"})), ("wait".into(), json!({}))]),
        Turn::Text("Recorded and waited.".into()),
    ];
    let provider =
        ScriptedProvider::start(Dialect::OpenAi, Script::new().model("crash", turns)).await.unwrap().require_key(KEY);
    let dir = tempfile::tempdir().unwrap();
    let ledger = dir.path().join("ledger.txt");
    let child = |mode: &str| {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_flux-ai-child"));
        cmd.args([mode, dir.path().to_str().unwrap(), "clerk-1", &provider.base_url()])
            .env("FLUX_TEST_MODEL_KEY", KEY)
            .env("FLUX_AI_LEDGER", &ledger)
            .stderr(std::process::Stdio::inherit());
        cmd
    };
    let mut first = child("run").env("FLUX_AI_BLOCK", "1").stdout(std::process::Stdio::null()).spawn().unwrap();
    // Wait until `record` completed and `wait` started, both stored; then SIGKILL.
    let deadline = Instant::now() + Duration::from_secs(60);
    let db = dir.path().join("flux.db");
    loop {
        assert!(first.try_wait().unwrap().is_none(), "the first process ended on its own");
        assert!(Instant::now() < deadline, "the tools never ran: {:?}", lines(&ledger));
        if lines(&ledger).contains(&"waiting".to_string()) {
            let engine = Engine::open(&db).unwrap();
            let stored = engine.store().load("clerk-1").unwrap().unwrap();
            let journal = task_events(&stored.events);
            if journal.contains(&(EventType::TaskCompleted, "record".into()))
                && journal.contains(&(EventType::TaskStarted, "wait".into()))
            {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    first.kill().unwrap();
    assert!(!first.wait().unwrap().success());
    assert_eq!(provider.requests().len(), 1);

    let out = child("replay").output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && stdout.contains("state: COMPLETED"), "{stdout}");
    assert!(stdout.contains("output: Recorded and waited."), "{stdout}");
    // The model saw turn 0 once (before the kill) and turn 1 once (after it).
    let turns: Vec<usize> = provider.requests().iter().map(|r| r.turn).collect();
    assert_eq!(turns, [0, 1], "no finished turn is asked again");
    // `record` finished before the kill: it ran once. `wait` had only started: it ran again.
    assert_eq!(lines(&ledger), ["record a", "waiting", "waiting"]);
    assert!(provider.violations().is_empty(), "{:?}", provider.violations());
}

#[cfg(feature = "mcp")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mcp_tools_are_agent_tools() {
    #[flux::workflow]
    async fn calculator(ctx: ExecutionContext<(String, String)>) -> flux::Result<String> {
        let (model, url) = ctx.input().clone();
        let tools = flux::mcp::client(url).name("calc").discover().await?;
        flux::ai::agent("You calculate.")
            .model(model)
            .name("calculator")
            .stream(false)
            .tools(Tool::mcp(&tools))
            .call("2 + 40?")
            .await
    }
    let server = flux_suite::mcp::serve().await.unwrap();
    let turns = vec![
        Turn::ToolCalls(vec![("add".into(), json!({"a": 2, "b": 40})), ("fail".into(), json!({"reason": "no paper"}))]),
        Turn::Text("42".into()),
    ];
    let (provider, engine) = setup(Dialect::OpenAi, Script::new().model("m12", turns)).await;
    let done = calculator.on(&engine).run(("openai/m12".to_string(), server.url.clone())).await.unwrap();
    assert_eq!(done.output().map(String::as_str), Some("42"), "{:?}", done.error());
    let started = started(done.events());
    assert_eq!(started, ["mcp_calc_discover", "calculator", "llm_0", "add", "fail", "llm_1"]);
    let requests = provider.requests();
    let names: Vec<String> = tool_definitions(Dialect::OpenAi, &requests[0].body).into_iter().map(|(n, _)| n).collect();
    assert!(names.contains(&"add".to_string()) && names.contains(&"greet".to_string()), "{names:?}");
    let results = tool_results(&requests[1].body);
    assert_eq!(results[0], json!("42"));
    assert!(results[1].as_str().unwrap().contains("no paper"), "{results:?}");
    server.stop().await;
}

/// Two read-only tools that each wait for the other: they finish only when run together.
static MEETING: std::sync::LazyLock<tokio::sync::Barrier> = std::sync::LazyLock::new(|| tokio::sync::Barrier::new(2));

/// Meets the other.
#[flux::task]
async fn meet(who: String) -> String {
    tokio::time::timeout(Duration::from_secs(10), MEETING.wait())
        .await
        .map(|_| format!("{who} met"))
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_only_tools_of_a_turn_run_together_and_agents_run_in_parallel() {
    #[flux::workflow]
    async fn meeting(ctx: ExecutionContext<String>) -> flux::Result<Vec<String>> {
        let model = ctx.input().clone();
        let host = flux::ai::agent("You host.")
            .model(&model)
            .name("host")
            .stream(false)
            .max_tokens(64)
            .tool(meet::tool().read_only(true));
        let guest = flux::ai::agent("You visit.").model(format!("{model}-guest")).name("guest").stream(false);
        flux::parallel([host.call("Meet both.").into_future(), guest.call("Say hello.").into_future()]).await
    }
    let script = Script::new()
        .model(
            "m13",
            vec![
                Turn::ToolCalls(vec![("meet".into(), json!({"who": "ann"})), ("meet".into(), json!({"who": "bob"}))]),
                Turn::Text("Both met.".into()),
            ],
        )
        .model("m13-guest", vec![Turn::Text("Hello.".into())]);
    let (provider, engine) = setup(Dialect::OpenAi, script).await;
    let done = meeting.on(&engine).run("openai/m13".to_string()).await.unwrap();
    assert_eq!(done.output().cloned(), Some(vec!["Both met.".to_string(), "Hello.".to_string()]), "{:?}", done.error());
    let host_second = provider.requests().into_iter().find(|r| r.model == "m13" && r.turn == 1).unwrap();
    let results = tool_results(&host_second.body);
    assert_eq!(results, [json!("ann met"), json!("bob met")]);
    let first = provider.requests().into_iter().find(|r| r.model == "m13").unwrap();
    let max = first.body.get("max_completion_tokens").or_else(|| first.body.get("max_tokens")).cloned();
    assert_eq!(max, Some(json!(64)), "{}", first.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_provider_is_retried_and_not_terminal() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let settings = ProviderSettings::new().base_url(format!("http://127.0.0.1:{port}/v1/")).api_key_secret("k");
    let engine = Engine::in_memory();
    flux::secrets::set(&engine, "k", KEY).unwrap();
    let engine = engine.with_state(Providers::new().provider("openai", settings));
    #[flux::workflow]
    async fn lonely(ctx: ExecutionContext<String>) -> flux::Result<String> {
        let quick = TaskOptions::new().retry_max_attempts(1).retry_delay(Duration::from_millis(1));
        flux::ai::agent("x").model(ctx.input()).name("lonely").model_options(quick).call("anyone?").await
    }
    let failed = lonely.on(&engine).run("openai/m14".to_string()).await.unwrap();
    let error = failed.error().unwrap();
    assert!(!error.is_terminal(), "{error:?}");
    assert!(error.message().contains("provider `openai` could not be reached for model `m14`"), "{error}");
    let kinds = flux_suite::kinds(failed.events());
    assert!(kinds.contains(&EventType::TaskRetryStarted), "{kinds:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_https_provider_is_spoken_to_over_tls() {
    // A loopback listener that keeps the first bytes it gets: a TLS ClientHello starts with the
    // handshake record type 0x16 and version 0x03.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let first = std::thread::spawn(move || {
        use std::io::Read as _;
        let (mut socket, _) = listener.accept().unwrap();
        let mut bytes = [0u8; 2];
        socket.read_exact(&mut bytes).unwrap();
        bytes
    });
    let settings = ProviderSettings::new().base_url(format!("https://127.0.0.1:{port}/v1/")).api_key_secret("k");
    let engine = Engine::in_memory();
    flux::secrets::set(&engine, "k", KEY).unwrap();
    let engine = engine.with_state(Providers::new().provider("openai", settings));
    #[flux::workflow]
    async fn secure(ctx: ExecutionContext<String>) -> flux::Result<String> {
        let once = TaskOptions::new().retry_max_attempts(0);
        flux::ai::agent("x").model(ctx.input()).name("secure").model_options(once).call("hello?").await
    }
    let failed = secure.on(&engine).run("openai/m15".to_string()).await.unwrap();
    assert_eq!(first.join().unwrap(), [0x16, 0x03], "the request began a TLS handshake");
    let error = failed.error().unwrap();
    assert!(error.message().contains("provider `openai` could not be reached for model `m15`"), "{error}");
}

/// Through a server and a worker: the tokens of an agent on the worker reach a client of the
/// server's HTTP stream as progress, before the execution completes.
#[cfg(feature = "server")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_reach_the_http_stream_from_a_worker() {
    use flux::client::StreamEvent;
    let script = Script::new().model("m16", vec![Turn::Text("Six times seven is forty two".into())]);
    let provider = ScriptedProvider::start(Dialect::Ollama, script).await.unwrap();
    let providers = Providers::new().provider("ollama", ProviderSettings::new().base_url(provider.base_url()));
    let running = flux::server::Server::new()
        .engine(&Engine::in_memory())
        .bootstrap_token("boot-0123456789abcdef")
        .admin_token("admin-0123456789abcdef")
        .bind("127.0.0.1:0")
        .await
        .unwrap();
    let worker = tokio::spawn(
        flux::worker::Worker::new(running.url())
            .name("agent-worker")
            .bootstrap_token("boot-0123456789abcdef")
            .state(providers)
            .register(chatty)
            .run(),
    );
    let client = flux::Client::builder(running.url()).timeout(Duration::from_secs(30)).build().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while client.workflows().await.unwrap().is_empty() {
        assert!(Instant::now() < deadline, "the worker did not register");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let stream = client.workflow::<String, String>("chatty").stream(&"ollama/m16".to_string()).await.unwrap();
    let items: Vec<StreamEvent<String>> =
        tokio::time::timeout(Duration::from_secs(30), stream.map(|item| item.unwrap()).collect()).await.unwrap();
    let tokens: Vec<String> = items
        .iter()
        .filter_map(|item| match item {
            StreamEvent::Progress(p) if p.name() == "llm_0" => p.value_json()["token"].as_str().map(String::from),
            _ => None,
        })
        .collect();
    assert!(tokens.len() > 1, "{tokens:?}");
    assert_eq!(tokens.concat().trim(), "Six times seven is forty two");
    let first_token = items.iter().position(|i| matches!(i, StreamEvent::Progress(_))).unwrap();
    let completed = items
        .iter()
        .position(|i| matches!(i, StreamEvent::State(s) if s.state() == ExecutionState::Completed))
        .expect("the stream ends with the completed state");
    assert!(first_token < completed);
    worker.abort();
    running.shutdown().await.unwrap();
}
