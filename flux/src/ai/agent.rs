//! The agent task: a conversation with a model in which every model call and tool call is a
//! recorded task.

use std::borrow::Cow;
use std::future::{Future, IntoFuture};
use std::marker::PhantomData;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use futures::StreamExt as _;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::memory::WorkingMemory;
use super::message::{Message, ModelRequest, ModelResponse, ResponseSchema, ToolCall, Usage};
use super::provider::{Provider, ProviderEvent, Providers};
use super::skills::Skills;
use super::tool::{Tool, ToolArgs, ToolFn};
use crate::error::{Error, ErrorKind, Result};
use crate::task::{Args, BoxFuture, Call, Handlers, NoHandler, TaskCall, TaskOptions, codec};
use crate::value::Storable;

/// The most tool calls an agent makes in one call unless told otherwise.
pub const DEFAULT_MAX_TOOL_CALLS: usize = 10;

/// What the model is told when it asked for more tools than `max_tool_calls` allows.
const FINAL_ANSWER_NOW: &str = "You must provide your final answer now. Do not call any more tools.";

/// An agent: `flux::ai::agent("You are a researcher.").model("openai/gpt-4o").name("researcher")`.
///
/// ```no_run
/// use flux::prelude::*;
///
/// #[derive(serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
/// struct Summary {
///     title: String,
///     points: Vec<String>,
/// }
///
/// #[flux::workflow]
/// async fn summarize(ctx: ExecutionContext<String>) -> flux::Result<Summary> {
///     let writer = flux::ai::agent("You summarize texts.")
///         .model("openai/gpt-4o")
///         .name("writer")
///         .response_format::<Summary>();
///     writer.call(ctx.input().clone()).await
/// }
/// ```
///
/// Calling it is a task named after the agent; inside it, each model call is the task
/// `llm_{n}` (its output the whole response) and each tool call a task named after the tool
/// (`{tool}_{turn}` after the first turn of calls). See [the module](super).
pub struct Agent<T = String> {
    settings: Arc<Settings>,
    output: PhantomData<fn() -> T>,
}

impl<T> Clone for Agent<T> {
    fn clone(&self) -> Self {
        Agent { settings: self.settings.clone(), output: PhantomData }
    }
}

impl<T> std::fmt::Debug for Agent<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = &self.settings;
        f.debug_struct("Agent")
            .field("name", &s.name)
            .field("model", &s.model)
            .field("tools", &s.tools.iter().map(Tool::name).collect::<Vec<_>>())
            .field("max_tool_calls", &s.max_tool_calls)
            .finish_non_exhaustive()
    }
}

#[derive(Clone)]
struct Settings {
    system_prompt: String,
    description: Option<String>,
    model: Option<String>,
    name: String,
    tools: Vec<Tool>,
    memory: Option<WorkingMemory>,
    skills: Option<Skills>,
    max_tool_calls: usize,
    max_tokens: Option<u32>,
    options: TaskOptions,
    model_options: TaskOptions,
    max_schema_retries: u32,
    stream: bool,
    provider: Option<Arc<dyn Provider>>,
    response: Option<ResponseSchema>,
}

/// An agent with the system prompt `system_prompt`, named `agent` until
/// [`name`](Agent::name)d, with no model until [`model`](Agent::model) gives one.
pub fn agent(system_prompt: impl Into<String>) -> Agent<String> {
    let settings = Settings {
        system_prompt: system_prompt.into(),
        description: None,
        model: None,
        name: "agent".to_string(),
        tools: Vec::new(),
        memory: None,
        skills: None,
        max_tool_calls: DEFAULT_MAX_TOOL_CALLS,
        max_tokens: None,
        options: TaskOptions::new(),
        model_options: default_model_options(),
        max_schema_retries: 1,
        stream: true,
        provider: None,
        response: None,
    };
    Agent { settings: Arc::new(settings), output: PhantomData }
}

/// The options of model calls unless [`Agent::model_options`] says otherwise: three retries
/// one, two and four seconds apart (longer when the provider says `Retry-After`), five minutes
/// per attempt.
pub fn default_model_options() -> TaskOptions {
    TaskOptions::new()
        .retry_max_attempts(3)
        .retry_delay(Duration::from_secs(1))
        .retry_backoff(2.0)
        .timeout(Duration::from_secs(300))
}

