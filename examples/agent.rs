//! A research-and-write pipeline of two AI agents: a researcher that calls a tool and answers
//! with typed findings, then a writer that turns them into an article, streaming its tokens.
//!
//! ```text
//! cargo run --example agent --features ai                              # no key, no network
//! cargo run --example agent --features ai -- --model openai/gpt-4o     # OPENAI_API_KEY set
//! cargo run --example agent --features ai -- --model ollama/llama3     # a local Ollama
//! ```
//!
//! Without `--model` both agents talk to a scripted model provider started on loopback, which
//! speaks OpenAI's chat-completions API and answers from a script: the run needs no key and no
//! network, yet every request goes over HTTP in OpenAI's wire format, as it would to OpenAI.
//!
//! It streams the execution's events: each model call is the task `llm_{n}` inside its agent's
//! task, the tool call is the task `search_notes`, and the writer's tokens arrive as progress
//! (never stored). The execution lives in `.flux/flux.db` like any other: running the workflow
//! again with the same execution id would replay both agents without asking a model.

use futures::StreamExt as _;
use serde::{Deserialize, Serialize};

use flux::ai::{ProviderKind, ProviderSettings, Providers, Usage};
use flux::prelude::*;
use flux_suite::ai::{Dialect, Script, ScriptedProvider, Turn};

/// What the pipeline is asked to write about, and the models of its two agents.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Brief {
    topic: String,
    researcher_model: String,
    writer_model: String,
}

/// What the researcher found: its typed answer (the model is given this type's JSON Schema).
#[derive(Clone, Debug, Serialize, Deserialize, schemars::JsonSchema)]
struct Findings {
    /// The topic researched.
    topic: String,
    /// Facts found in the notes, one sentence each.
    facts: Vec<String>,
}

/// What the workflow returns: the article and the tokens both agents used.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Report {
    article: String,
    usage: Usage,
}

/// The team's notes the researcher's tool searches.
const NOTES: &[&str] = &[
    "A durable workflow records each step's result, so a restarted run skips finished steps.",
    "flux keeps its event log in SQLite, in .flux/flux.db by default.",
    "Replay looks a task's id up in memory: a finished task is never run twice.",
    "An agent's model calls are tasks too, so a crash never asks the model again.",
    "Lighthouses were automated in the twentieth century.",
];

/// Searches the team's notes for sentences about a topic (any word of it, ignoring case).
#[flux::task]
async fn search_notes(query: String) -> Vec<String> {
    let words: Vec<String> = query.split_whitespace().filter(|w| w.len() > 3).map(str::to_lowercase).collect();
    NOTES
        .iter()
        .filter(|note| words.iter().any(|w| note.to_lowercase().contains(w.as_str())))
        .map(|note| note.to_string())
        .collect()
}

#[flux::workflow]
async fn research_and_write(ctx: ExecutionContext<Brief>) -> flux::Result<Report> {
    let brief = ctx.input();
    let researcher =
        flux::ai::agent("You research topics in the team's notes. Use search_notes; report only facts it returns.")
            .model(&brief.researcher_model)
            .name("researcher")
            .tool(search_notes::tool().read_only(true))
            .stream(false)
            .response_format::<Findings>();
    // Plain text, streamed: each token is a progress event of the task `llm_0` (a typed answer
    // is not streamed, since it means nothing until it is whole).
    let writer = flux::ai::agent("You write short, plain articles from the facts you are given, with a title line.")
        .model(&brief.writer_model)
        .name("writer")
        .max_tokens(800);

    let found = researcher.call(format!("Research: {}", brief.topic)).with_usage().await?;
    let facts: Vec<String> = found.output.facts.iter().map(|fact| format!("- {fact}")).collect();
    let facts = format!("Facts about {}:\n{}", found.output.topic, facts.join("\n"));
    let written = writer.call(format!("Write an article about {}.", brief.topic)).context(facts).with_usage().await?;
    let mut usage = found.usage;
    usage.add(written.usage);
    Ok(Report { article: written.output, usage })
}

