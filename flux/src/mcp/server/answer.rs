//! What every tool answers: `{"success": true, ...}` or `{"success": false, "error": "..."}`
//! (with `isError` set, so the assistant sees the reason), never a protocol error for a
//! domain failure.

use rmcp::model::CallToolResult;
use serde_json::{Map, Value, json};

use crate::client::ExecutionStatus;
use crate::error::{Error, ErrorKind};

/// A tool's answer.
pub(crate) type Answer = Result<CallToolResult, rmcp::ErrorData>;

/// Success: `fields` with `"success": true` first.
pub(crate) fn ok(fields: Value) -> Answer {
    let mut object = Map::new();
    object.insert("success".to_string(), Value::Bool(true));
    match fields {
        Value::Object(map) => object.extend(map),
        other => {
            object.insert("result".to_string(), other);
        }
    }
    Ok(CallToolResult::structured(Value::Object(object)))
}

/// A domain failure the assistant can act on.
pub(crate) fn fail(error: impl Into<String>) -> Answer {
    Ok(CallToolResult::structured_error(json!({ "success": false, "error": error.into() })))
}

/// A failure of a request to the flux server, said so an assistant knows what to do next.
pub(crate) fn failed(error: &Error, server_url: &str) -> Answer {
    let message = match error.kind() {
        ErrorKind::Unreachable => format!("Could not connect to Flux server at {server_url}: {error}"),
        ErrorKind::Unauthorized => format!(
            "The Flux server at {server_url} refused the request ({error}); the MCP server needs its admin \
             token (FLUX_SECURITY__ADMIN_TOKEN) for this tool"
        ),
        _ => error.to_string(),
    };
    fail(message)
}

/// The input a tool was given as JSON text: `null` when empty, else the parsed value, or a
/// failure saying how to write it.
pub(crate) fn parse_input(parameter: &str, text: &str) -> Result<Value, String> {
    if text.trim().is_empty() {
        return Ok(Value::Null);
    }
    serde_json::from_str(text).map_err(|e| {
        format!(
            "`{parameter}` is not valid JSON ({e}): give the workflow's input as JSON text, such as \
             \"\\\"World\\\"\" for a string, 42 for a number or {{\"name\": \"World\"}} for an object"
        )
    })
}

/// An execution as tools answer it: its summary, with `success` and, when there is a next
/// step, a `message` naming the tool for it.
pub(crate) fn execution(status: &ExecutionStatus<Value>, message: Option<String>) -> Answer {
    let mut summary = status.summary().clone();
    if let (Some(message), Some(map)) = (message, summary.as_object_mut()) {
        map.insert("message".to_string(), Value::String(message));
    }
    ok(summary)
}