/// What an agent call returns with [`AgentCall::with_usage`]: the answer and the tokens every
/// model call of it used. The agent's task records this.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(bound = "T: Storable")]
pub struct AgentOutput<T> {
    /// The answer.
    pub output: T,
    /// The tokens of all its model calls, summed.
    pub usage: Usage,
}

/// The resume input of a tool call waiting for approval (`approve_{call}`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Approval {
    /// Whether the call may run.
    pub approved: bool,
    /// Why, told to the model when the call is rejected.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl Approval {
    /// Lets the call run.
    pub fn approve() -> Approval {
        Approval { approved: true, reason: None }
    }

    /// Refuses the call, saying why.
    pub fn reject(reason: impl Into<String>) -> Approval {
        Approval { approved: false, reason: Some(reason.into()) }
    }
}

/// The pause output of a tool call waiting for approval: what the model wants to do.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ApprovalRequest {
    /// The agent whose model asked.
    pub agent: String,
    /// The tool.
    pub tool: String,
    /// The arguments the model gave.
    pub arguments: Value,
    /// The provider's id of the call.
    pub call_id: String,
}

impl<T> Agent<T> {
    fn with(mut self, change: impl FnOnce(&mut Settings)) -> Self {
        change(Arc::make_mut(&mut self.settings));
        self
    }

    /// The model, as `provider/name`: `openai/gpt-4o`, `anthropic/claude-sonnet-4-5`,
    /// `google/gemini-2.5-flash`, `ollama/llama3`, or a configured provider's name.
    pub fn model(self, model: impl Into<String>) -> Self {
        let model = model.into();
        self.with(|s| s.model = Some(model))
    }

    /// The agent's name: its task's name (`agent` by default).
    pub fn name(self, name: impl Into<String>) -> Self {
        let name = name.into();
        self.with(|s| s.name = name)
    }

    /// What the agent does, told to the models of agents it is a tool of (by default its
    /// system prompt's first line).
    pub fn description(self, description: impl Into<String>) -> Self {
        let description = description.into();
        self.with(|s| s.description = Some(description))
    }

    /// Adds tools the model may call.
    pub fn tools(self, tools: impl IntoIterator<Item = Tool>) -> Self {
        self.with(|s| s.tools.extend(tools))
    }

    /// Adds one tool.
    pub fn tool(self, tool: Tool) -> Self {
        self.with(|s| s.tools.push(tool))
    }

    /// Keeps the conversation in `memory` across calls within an execution.
    pub fn working_memory(self, memory: WorkingMemory) -> Self {
        self.with(|s| s.memory = Some(memory))
    }

    /// Offers `skills` to the model: their catalog in the system prompt, and a `use_skill` tool
    /// that reads one.
    pub fn skills(self, skills: Skills) -> Self {
        self.with(|s| s.skills = Some(skills))
    }

    /// The most tool calls in one agent call (10 by default); past it the model is asked for
    /// its final answer without tools.
    pub fn max_tool_calls(self, n: usize) -> Self {
        self.with(|s| s.max_tool_calls = n)
    }

    /// The most tokens of each answer.
    pub fn max_tokens(self, n: u32) -> Self {
        self.with(|s| s.max_tokens = Some(n))
    }

    /// The options of the agent's own task (its retries, timeout, cache).
    pub fn with_options(self, options: TaskOptions) -> Self {
        self.with(|s| s.options = options)
    }

    /// The options of each model call (`llm_{n}`): see [`default_model_options`].
    pub fn model_options(self, options: TaskOptions) -> Self {
        self.with(|s| s.model_options = options)
    }

    /// How many times a structured answer that does not fit is asked for again (1 by default).
    pub fn max_schema_retries(self, n: u32) -> Self {
        self.with(|s| s.max_schema_retries = n)
    }

    /// Whether answers stream their tokens as progress (`{"token": ..}`, on by default; off
    /// whatever this says when a response format is set).
    pub fn stream(self, on: bool) -> Self {
        self.with(|s| s.stream = on)
    }

    /// Calls models through `provider` instead of flux's (`GenaiProvider`).
    pub fn provider(self, provider: impl Provider) -> Self {
        let provider: Arc<dyn Provider> = Arc::new(provider);
        self.with(|s| s.provider = Some(provider))
    }

