//! flux's [`Provider`]: OpenAI, Anthropic, Gemini, Ollama and OpenAI-compatible providers
//! through the `genai` crate, over flux's own HTTP client.

use futures::StreamExt as _;
use genai::chat::{
    ChatMessage, ChatOptions, ChatRequest, ChatResponseFormat, ChatStreamEvent, JsonSpec, MessageContent,
    Tool as GenaiTool, ToolCall as GenaiToolCall, ToolResponse,
};
use genai::resolver::{AuthData, Endpoint as GenaiEndpoint};
use genai::{ModelIden, ServiceTarget, adapter::AdapterKind};

use super::message::{Message, ModelRequest, ModelResponse, Role, ToolCall, Usage};
use super::provider::{
    Endpoint, Provider, ProviderEvent, ProviderKind, ProviderStream, parse_retry_after, status_error, transport_error,
};
use crate::error::{Error, Result};

/// Calls models through the `genai` crate: the four providers' own wire formats (and OpenAI's
/// for the providers compatible with it), streaming included.
#[derive(Clone)]
pub struct GenaiProvider {
    client: genai::Client,
}

impl std::fmt::Debug for GenaiProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GenaiProvider").finish_non_exhaustive()
    }
}

impl GenaiProvider {
    /// A provider with an HTTP client of its own (connections kept alive and shared by every
    /// call).
    pub fn new() -> Result<GenaiProvider> {
        let http = reqwest::Client::builder().build().map_err(|e| {
            Error::new(crate::error::ErrorKind::Config, "the model client cannot be built").with_cause(e.to_string())
        })?;
        GenaiProvider::with_http_client(http)
    }

    /// A provider making its requests with `http` (a proxy, TLS settings, timeouts of your own).
    pub fn with_http_client(http: reqwest::Client) -> Result<GenaiProvider> {
        let client = genai::Client::builder().with_reqwest(http).build().map_err(|e| {
            Error::new(crate::error::ErrorKind::Config, "the model client cannot be built").with_cause(e.to_string())
        })?;
        Ok(GenaiProvider { client })
    }
}

impl Provider for GenaiProvider {
    fn chat(&self, endpoint: Endpoint, request: ModelRequest) -> ProviderStream {
        let client = self.client.clone();
        let stream = request.stream;
        let call = async move {
            let target = target(&client, &endpoint).await?;
            let (chat, options) = chat_request(&request, endpoint.kind);
            if !stream {
                let response = client
                    .exec_chat(genai::ModelSpec::Target(target), chat, Some(&options))
                    .await
                    .map_err(|e| call_error(&endpoint, &e))?;
                let text = response.texts().join("");
                let tool_calls = response.tool_calls().into_iter().map(from_genai_call).collect();
                let out = ModelResponse {
                    text,
                    tool_calls,
                    usage: usage(&response.usage),
                    stop_reason: response.stop_reason.as_ref().map(|r| r.to_string()),
                };
                return Ok(futures::stream::iter([Ok(ProviderEvent::Done(out))]).boxed());
            }
            let response = client
                .exec_chat_stream(genai::ModelSpec::Target(target), chat, Some(&options))
                .await
                .map_err(|e| call_error(&endpoint, &e))?;
            let events = response.stream.filter_map(move |event| {
                let out = match event {
                    Ok(ChatStreamEvent::Chunk(chunk)) if !chunk.content.is_empty() => {
                        Some(Ok(ProviderEvent::Token(chunk.content)))
                    }
                    Ok(ChatStreamEvent::End(end)) => {
                        let stop_reason = end.captured_stop_reason.as_ref().map(|r| r.to_string());
                        let usage = end.captured_usage.as_ref().map(usage).unwrap_or_default();
                        let text = end.captured_texts().map(|t| t.join("")).unwrap_or_default();
                        let tool_calls = end
                            .captured_tool_calls()
                            .map(|calls| calls.into_iter().map(from_genai_call).collect())
                            .unwrap_or_default();
                        Some(Ok(ProviderEvent::Done(ModelResponse { text, tool_calls, usage, stop_reason })))
                    }
                    Ok(_) => None,
                    Err(e) => Some(Err(call_error(&endpoint, &e))),
                };
                std::future::ready(out)
            });
            Ok(events.boxed())
        };
        futures::stream::once(call)
            .flat_map(|made: Result<ProviderStream>| match made {
                Ok(events) => events,
                Err(e) => futures::stream::iter([Err(e)]).boxed(),
            })
            .boxed()
    }
}

fn adapter(kind: ProviderKind) -> AdapterKind {
    match kind {
        ProviderKind::OpenAi => AdapterKind::OpenAI,
        ProviderKind::Anthropic => AdapterKind::Anthropic,
        ProviderKind::Gemini => AdapterKind::Gemini,
        ProviderKind::Ollama => AdapterKind::Ollama,
    }
}

/// The provider's usual endpoint (genai's), with flux's URL and key in place of its own.
async fn target(client: &genai::Client, endpoint: &Endpoint) -> Result<ServiceTarget> {
    let iden = ModelIden::new(adapter(endpoint.kind), endpoint.model.clone());
    let mut target = client
        .resolve_service_target(genai::ModelSpec::Iden(iden))
        .await
        .map_err(|e| transport_error(endpoint, &format!("no endpoint: {e}")))?;
    if let Some(url) = &endpoint.base_url {
        let url = if url.ends_with('/') { url.clone() } else { format!("{url}/") };
        target.endpoint = GenaiEndpoint::from_owned(url);
    }
    target.auth = match &endpoint.api_key {
        Some(key) => AuthData::from_single(key.expose().to_string()),
        // No key (a local OpenAI-compatible server, Ollama): a placeholder, since genai wants
        // one, and so that it reads no environment variable of its own.
        None => AuthData::from_single("none".to_string()),
    };
    Ok(target)
}

