//! The schedules of a server (`/schedules`): each answer is the server's JSON, as
//! `/openapi.json` describes it (`Schedule`, `ScheduleHistory`).

use reqwest::Method;
use serde_json::{Value, json};

use super::Client;
use super::http::Auth;
use crate::error::Result;

impl Client {
    /// `GET /schedules`: every schedule, by name (each a `Schedule` object).
    ///
    /// ```no_run
    /// use serde_json::json;
    ///
    /// # async fn demo() -> flux::Result<()> {
    /// let client = flux::Client::new("http://127.0.0.1:8000")?;
    /// let config = json!({"type": "cron", "cron_expression": "0 9 * * MON-FRI", "timezone": "Europe/Paris"});
    /// client.create_schedule("report", "weekday_report", config, json!("sales")).await?;
    /// client.pause_schedule("weekday_report").await?;
    /// for schedule in client.schedules().await? {
    ///     println!("{} {}", schedule["name"], schedule["status"]);
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn schedules(&self) -> Result<Vec<Value>> {
        let url = self.http().url(&["schedules"])?;
        self.http().json(self.http().request(Method::GET, url, Auth::Plain)).await
    }

    /// `GET /schedules/{name}`; [`ErrorKind::NotFound`](crate::ErrorKind::NotFound) when there
    /// is none.
    pub async fn schedule(&self, name: &str) -> Result<Value> {
        let url = self.http().url(&["schedules", name])?;
        self.http().value(self.http().request(Method::GET, url, Auth::Plain)).await
    }

    /// `POST /schedules`: schedule `name` of workflow `workflow`, firing as `config` says (the
    /// `ScheduleConfig` JSON: `{"type": "interval", "interval_seconds": 60}` …), each fire
    /// starting the workflow with `input`.
    pub async fn create_schedule(&self, workflow: &str, name: &str, config: Value, input: Value) -> Result<Value> {
        let url = self.http().url(&["schedules"])?;
        let body = json!({ "workflow_name": workflow, "name": name, "schedule_config": config, "input_data": input });
        self.http().value(self.http().request(Method::POST, url, Auth::Plain).json(&body)).await
    }

    /// `PUT /schedules/{name}`: `change` holds any of `schedule_config`, `input_data` and
    /// `description`.
    pub async fn update_schedule(&self, name: &str, change: Value) -> Result<Value> {
        let url = self.http().url(&["schedules", name])?;
        self.http().value(self.http().request(Method::PUT, url, Auth::Plain).json(&change)).await
    }

    /// `POST /schedules/{name}/pause`.
    pub async fn pause_schedule(&self, name: &str) -> Result<Value> {
        let url = self.http().url(&["schedules", name, "pause"])?;
        self.http().value(self.http().request(Method::POST, url, Auth::Plain)).await
    }

    /// `POST /schedules/{name}/resume`.
    pub async fn resume_schedule(&self, name: &str) -> Result<Value> {
        let url = self.http().url(&["schedules", name, "resume"])?;
        self.http().value(self.http().request(Method::POST, url, Auth::Plain)).await
    }

    /// `DELETE /schedules/{name}` (the executions it started stay).
    pub async fn delete_schedule(&self, name: &str) -> Result<()> {
        let url = self.http().url(&["schedules", name])?;
        let _: Value = self.http().json(self.http().request(Method::DELETE, url, Auth::Plain)).await?;
        Ok(())
    }

    /// `GET /schedules/{name}/history`: a page of the executions it started, newest first.
    pub async fn schedule_history(&self, name: &str, limit: u32, offset: u64) -> Result<Value> {
        let mut url = self.http().url(&["schedules", name, "history"])?;
        url.query_pairs_mut().append_pair("limit", &limit.to_string()).append_pair("offset", &offset.to_string());
        self.http().value(self.http().request(Method::GET, url, Auth::Plain)).await
    }
}