    /// Answers with a `U`: the model is given `U`'s JSON Schema (in the provider's structured
    /// output mode where it has one), its answer is checked against it, and an answer that
    /// does not fit is asked for again with the error ([`max_schema_retries`](Self::max_schema_retries)).
    pub fn response_format<U: schemars::JsonSchema + Storable>(self) -> Agent<U> {
        let name: String = U::schema_name()
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() || c == '_' || c == '-' { c } else { '_' })
            .collect();
        let schema = super::tool::inline_schema::<U>();
        let settings = self.with(|s| s.response = Some(ResponseSchema { name, schema })).settings;
        Agent { settings, output: PhantomData }
    }

    /// The agent's name.
    pub fn agent_name(&self) -> &str {
        &self.settings.name
    }
}

impl<T: Storable + Send + 'static> Agent<T> {
    /// Calls the agent with `instruction`; await it for the answer.
    pub fn call(&self, instruction: impl Into<String>) -> AgentCall<T> {
        AgentCall { agent: self.clone(), instruction: instruction.into(), context: None, task: None }
    }

    /// The agent as a tool of another agent: its arguments an `instruction` and an optional
    /// `context`, its answer the tool's result.
    pub fn as_tool(&self) -> Tool {
        let agent = self.clone();
        let s = &self.settings;
        let description = s
            .description
            .clone()
            .unwrap_or_else(|| s.system_prompt.lines().next().unwrap_or_default().trim().to_string());
        let parameters = serde_json::json!({
            "type": "object",
            "properties": {
                "instruction": {"type": "string", "description": "What the agent should do."},
                "context": {"type": "string", "description": "What the agent should know to do it."},
            },
            "required": ["instruction"],
        });
        let name = s.name.clone();
        let tool_name = name.clone();
        let run: ToolFn = Arc::new(move |task: String, arguments: Value| {
            let read = ToolArgs::new("agent", arguments).and_then(|mut args| {
                Ok((args.take::<String>("instruction")?, args.take::<Option<String>>("context")?))
            });
            let (instruction, context) = match read {
                Ok(read) => read,
                Err(e) => return Box::pin(std::future::ready(Err(e))),
            };
            let mut call = agent.call(instruction);
            call.context = context;
            call.task = Some(task);
            let tool_name = tool_name.clone();
            let started = call.start();
            Box::pin(async move {
                let out = started.await?;
                super::tool::to_tool_value(&tool_name, &out.output)
            })
        });
        Tool::from_recorded(name, description, parameters, run)
    }
}

/// One call of an agent: `.context(..)` adds what it should know; await it for the answer, or
/// [`with_usage`](AgentCall::with_usage) for the answer and the tokens used.
#[must_use = "an agent call does nothing until awaited"]
pub struct AgentCall<T> {
    agent: Agent<T>,
    instruction: String,
    context: Option<String>,
    task: Option<String>,
}

impl<T: Storable + Send + 'static> AgentCall<T> {
    /// Context from earlier work, given to the model after the instruction.
    pub fn context(mut self, context: impl Into<String>) -> Self {
        self.context = Some(context.into());
        self
    }

    /// The answer and the tokens the call used.
    pub fn with_usage(self) -> impl Future<Output = Result<AgentOutput<T>>> + Send + 'static {
        self.start()
    }

    /// Begins the call now (its id follows call order) and returns its future.
    fn start(self) -> BoxFuture<Result<AgentOutput<T>>> {
        let settings = self.agent.settings.clone();
        let task = self.task.unwrap_or_else(|| settings.name.clone());
        let (instruction, context) = (self.instruction, self.context);
        let history = settings.memory.as_ref().map(WorkingMemory::recall).unwrap_or_default();
        let call = TaskCall::begin(Cow::Owned(settings.name.clone()), || {
            (task.as_str(), Args::new(2).arg(&instruction).arg(&context))
        });
        let user = match &context {
            Some(context) if !context.is_empty() => {
                format!("{instruction}\n\nContext from previous work:\n\n{context}")
            }
            _ => instruction,
        };
        let body_settings = settings.clone();
        let body_user = user.clone();
        let attempt = move |info: &Call<'_>| {
            let conversation = Conversation {
                settings: body_settings.clone(),
                engine: info.engine.cloned(),
                history: history.clone(),
                user: body_user.clone(),
            };
            // Boxed: an agent's body is a large future, and agents nest (an agent as a tool).
            Ok(Box::pin(conversation.run::<T>()) as BoxFuture<Result<AgentOutput<T>>>)
        };
        Box::pin(async move {
            let handlers = Handlers { fallback: None::<NoHandler<AgentOutput<T>>>, rollback: None::<NoHandler<()>> };
            let out = call.run(codec::<AgentOutput<T>>(), &settings.options, attempt, handlers).await?;
            if let Some(memory) = &settings.memory {
                let answer = match serde_json::to_value(&out.output) {
                    Ok(Value::String(text)) => text,
                    Ok(other) => other.to_string(),
                    Err(e) => return Err(Error::new(ErrorKind::Encode, format!("the answer is not JSON: {e}"))),
                };
                memory.memorize(Message::user(user)).await?;
                memory.memorize(Message::assistant(answer)).await?;
            }
            Ok(out)
        })
    }
}

