//! AI agents as durable tasks (feature `ai`).

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
