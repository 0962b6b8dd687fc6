//! A support chat with an AI agent that remembers the conversation and asks a person before it
//! refunds anything.
//!
//! ```text
//! cargo run --example agent_chat --features ai                            # no key, no network
//! cargo run --example agent_chat --features ai -- --reject                # the person says no
//! cargo run --example agent_chat --features ai -- --model openai/gpt-4o   # OPENAI_API_KEY set
//! ```
//!
//! The workflow sends three customer messages to one agent sharing a working memory, so the
//! second and third answers know what was said before (each remembered message is the task
//! `wm_memorize_{n}`). The refund tool requires approval: when the model calls it, the execution
//! pauses at `approve_issue_refund` with what the model asked for, and stays paused (across a
//! restart too) until it is resumed with an [`Approval`](flux::ai::Approval). The example
//! resumes it at once, approving (or with `--reject`, rejecting) the call.
//!
//! Without `--model` the agent talks to a scripted model provider started on loopback that
//! speaks OpenAI's chat-completions API, so the run needs no key and no network.

use std::sync::atomic::{AtomicU32, Ordering};

use serde::{Deserialize, Serialize};

use flux::ai::{Approval, ApprovalRequest, ProviderKind, ProviderSettings, Providers, WorkingMemory};
use flux::prelude::*;
use flux_suite::ai::{Dialect, Script, ScriptedProvider, Turn};

/// The workflow's input: the model, and what the customer writes, in order.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Chat {
    model: String,
    messages: Vec<String>,
}

static REFUNDS: AtomicU32 = AtomicU32::new(0);

/// Refunds an order: sends `cents` back to the customer who placed order `order`.
#[flux::task]
async fn issue_refund(order: u32, cents: u64) -> String {
    REFUNDS.fetch_add(1, Ordering::SeqCst);
    format!("refunded {}.{:02} for order {order}", cents / 100, cents % 100)
}

#[flux::workflow]
async fn support_chat(ctx: ExecutionContext<Chat>) -> flux::Result<Vec<String>> {
    let chat = ctx.input();
    let support = flux::ai::agent("You are a shop's support assistant. Refund broken orders with issue_refund.")
        .model(&chat.model)
        .name("support")
        .stream(false)
        .working_memory(WorkingMemory::new().window(20))
        .tool(issue_refund::tool().requires_approval(true));
    let mut answers = Vec::new();
    for message in &chat.messages {
        answers.push(support.call(message.clone()).await?);
    }
    Ok(answers)
}

const MESSAGES: [&str; 3] = [
    "Hi! Order 1042 arrived broken: the lamp's shade is cracked. It cost $25.99.",
    "Sorry, which order was that again?",
    "Yes, please refund it.",
];

/// The scripted model's answers; the last one depends on the person's decision.
fn script(approve: bool) -> Script {
    let last = match approve {
        true => "Done: $25.99 for order 1042 is on its way back to you.",
        false => "I could not issue the refund: a colleague has to check the order first.",
    };
    Script::new().model(
        "support",
        vec![
            Turn::Text("I am sorry to hear that. I can refund order 1042 ($25.99). Shall I?".into()),
            Turn::Text("It was order 1042, the lamp with the cracked shade.".into()),
            Turn::ToolCalls(vec![("issue_refund".into(), serde_json::json!({"order": 1042, "cents": 2599}))]),
            Turn::Text(last.into()),
        ],
    )
}

async fn run(model: Option<String>, approve: bool) -> Result<(), Box<dyn std::error::Error>> {
    let engine = Engine::global()?;
    let mut scripted = None;
    let model = match model {
        Some(model) => model,
        None => {
            let provider = ScriptedProvider::start(Dialect::OpenAi, script(approve)).await?;
            let settings = ProviderSettings::new().kind(ProviderKind::OpenAi).base_url(provider.base_url());
            drop(engine.clone().with_state(Providers::new().provider("scripted", settings)));
            println!("model: a scripted provider at {} (OpenAI's API, no key)", provider.base_url());
            scripted = Some(provider);
            "scripted/support".to_string()
        }
    };
    let chat = Chat { model, messages: MESSAGES.iter().map(|m| m.to_string()).collect() };

    let mut execution = support_chat.run(chat).await?;
    while execution.state() == ExecutionState::Paused {
        let request: ApprovalRequest =
            execution.pause_output()?.ok_or("the execution paused without saying what it asks")?;
        println!("PAUSED: agent `{}` asks to call `{}` with {}", request.agent, request.tool, request.arguments);
        let approval = match approve {
            true => Approval::approve(),
            false => Approval::reject("a colleague has to check the order first"),
        };
        println!("resuming: {}", if approval.approved { "approved" } else { "rejected" });
        execution = support_chat.resume(execution.execution_id(), approval).await?;
    }

    let Some(answers) = execution.output() else {
        let error = execution.error().map_or_else(|| execution.state().to_string(), |e| e.to_string());
        return Err(format!("execution {} did not complete: {error}", execution.execution_id()).into());
    };
    println!();
    for (message, answer) in MESSAGES.iter().zip(answers) {
        println!("customer: {message}\nsupport:  {answer}\n");
    }
    let journal: Vec<&str> = execution
        .events()
        .iter()
        .filter(|e| e.kind() == EventType::TaskStarted && e.name() != "support")
        .map(|e| e.name())
        .collect();
    println!("tasks: {}", journal.join(" "));
    println!("refunds issued: {}", REFUNDS.load(Ordering::SeqCst));
    if let Some(provider) = scripted {
        println!("model requests: {}", provider.requests().len());
        let violations = provider.violations();
        if !violations.is_empty() {
            return Err(format!("requests the provider would refuse: {violations:?}").into());
        }
    }
    println!("execution {}: {}", execution.execution_id(), execution.state());
    Ok(())
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let mut model = None;
    let mut approve = true;
    let usage = || {
        eprintln!("usage: agent_chat [--model provider/name] [--reject]");
        std::process::ExitCode::FAILURE
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--model" => match args.next() {
                Some(name) => model = Some(name),
                None => return usage(),
            },
            "--reject" => approve = false,
            _ => return usage(),
        }
    }
    match run(model, approve).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