impl<T: Storable + Send + 'static> IntoFuture for AgentCall<T> {
    type Output = Result<T>;
    type IntoFuture = BoxFuture<Result<T>>;

    fn into_future(self) -> Self::IntoFuture {
        let started = self.start();
        Box::pin(async move { started.await.map(|out| out.output) })
    }
}

/// One run of an agent's task body.
struct Conversation {
    settings: Arc<Settings>,
    engine: Option<crate::Engine>,
    history: Vec<Message>,
    user: String,
}

impl Conversation {
    async fn run<T: Storable>(self) -> Result<AgentOutput<T>> {
        let s = &*self.settings;
        let Some(model) = s.model.clone() else {
            return Err(Error::new(
                ErrorKind::Config,
                format!("agent `{}` has no model: give one with `.model(\"openai/gpt-4o\")`", s.name),
            )
            .into_terminal());
        };
        let provider = match &s.provider {
            Some(provider) => provider.clone(),
            None => default_provider()?,
        };
        let mut tools = s.tools.clone();
        let mut system = s.system_prompt.clone();
        if let Some(skills) = &s.skills {
            system.push_str(&skills.catalog());
            tools.push(skills.tool());
        }
        if let Some(format) = &s.response {
            system.push_str("\n\nRespond with JSON matching this schema:\n");
            system.push_str(&format.schema.to_string());
        }
        let mut messages = self.history.clone();
        messages.push(Message::user(self.user.clone()));
        let mut model_calls = ModelCalls {
            provider,
            engine: self.engine.clone(),
            model,
            system,
            tools: tools.iter().map(|t| t.definition().clone()).collect(),
            response: s.response.clone(),
            max_tokens: s.max_tokens,
            stream: s.stream && s.response.is_none(),
            options: s.model_options.clone(),
            n: 0,
            usage: Usage::default(),
        };
        let mut response = Box::pin(model_calls.call(&messages, true)).await?;
        let (mut made, mut turn) = (0usize, 0u32);
        while !response.tool_calls.is_empty() && made < s.max_tool_calls {
            made += response.tool_calls.len();
            messages.push(Message::assistant_calls(response.text.clone(), response.tool_calls.clone()));
            let results = Box::pin(run_tools(&s.name, &tools, &response.tool_calls, turn)).await?;
            for (call, result) in response.tool_calls.iter().zip(results) {
                messages.push(Message::tool_result(call, result));
            }
            turn += 1;
            response = Box::pin(model_calls.call(&messages, true)).await?;
        }
        if !response.tool_calls.is_empty() {
            // Every call the model asked for gets an answer (providers refuse a conversation
            // with calls left unanswered): that it was not made.
            messages.push(Message::assistant_calls(response.text.clone(), response.tool_calls.clone()));
            for call in &response.tool_calls {
                let refused = format!("Error: not called: the limit of {} tool calls is reached", s.max_tool_calls);
                messages.push(Message::tool_result(call, refused));
            }
            messages.push(Message::user(FINAL_ANSWER_NOW));
            response = Box::pin(model_calls.call(&messages, false)).await?;
        }
        let mut content = response.text;
        let output = match &s.response {
            None => serde_json::from_value::<T>(Value::String(content)).map_err(|e| {
                Error::new(
                    ErrorKind::Decode,
                    format!("agent `{}`: the answer is text, not the output type: {e}", s.name),
                )
            })?,
            Some(format) => {
                let mut retries = s.max_schema_retries;
                loop {
                    match serde_json::from_str::<T>(json_candidate(&content)) {
                        Ok(output) => break output,
                        Err(e) if retries == 0 => {
                            return Err(Error::new(
                                ErrorKind::InvalidInput,
                                format!(
                                    "agent `{}`: the answer does not match the schema `{}`: {e}",
                                    s.name, format.name
                                ),
                            )
                            .with_cause(content)
                            .into_terminal());
                        }
                        Err(e) => {
                            retries -= 1;
                            if !content.is_empty() {
                                messages.push(Message::assistant(content.clone()));
                            }
                            messages.push(Message::user(format!(
                                "Your response did not match the required schema. Validation errors:\n{e}\n\nRespond again with ONLY valid JSON matching this schema:\n{}",
                                format.schema
                            )));
                            content = Box::pin(model_calls.call(&messages, false)).await?.text;
                        }
                    }
                }
            }
        };
        Ok(AgentOutput { output, usage: model_calls.usage })
    }
}