/// The scripted models' answers: the researcher calls the tool, then answers with findings; the
/// writer answers with an article (streamed word by word).
fn script() -> Script {
    let findings = serde_json::json!({
        "topic": "durable workflows",
        "facts": [NOTES[0], NOTES[2], NOTES[3]],
    });
    let article = "Work that survives a crash\n\nA durable workflow writes down each step's result as it \
        finishes. When the process dies and the run starts again, the finished steps are read back \
        instead of being done twice. The same holds for an AI agent: its model calls and tool calls \
        are steps, so a crash never pays for the same answer twice.";
    Script::new()
        .model(
            "researcher",
            vec![
                Turn::ToolCalls(vec![(
                    "search_notes".into(),
                    serde_json::json!({"query": "durable workflow replay crash"}),
                )]),
                Turn::Text(findings.to_string()),
            ],
        )
        .model("writer", vec![Turn::Text(article.into())])
}

async fn run(model: Option<String>) -> Result<(), Box<dyn std::error::Error>> {
    let engine = Engine::global()?;
    let mut scripted = None;
    let (researcher_model, writer_model) = match model {
        Some(model) => (model.clone(), model),
        None => {
            let provider = ScriptedProvider::start(Dialect::OpenAi, script()).await?;
            let settings = ProviderSettings::new().kind(ProviderKind::OpenAi).base_url(provider.base_url());
            drop(engine.clone().with_state(Providers::new().provider("scripted", settings)));
            println!("models: a scripted provider at {} (OpenAI's API, no key)", provider.base_url());
            scripted = Some(provider);
            ("scripted/researcher".to_string(), "scripted/writer".to_string())
        }
    };
    let brief = Brief { topic: "durable workflows".into(), researcher_model, writer_model };

    let mut stream = research_and_write.stream(brief).await?;
    let id = stream.execution_id().to_string();
    let mut streaming = false;
    let mut tokens = 0;
    while let Some(event) = stream.next().await {
        let event = event?;
        if event.kind() == EventType::TaskProgress {
            let token = event.value::<serde_json::Value>()?.get("token").and_then(|t| t.as_str().map(String::from));
            if let Some(token) = token {
                tokens += 1;
                if !streaming {
                    print!("  tokens: ");
                    streaming = true;
                }
                print!("{token}");
            }
            continue;
        }
        if std::mem::take(&mut streaming) {
            println!();
        }
        println!("{:<20} {}", event.kind().to_string(), event.name());
    }

    let done = research_and_write.status(&id).await?;
    let Some(report) = done.output() else {
        let error = done.error().map_or_else(|| done.state().to_string(), |e| e.to_string());
        return Err(format!("execution {id} did not complete: {error}").into());
    };
    let stored = done.events().iter().filter(|e| e.kind() == EventType::TaskProgress).count();
    println!("streamed {tokens} tokens; stored: {} events, {stored} of them progress", done.events().len());
    println!("output: {} words, the article above", report.article.split_whitespace().count());
    println!("usage: {} input tokens, {} output tokens", report.usage.input_tokens, report.usage.output_tokens);
    if let Some(provider) = scripted {
        println!("model requests: {}", provider.requests().len());
        let violations = provider.violations();
        if !violations.is_empty() {
            return Err(format!("requests the provider would refuse: {violations:?}").into());
        }
    }
    println!("execution {id}: {}", done.state());
    Ok(())
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let model = match args.iter().map(String::as_str).collect::<Vec<_>>().as_slice() {
        [] => None,
        ["--model", model] => Some(model.to_string()),
        _ => {
            eprintln!(
                "usage: agent [--model provider/name]   (openai/gpt-4o, anthropic/claude-sonnet-4-5, ollama/llama3, ...)"
            );
            return std::process::ExitCode::FAILURE;
        }
    };
    match run(model).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
