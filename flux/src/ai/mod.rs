//! AI agents as durable tasks (feature `ai`): a model that calls tasks, MCP tools and other
//! agents as tools, answers in a type of yours, remembers a conversation and streams its tokens,
//! with every model call and tool call recorded, so that a crash or a replay never asks the
//! model twice.
//!
//! ```no_run
//! use flux::prelude::*;
//!
//! /// Looks up the weather of a city.
//! #[flux::task]
//! async fn get_weather(city: String) -> String {
//!     format!("{city}: sunny")
//! }
//!
//! #[flux::workflow]
//! async fn weather(ctx: ExecutionContext<String>) -> flux::Result<String> {
//!     let assistant = flux::ai::agent("You are a weather assistant.")
//!         .model("openai/gpt-4o")
//!         .name("assistant")
//!         .tools([get_weather::tool()]);
//!     // The task `assistant`; inside it `llm_0`, `get_weather`, `llm_1`.
//!     assistant.call(ctx.input().clone()).await
//! }
//! ```
//!
//! - **Models** are `provider/name`: `openai/…`, `anthropic/…`, `google/…` (Gemini),
//!   `ollama/…`, or a provider declared in `[flux.ai.providers.<name>]` (OpenAI-compatible, with
//!   `base_url` and `api_key_env` or `api_key_secret`), or installed as [`Providers`] engine
//!   state. Keys come from `OPENAI_API_KEY`, `ANTHROPIC_API_KEY`, `GEMINI_API_KEY` or the
//!   configured variable or flux secret; they are never recorded or logged.
//! - **The journal** (SPEC §15): the agent is a task named after it; each model call is the task
//!   `llm_{n}` whose output is the whole [`ModelResponse`]; each tool call is a task named after
//!   the tool, `{tool}_{turn}` after the first turn; working memory adds `wm_memorize_{n}`; a
//!   tool awaiting approval pauses at `approve_{tool}`.
//! - **Tools**: `task::tool()` for every `#[flux::task]`, [`Tool::from_fn`], [`Tool::mcp`]
//!   (with the `mcp` feature) and [`Agent::as_tool`]. A tool's failure, an unknown tool and
//!   arguments that do not fit go back to the model as its result.
//! - **Errors**: rate limits, server errors, timeouts and lost connections are retried as
//!   [`Agent::model_options`] say (three retries by default), waiting at least what the
//!   provider's `Retry-After` asks; a bad request, a refused key or an unknown model fail at
//!   once, naming the provider and the model.
//!
//! docs/design.md §19 tells how it works.

mod agent;
mod genai;
mod memory;
mod message;
mod provider;
mod skills;
mod tool;

pub use self::genai::GenaiProvider;
pub use agent::{
    Agent, AgentCall, AgentOutput, Approval, ApprovalRequest, DEFAULT_MAX_TOOL_CALLS, agent, default_model_options,
};
pub use memory::WorkingMemory;
pub use message::{Message, ModelRequest, ModelResponse, ResponseSchema, Role, ToolCall, ToolDefinition, Usage};
pub use provider::{
    ApiKey, Endpoint, Provider, ProviderEvent, ProviderKind, ProviderSettings, ProviderStream, Providers, status_error,
    transport_error,
};
pub use skills::{Skill, Skills};
#[doc(hidden)]
pub use tool::inline_schema;
pub use tool::{Tool, ToolFn};

#[doc(hidden)]
pub mod __private {
    pub use super::tool::{ToolArgs, doc_text, object_schema, to_tool_value};
}