/// The model calls of one conversation: `llm_0`, `llm_1`, ...
struct ModelCalls {
    provider: Arc<dyn Provider>,
    engine: Option<crate::Engine>,
    model: String,
    system: String,
    tools: Vec<super::message::ToolDefinition>,
    response: Option<ResponseSchema>,
    max_tokens: Option<u32>,
    stream: bool,
    options: TaskOptions,
    n: u32,
    usage: Usage,
}

impl ModelCalls {
    /// The task `llm_{n}`: asks the model unless the log has its answer.
    async fn call(&mut self, messages: &[Message], with_tools: bool) -> Result<ModelResponse> {
        let request = ModelRequest {
            model: self.model.clone(),
            system: self.system.clone(),
            messages: messages.to_vec(),
            tools: if with_tools { self.tools.clone() } else { Vec::new() },
            response_schema: self.response.clone(),
            max_tokens: self.max_tokens,
            stream: self.stream,
        };
        let name = format!("llm_{}", self.n);
        self.n += 1;
        let call = TaskCall::begin(Cow::Borrowed("llm"), || (name.as_str(), Args::new(1).arg(&request)));
        let (provider, engine) = (self.provider.clone(), self.engine.clone());
        let attempt = move |_: &Call<'_>| {
            let (provider, engine, request) = (provider.clone(), engine.clone(), request.clone());
            Ok(Box::pin(ask(provider, engine, request)) as BoxFuture<Result<ModelResponse>>)
        };
        let handlers = Handlers { fallback: None::<NoHandler<ModelResponse>>, rollback: None::<NoHandler<()>> };
        let response = call.run(codec::<ModelResponse>(), &self.options, attempt, handlers).await?;
        self.usage.add(response.usage);
        Ok(response)
    }
}

/// One attempt of a model call: the endpoint (and key) resolved now, tokens sent on as progress.
async fn ask(
    provider: Arc<dyn Provider>,
    engine: Option<crate::Engine>,
    request: ModelRequest,
) -> Result<ModelResponse> {
    let configured = engine.as_ref().and_then(|e| e.state::<Providers>());
    let endpoint = match configured {
        Some(providers) => providers.endpoint(&request.model, engine.as_ref())?,
        None => Providers::from_config()?.endpoint(&request.model, engine.as_ref())?,
    };
    let mut events = provider.chat(endpoint, request);
    while let Some(event) = events.next().await {
        match event? {
            ProviderEvent::Token(token) => crate::builtins::progress(serde_json::json!({ "token": token })).await,
            ProviderEvent::Done(response) => return Ok(response),
        }
    }
    Err(Error::new(ErrorKind::TaskFailed, "the model's answer ended before it was complete"))
}

fn default_provider() -> Result<Arc<dyn Provider>> {
    static DEFAULT: OnceLock<Result<Arc<super::GenaiProvider>>> = OnceLock::new();
    let provider = DEFAULT.get_or_init(|| super::GenaiProvider::new().map(Arc::new)).clone()?;
    Ok(provider)
}

