//! Rendering the server's JSON for people (aligned tables, key-value views, one line per streamed
//! event) or for programs (pretty JSON, one JSON object per streamed event).

use std::time::SystemTime;

use flux::client::ExecutionList;
use flux::protocol::TASK_PROGRESS;
use serde_json::{Map, Value};

use crate::cli::Format;

/// The widest a table cell grows before it is cut with `…`.
const MAX_CELL_CHARS: usize = 80;

/// The width the event names of a stream are padded to.
const STREAM_EVENT_WIDTH: usize = 32;

/// The order of a summary's fields in the key-value view; other fields follow, sorted.
const SUMMARY_FIELDS: [&str; 6] = ["workflow_name", "execution_id", "state", "input", "output", "workflow_id"];

/// Fields whose values are the user's data: shown as JSON, so `"50"` and `50` stay distinct.
const DATA_FIELDS: [&str; 3] = ["input", "output", "value"];

/// `value` as pretty JSON.
pub fn pretty(value: &Value) -> String {
    serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string())
}

/// A value as a table cell: strings as they are, `null` as `-`, anything else as compact JSON;
/// control characters escaped (one line per row, no terminal escapes from the server), long
/// values cut.
pub fn cell(value: &Value) -> String {
    match value {
        Value::String(text) => clean(text),
        Value::Null => "-".to_string(),
        other => clean(&other.to_string()),
    }
}

/// A value of the user's data as a cell: always JSON.
pub fn data_cell(value: &Value) -> String {
    clean(&value.to_string())
}