/// The genai request and options of `request`.
fn chat_request(request: &ModelRequest, kind: ProviderKind) -> (ChatRequest, ChatOptions) {
    let mut messages: Vec<ChatMessage> = Vec::with_capacity(request.messages.len());
    for message in &request.messages {
        match message.role {
            Role::User => messages.push(ChatMessage::user(message.content.clone())),
            Role::Assistant if message.tool_calls.is_empty() => {
                messages.push(ChatMessage::assistant(message.content.clone()))
            }
            Role::Assistant => {
                let mut parts = Vec::with_capacity(message.tool_calls.len() + 1);
                if !message.content.is_empty() {
                    parts.push(genai::chat::ContentPart::Text(message.content.clone()));
                }
                parts.extend(message.tool_calls.iter().map(|c| genai::chat::ContentPart::ToolCall(to_genai_call(c))));
                messages.push(ChatMessage::assistant(MessageContent::from_parts(parts)));
            }
            // One message per result: some adapters (Ollama's) keep only one result per message.
            Role::Tool => {
                messages.push(ChatMessage::tool(MessageContent::from_tool_responses(vec![tool_response(message)])))
            }
        }
    }
    let mut chat = ChatRequest::new(messages).with_system(request.system.clone());
    if !request.tools.is_empty() {
        chat = chat.with_tools(request.tools.iter().map(|t| {
            GenaiTool::new(t.name.clone()).with_description(t.description.clone()).with_schema(t.parameters.clone())
        }));
    }
    let mut options =
        ChatOptions::default().with_capture_usage(true).with_capture_content(true).with_capture_tool_calls(true);
    if let Some(max) = request.max_tokens {
        options = options.with_max_tokens(max);
    }
    if let Some(schema) = &request.response_schema {
        let format = if kind == ProviderKind::Ollama {
            // genai sends no schema to Ollama: its JSON mode at least, with the schema in the prompt.
            ChatResponseFormat::JsonMode
        } else {
            let spec = JsonSpec { name: schema.name.clone(), description: None, schema: schema.schema.clone() };
            ChatResponseFormat::JsonSpec(spec)
        };
        options = options.with_response_format(format);
    }
    (chat, options)
}

fn tool_response(message: &Message) -> ToolResponse {
    let id = message.tool_call_id.clone().unwrap_or_default();
    let response = ToolResponse::new(id, message.content.clone());
    match &message.name {
        Some(name) => response.with_fn_name(name.clone()),
        None => response,
    }
}

fn to_genai_call(call: &ToolCall) -> GenaiToolCall {
    GenaiToolCall {
        call_id: call.id.clone(),
        fn_name: call.name.clone(),
        fn_arguments: call.arguments.clone(),
        thought_signatures: None,
    }
}

fn from_genai_call(call: &GenaiToolCall) -> ToolCall {
    // Some providers send the arguments as JSON text; the agent wants the object.
    let arguments = match &call.fn_arguments {
        serde_json::Value::String(text) => serde_json::from_str(text).unwrap_or_else(|_| call.fn_arguments.clone()),
        other => other.clone(),
    };
    let id = if call.call_id.is_empty() { call.fn_name.clone() } else { call.call_id.clone() };
    ToolCall { id, name: call.fn_name.clone(), arguments }
}

fn usage(usage: &genai::chat::Usage) -> Usage {
    let count = |n: Option<i32>| n.and_then(|n| u64::try_from(n).ok()).unwrap_or(0);
    Usage { input_tokens: count(usage.prompt_tokens), output_tokens: count(usage.completion_tokens) }
}

/// A genai error as a flux error: by HTTP status when there is one (with `Retry-After`), as a
/// transport failure otherwise.
fn call_error(endpoint: &Endpoint, error: &genai::Error) -> Error {
    // A stream's failure comes wrapped: the HTTP error is inside.
    if let genai::Error::WebStream { error: inner, .. } = error
        && let Some(inner) = inner.downcast_ref::<genai::Error>()
    {
        return call_error(endpoint, inner);
    }
    let (status, headers, body) = match error {
        genai::Error::HttpError { status, headers, body, .. } => (Some(*status), Some(&**headers), body.clone()),
        genai::Error::WebModelCall { webc_error, .. } | genai::Error::WebAdapterCall { webc_error, .. } => {
            let body = match webc_error {
                genai::webc::Error::ResponseFailedStatus { body, .. } => body.clone(),
                other => other.to_string(),
            };
            (webc_error.status(), webc_error.headers(), body)
        }
        other => (other.status(), None, other.to_string()),
    };
    match status {
        Some(status) => {
            let retry_after = headers
                .and_then(|h| h.get(reqwest::header::RETRY_AFTER))
                .and_then(|v| v.to_str().ok())
                .and_then(parse_retry_after);
            status_error(endpoint, status.as_u16(), &body, retry_after)
        }
        None => transport_error(endpoint, &body),
    }
}