/// Runs the tool calls of one turn: runs of read-only calls together, every other call alone,
/// in the model's order. A tool's failure (and a tool that does not exist) is its result, for
/// the model to read; what stops the run (cancellation, a changed replay, the store) stops it.
async fn run_tools(agent: &str, tools: &[Tool], calls: &[ToolCall], turn: u32) -> Result<Vec<String>> {
    let find = |call: &ToolCall| tools.iter().find(|t| t.name() == call.name);
    let alone = |call: &ToolCall| find(call).is_some_and(|t| !t.is_read_only());
    let mut results = Vec::with_capacity(calls.len());
    let mut i = 0;
    while i < calls.len() {
        if alone(&calls[i]) {
            results.push(one_tool_call(agent, tools, &calls[i], turn).await?);
            i += 1;
            continue;
        }
        let end = (i..calls.len()).find(|&j| alone(&calls[j])).unwrap_or(calls.len());
        let started: Vec<_> = calls[i..end].iter().map(|call| one_tool_call(agent, tools, call, turn)).collect();
        for result in futures::future::join_all(started).await {
            results.push(result?);
        }
        i = end;
    }
    Ok(results)
}

/// One tool call, begun now: its result as the model reads it.
fn one_tool_call(agent: &str, tools: &[Tool], call: &ToolCall, turn: u32) -> BoxFuture<Result<String>> {
    let Some(tool) = tools.iter().find(|t| t.name() == call.name) else {
        let names = tools.iter().map(Tool::name).collect::<Vec<_>>().join(", ");
        let message = format!("Error: there is no tool `{}`; the tools are: {names}", call.name);
        return Box::pin(std::future::ready(Ok(message)));
    };
    let task = if turn == 0 { call.name.clone() } else { format!("{}_{turn}", call.name) };
    if tool.needs_approval() {
        let (tool, call, agent) = (tool.clone(), call.clone(), agent.to_string());
        return Box::pin(async move {
            let request = ApprovalRequest {
                agent,
                tool: call.name.clone(),
                arguments: call.arguments.clone(),
                call_id: call.id.clone(),
            };
            let approval: Approval = crate::builtins::pause_with(&format!("approve_{task}"), request).await?;
            if !approval.approved {
                let reason = approval.reason.map(|r| format!(": {r}")).unwrap_or_default();
                return Ok(format!("Error: a person rejected this call of `{}`{reason}", call.name));
            }
            tool_result(tool.start(task, call.arguments.clone()).await)
        });
    }
    let started = tool.start(task, call.arguments.clone());
    Box::pin(async move { tool_result(started.await) })
}

/// A tool's outcome as the model reads it, or the error that must stop the agent.
fn tool_result(outcome: Result<Value>) -> Result<String> {
    match outcome {
        Ok(Value::String(text)) => Ok(text),
        Ok(value) => Ok(value.to_string()),
        Err(e) if stops_the_run(&e) => Err(e),
        Err(e) => Ok(format!("Error: {}", e.message())),
    }
}

/// Errors that are not the tool's answer but the end of the run.
fn stops_the_run(error: &Error) -> bool {
    matches!(
        error.kind(),
        ErrorKind::Cancelled
            | ErrorKind::NonDeterminism
            | ErrorKind::Storage
            | ErrorKind::Corrupt
            | ErrorKind::SchemaTooNew
            | ErrorKind::InvalidState
            | ErrorKind::Conflict
    )
}

/// The JSON of an answer wrapped in a Markdown code fence, or the answer.
fn json_candidate(content: &str) -> &str {
    let trimmed = content.trim();
    match trimmed.strip_prefix("```").and_then(|rest| rest.strip_suffix("```")) {
        Some(inner) => inner.strip_prefix("json").unwrap_or(inner).trim(),
        None => content,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fenced_json_is_unwrapped() {
        assert_eq!(json_candidate("```json\n{\"a\":1}\n```"), "{\"a\":1}");
        assert_eq!(json_candidate(" {\"a\":1} "), " {\"a\":1} ");
    }

    #[test]
    fn tool_errors_go_back_to_the_model_but_cancellation_stops() {
        let failed = Error::new(ErrorKind::TaskFailed, "no such city");
        assert_eq!(tool_result(Err(failed)).unwrap(), "Error: no such city");
        assert!(tool_result(Err(Error::new(ErrorKind::Cancelled, "cancelled"))).is_err());
        assert_eq!(tool_result(Ok(serde_json::json!({"a": 1}))).unwrap(), "{\"a\":1}");
    }
}