/// `text` with control characters escaped and cut to [`MAX_CELL_CHARS`].
fn clean(text: &str) -> String {
    let mut out = String::new();
    for (count, c) in text.chars().enumerate() {
        if count >= MAX_CELL_CHARS {
            out.push('…');
            break;
        }
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// Rows under headers, columns aligned with two spaces between them, no trailing spaces.
pub fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, text) in row.iter().enumerate() {
            if let Some(width) = widths.get_mut(i) {
                *width = (*width).max(text.chars().count());
            }
        }
    }
    let mut out = String::new();
    let header_row: Vec<String> = headers.iter().map(|h| h.to_string()).collect();
    for row in std::iter::once(&header_row).chain(rows) {
        let mut line = String::new();
        for (text, width) in row.iter().zip(&widths) {
            line.push_str(text);
            line.extend(std::iter::repeat_n(' ', width.saturating_sub(text.chars().count()) + 2));
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// `key  value` lines, the values aligned.
pub fn key_values(pairs: &[(String, String)]) -> String {
    let width = pairs.iter().map(|(key, _)| key.chars().count()).max().unwrap_or(0);
    let mut out = String::new();
    for (key, value) in pairs {
        let line = format!("{key:<width$}  {value}");
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// A key-value view of a JSON object: the `leading` keys first (those present), then the rest
/// sorted; data fields as JSON.
pub fn object_view(object: &Map<String, Value>, leading: &[&str], skip: &[&str]) -> String {
    let mut keys: Vec<&str> = leading.iter().copied().filter(|k| object.contains_key(*k)).collect();
    let mut rest: Vec<&str> =
        object.keys().map(String::as_str).filter(|k| !leading.contains(k) && !skip.contains(k)).collect();
    rest.sort_unstable();
    keys.extend(rest);
    let pairs: Vec<(String, String)> = keys
        .into_iter()
        .map(|key| {
            let value = &object[key];
            let shown = if DATA_FIELDS.contains(&key) { data_cell(value) } else { cell(value) };
            (key.to_string(), shown)
        })
        .collect();
    key_values(&pairs)
}

/// A table of JSON objects: a column per key (but those in `skip`), the `leading` keys first;
/// items that are not objects as single cells.
pub fn objects_table(items: &[Value], leading: &[&str], skip: &[&str]) -> String {
    let mut columns: Vec<String> = Vec::new();
    for key in leading {
        if items.iter().any(|item| item.get(key).is_some()) {
            columns.push(key.to_string());
        }
    }
    let mut rest: Vec<String> = items
        .iter()
        .filter_map(Value::as_object)
        .flat_map(|object| object.keys().cloned())
        .filter(|key| !columns.contains(key) && !skip.contains(&key.as_str()))
        .collect();
    rest.sort_unstable();
    rest.dedup();
    columns.extend(rest);
    if columns.is_empty() {
        columns.push("value".to_string());
    }
    let rows: Vec<Vec<String>> = items
        .iter()
        .map(|item| match item {
            Value::Object(object) => columns
                .iter()
                .map(|key| match object.get(key) {
                    Some(value) if DATA_FIELDS.contains(&key.as_str()) => data_cell(value),
                    Some(value) => cell(value),
                    None => "-".to_string(),
                })
                .collect(),
            other => {
                let mut row = vec![cell(other)];
                row.resize(columns.len(), String::new());
                row
            }
        })
        .collect();
    let headers: Vec<String> = columns.iter().map(|c| c.to_uppercase()).collect();
    let headers: Vec<&str> = headers.iter().map(String::as_str).collect();
    table(&headers, &rows)
}

/// An execution summary (run, resume, status, cancel): its fields as key-values, then its events
/// (if detailed) as a table.
pub fn summary(value: &Value) -> String {
    let Some(object) = value.as_object() else {
        return format!("{}\n", pretty(value));
    };
    let mut out = object_view(object, &SUMMARY_FIELDS, &["events"]);
    if let Some(events) = object.get("events") {
        match events.as_array() {
            Some(events) if !events.is_empty() => {
                out.push_str("\nevents:\n");
                // The events' own ids are left to `--format json`: long, and rarely what one looks for.
                out.push_str(&objects_table(events, &["time", "type", "name", "source_id", "value"], &["id"]));
            }
            Some(_) => out.push_str("\nevents: none\n"),
            None => out.push_str(&format!("\nevents: {}\n", cell(events))),
        }
    }
    out
}

/// A page of executions: a table (id, workflow, version, state, created, updated; times to the
/// second, in UTC), then which of all that match it shows and how to ask for the next page.
pub fn execution_list(list: &ExecutionList) -> String {
    let text = |s: &str| clean(s);
    let time = |t: SystemTime| humantime::format_rfc3339_seconds(t).to_string();
    if list.executions.is_empty() {
        return match list.total {
            0 => "no executions match\n".to_string(),
            total => format!("no executions at offset {}: {total} match in all\n", list.offset),
        };
    }
    let rows: Vec<Vec<String>> = list
        .executions
        .iter()
        .map(|e| {
            vec![
                text(&e.execution_id),
                text(&e.workflow_name),
                e.workflow_version.to_string(),
                e.state.to_string(),
                time(e.created_at),
                time(e.updated_at),
            ]
        })
        .collect();
    let mut out = table(&["ID", "WORKFLOW", "VERSION", "STATE", "CREATED", "UPDATED"], &rows);
    let first = list.offset.saturating_add(1);
    let last = list.offset.saturating_add(list.executions.len() as u64);
    out.push_str(&format!("\n{first}-{last} of {} shown", list.total));
    if list.has_more() {
        out.push_str(&format!("; the next page: --offset {last}"));
    }
    out.push('\n');
    out
}

/// One streamed event as a line: `EVENT  summary` (table) or `{"event": .., "data": ..}` (JSON).
pub fn stream_line(format: Format, event: &str, data: &Value) -> String {
    match format {
        // Written by hand so that `event` comes first whatever serde_json's map order.
        Format::Json => format!("{{\"event\":{},\"data\":{data}}}", Value::String(event.to_string())),
        Format::Table => {
            let summary = match data {
                Value::Object(object) if event == TASK_PROGRESS || object.contains_key("task_id") => {
                    let name = object.get("name").map(cell).unwrap_or_else(|| "-".to_string());
                    let value = object.get("value").map(data_cell).unwrap_or_default();
                    format!("{name}  {value}")
                }
                Value::Object(object) if object.contains_key("state") => {
                    let mut parts = vec![cell(&object["state"])];
                    if let Some(id) = object.get("execution_id") {
                        parts.push(cell(id));
                    }
                    match object.get("output") {
                        Some(Value::Null) | None => {}
                        Some(output) => parts.push(format!("output: {}", data_cell(output))),
                    }
                    parts.join("  ")
                }
                other => data_cell(other),
            };
            let line = format!("{:<STREAM_EVENT_WIDTH$}  {summary}", clean(event));
            line.trim_end().to_string()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn tables_align_columns_without_trailing_spaces() {
        let rows = vec![
            vec!["hello_world".to_string(), "1".to_string()],
            vec!["a".to_string(), "12".to_string()],
            vec!["é".to_string(), String::new()],
        ];
        assert_eq!(table(&["NAME", "VERSION"], &rows), "NAME         VERSION\nhello_world  1\na            12\né\n");
        assert_eq!(table(&["NAME"], &[]), "NAME\n");
    }

    #[test]
    fn key_values_align_the_values() {
        let pairs = vec![("state".to_string(), "COMPLETED".to_string()), ("id".to_string(), String::new())];
        assert_eq!(key_values(&pairs), "state  COMPLETED\nid\n");
    }

    #[test]
    fn cells_are_one_short_line() {
        assert_eq!(cell(&json!("plain")), "plain");
        assert_eq!(cell(&json!(null)), "-");
        assert_eq!(cell(&json!({"a": [1, 2]})), r#"{"a":[1,2]}"#);
        assert_eq!(cell(&json!("two\nlines\u{1b}[31m")), "two\\nlines\\u{1b}[31m");
        let long = cell(&json!("y".repeat(200)));
        assert_eq!(long.chars().count(), MAX_CELL_CHARS + 1);
        assert!(long.ends_with('…'));
        assert_eq!(data_cell(&json!("50")), "\"50\"");
        assert_eq!(data_cell(&json!(50)), "50");
    }

    #[test]
    fn workflow_lists_are_tables_with_name_first() {
        let list = json!([{"version": 1, "name": "hello_world"}, {"name": "countdown", "version": 2, "extra": true}]);
        let shown = objects_table(list.as_array().expect("array"), &["name", "version"], &[]);
        assert_eq!(shown, "NAME         VERSION  EXTRA\nhello_world  1        -\ncountdown    2        true\n");
    }

    #[test]
    fn summaries_show_fields_in_a_fixed_order_then_events() {
        let value = json!({
            "workflow_id": "w1",
            "workflow_name": "hello_world",
            "execution_id": "e1",
            "input": "World",
            "output": "Hello, World",
            "state": "COMPLETED",
            "events": [
                {"id": "1", "type": "WORKFLOW_STARTED", "source_id": "hello_world_e1", "name": "hello_world",
                 "value": "World", "time": "2025-01-01T00:00:00Z"},
            ],
        });
        let shown = summary(&value);
        let expected = "\
workflow_name  hello_world
execution_id   e1
state          COMPLETED
input          \"World\"
output         \"Hello, World\"
workflow_id    w1

events:
TIME                  TYPE              NAME         SOURCE_ID       VALUE
2025-01-01T00:00:00Z  WORKFLOW_STARTED  hello_world  hello_world_e1  \"World\"
";
        assert_eq!(shown, expected);
        let no_events = summary(&json!({"state": "PAUSED", "output": null, "events": []}));
        assert_eq!(no_events, "state   PAUSED\noutput  null\n\nevents: none\n");
    }

    #[test]
    fn execution_lists_are_a_table_and_what_part_of_the_total_it_shows() {
        let row = |id: &str, state: &str| {
            json!({"execution_id": id, "workflow_name": "hello_world", "workflow_version": 2, "state": state,
                   "parent_id": null, "worker": "w1", "created_at": "2026-12-07T03:00:00.123456Z",
                   "updated_at": "2026-12-07T03:00:01.5Z"})
        };
        let list = |executions: Vec<Value>, total: u64, offset: u64| {
            let answer = json!({"executions": executions, "total": total, "limit": 2, "offset": offset});
            ExecutionList::from_json(answer).expect("a list")
        };
        let shown = execution_list(&list(vec![row("e2", "RUNNING"), row("e1\u{1b}", "COMPLETED")], 5, 0));
        let expected = "\
ID        WORKFLOW     VERSION  STATE      CREATED               UPDATED
e2        hello_world  2        RUNNING    2026-12-07T03:00:00Z  2026-12-07T03:00:01Z
e1\\u{1b}  hello_world  2        COMPLETED  2026-12-07T03:00:00Z  2026-12-07T03:00:01Z

1-2 of 5 shown; the next page: --offset 2
";
        assert_eq!(shown, expected);
        let last = execution_list(&list(vec![row("e0", "FAILED")], 5, 4));
        assert!(last.ends_with("\n5-5 of 5 shown\n"), "{last}");
        assert_eq!(execution_list(&list(vec![], 0, 0)), "no executions match\n");
        assert_eq!(execution_list(&list(vec![], 5, 10)), "no executions at offset 10: 5 match in all\n");
    }

    #[test]
    fn streamed_events_are_one_line_each() {
        let completed = json!({"execution_id": "e1", "state": "COMPLETED", "output": "Hello, World"});
        assert_eq!(
            stream_line(Format::Table, "hello_world.execution.completed", &completed),
            "hello_world.execution.completed   COMPLETED  e1  output: \"Hello, World\""
        );
        let running = json!({"execution_id": "e1", "state": "RUNNING", "output": null});
        assert_eq!(
            stream_line(Format::Table, "hello_world.execution.running", &running),
            "hello_world.execution.running     RUNNING  e1"
        );
        let progress = json!({"execution_id": "e1", "task_id": "t", "name": "count_step", "value": "3/5"});
        assert_eq!(
            stream_line(Format::Table, "task.progress", &progress),
            format!("{:<32}  count_step  \"3/5\"", "task.progress")
        );
        let line = stream_line(Format::Json, "task.progress", &progress);
        let parsed: Value = serde_json::from_str(&line).expect("json");
        assert_eq!(parsed, json!({"event": "task.progress", "data": progress}));
        assert!(line.starts_with(r#"{"event":"task.progress","data":{"#), "{line}");
        assert!(!line.contains('\n'));
    }
}
