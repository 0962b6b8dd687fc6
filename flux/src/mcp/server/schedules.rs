//! The schedule tools of the Python original, with its names and parameters (`schedule_config`
//! and `input_data` as JSON text), over `/schedules`.

use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::{tool, tool_router};
use serde::Deserialize;
use serde_json::{Value, json};

use super::FluxTools;
use super::answer::{Answer, fail, failed, ok, parse_input};

/// `workflow_name, name, schedule_config, description, input_data`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub(crate) struct CreateSchedule {
    /// Name of the workflow each fire starts.
    workflow_name: String,
    /// Name of the schedule (letters, digits, `_`, `-`, `.`).
    name: String,
    /// JSON text of when it fires: `{"type": "cron", "cron_expression": "0 9 * * MON-FRI",
    /// "timezone": "Europe/Paris"}`, `{"type": "interval", "interval_seconds": 3600}` or
    /// `{"type": "once", "run_time": "2026-12-24T18:00:00Z"}`; optional `overlap` (`skip`,
    /// `allow`, `buffer_one`) and `catchup_window_seconds`.
    schedule_config: String,
    /// What the schedule is for.
    #[serde(default)]
    description: Option<String>,
    /// JSON text of the input each fire starts the workflow with.
    #[serde(default)]
    input_data: Option<String>,
}

/// `workflow_name, active_only, limit, offset`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub(crate) struct ListSchedules {
    /// Only the schedules of this workflow.
    #[serde(default)]
    workflow_name: Option<String>,
    /// Only the schedules that are not paused (and have not ended).
    #[serde(default = "yes")]
    active_only: bool,
    /// Most schedules to return.
    #[serde(default)]
    limit: Option<usize>,
    /// How many to skip, for the next page.
    #[serde(default)]
    offset: Option<usize>,
}

fn yes() -> bool {
    true
}

/// `schedule_id`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub(crate) struct ScheduleId {
    /// Name of the schedule.
    schedule_id: String,
}

/// `schedule_id, schedule_config, description, input_data`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub(crate) struct UpdateSchedule {
    /// Name of the schedule.
    schedule_id: String,
    /// JSON text of a new definition (as in create_schedule).
    #[serde(default)]
    schedule_config: Option<String>,
    /// A new description.
    #[serde(default)]
    description: Option<String>,
    /// JSON text of a new input.
    #[serde(default)]
    input_data: Option<String>,
}

/// `schedule_id, limit, offset`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub(crate) struct History {
    /// Name of the schedule.
    schedule_id: String,
    /// Most executions to return (1 to 1000).
    #[serde(default = "fifty")]
    limit: u32,
    /// How many to skip, newest first.
    #[serde(default)]
    offset: u64,
}

fn fifty() -> u32 {
    50
}

/// The JSON of a `schedule_config` parameter (an object).
fn config(text: &str) -> Result<Value, String> {
    match serde_json::from_str::<Value>(text) {
        Ok(value @ Value::Object(_)) => Ok(value),
        Ok(other) => Err(format!("`schedule_config` must be a JSON object, not {other}")),
        Err(e) => Err(format!(
            "`schedule_config` is not valid JSON ({e}): give it as JSON text, such as \
             {{\"type\": \"interval\", \"interval_seconds\": 3600}}"
        )),
    }
}

#[tool_router(router = schedule_router, vis = "pub(crate)")]
impl FluxTools {
    #[tool(description = "Create a schedule that starts a workflow by cron expression, interval or once. \
                          schedule_config and input_data are JSON text.")]
    async fn create_schedule(&self, Parameters(p): Parameters<CreateSchedule>) -> Answer {
        let config = match config(&p.schedule_config) {
            Ok(config) => config,
            Err(reason) => return fail(reason),
        };
        let input = match p.input_data.as_deref().map(|text| parse_input("input_data", text)).transpose() {
            Ok(input) => input.unwrap_or(Value::Null),
            Err(reason) => return fail(reason),
        };
        let client = &self.client;
        let created = match client.create_schedule(&p.workflow_name, &p.name, config, input).await {
            Ok(created) => created,
            Err(e) => return failed(&e, client.url()),
        };
        let created = match p.description {
            Some(text) => match client.update_schedule(&p.name, json!({ "description": text })).await {
                Ok(updated) => updated,
                Err(e) => return failed(&e, client.url()),
            },
            None => created,
        };
        ok(json!({ "schedule": created }))
    }

    #[tool(description = "List schedules, optionally of one workflow; active_only (default true) leaves out \
                          paused and ended ones.")]
    async fn list_schedules(&self, Parameters(p): Parameters<ListSchedules>) -> Answer {
        match self.client.schedules().await {
            Ok(all) => {
                let matching: Vec<Value> = all
                    .into_iter()
                    .filter(|s| p.workflow_name.as_ref().is_none_or(|w| s["workflow_name"] == json!(w)))
                    .filter(|s| !p.active_only || s["status"] == json!("active"))
                    .collect();
                let total = matching.len();
                let page: Vec<Value> =
                    matching.into_iter().skip(p.offset.unwrap_or(0)).take(p.limit.unwrap_or(usize::MAX)).collect();
                ok(json!({ "count": page.len(), "total": total, "schedules": page }))
            }
            Err(e) => failed(&e, self.client.url()),
        }
    }

    #[tool(description = "Get a schedule by name: its definition, status and next fire.")]
    async fn get_schedule(&self, Parameters(p): Parameters<ScheduleId>) -> Answer {
        match self.client.schedule(&p.schedule_id).await {
            Ok(schedule) => ok(json!({ "schedule": schedule })),
            Err(e) => failed(&e, self.client.url()),
        }
    }

    #[tool(description = "Change a schedule's definition (schedule_config, JSON text), description or input \
                          (input_data, JSON text).")]
    async fn update_schedule(&self, Parameters(p): Parameters<UpdateSchedule>) -> Answer {
        let mut change = serde_json::Map::new();
        if let Some(text) = &p.schedule_config {
            match config(text) {
                Ok(config) => change.insert("schedule_config".into(), config),
                Err(reason) => return fail(reason),
            };
        }
        if let Some(text) = &p.input_data {
            match parse_input("input_data", text) {
                Ok(input) => change.insert("input_data".into(), input),
                Err(reason) => return fail(reason),
            };
        }
        if let Some(text) = p.description {
            change.insert("description".into(), Value::String(text));
        }
        match self.client.update_schedule(&p.schedule_id, Value::Object(change)).await {
            Ok(schedule) => ok(json!({ "schedule": schedule })),
            Err(e) => failed(&e, self.client.url()),
        }
    }

    #[tool(description = "Pause a schedule: it does not fire until resumed.")]
    async fn pause_schedule(&self, Parameters(p): Parameters<ScheduleId>) -> Answer {
        match self.client.pause_schedule(&p.schedule_id).await {
            Ok(schedule) => ok(json!({ "schedule": schedule })),
            Err(e) => failed(&e, self.client.url()),
        }
    }

    #[tool(description = "Resume a paused schedule: it fires next at its first instant after now.")]
    async fn resume_schedule(&self, Parameters(p): Parameters<ScheduleId>) -> Answer {
        match self.client.resume_schedule(&p.schedule_id).await {
            Ok(schedule) => ok(json!({ "schedule": schedule })),
            Err(e) => failed(&e, self.client.url()),
        }
    }

    #[tool(description = "Delete a schedule; the executions it started stay.")]
    async fn delete_schedule(&self, Parameters(p): Parameters<ScheduleId>) -> Answer {
        match self.client.delete_schedule(&p.schedule_id).await {
            Ok(()) => ok(json!({ "deleted": p.schedule_id })),
            Err(e) => failed(&e, self.client.url()),
        }
    }

    #[tool(description = "The executions a schedule started, newest first, with their states.")]
    async fn get_schedule_history(&self, Parameters(p): Parameters<History>) -> Answer {
        match self.client.schedule_history(&p.schedule_id, p.limit, p.offset).await {
            Ok(history) => ok(history),
            Err(e) => failed(&e, self.client.url()),
        }
    }
}

/// The schedule tools.
pub(crate) fn router() -> ToolRouter<FluxTools> {
    FluxTools::schedule_router()
}
