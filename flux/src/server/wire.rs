//! What crosses the network: JSON forms of stored values and executions, and the MessagePack
//! messages of the worker protocol. Shared by the server and the worker client.

use std::sync::Arc;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Number, Value};

use crate::error::{Error, ErrorKind, Result};
use crate::event::{Event, EventType, ExecutionState};
use crate::store::{StoredExecution, Write};

/// The JSON form of a MessagePack value. Binary strings become arrays of bytes, map keys that
/// are not strings are written as their JSON text, and bytes that are not MessagePack become
/// `null`: a stored value always has a JSON form.
pub(crate) fn msgpack_to_json(bytes: &[u8]) -> Value {
    let mut cursor = bytes;
    match read_value(&mut cursor, 0) {
        Some(v) if cursor.is_empty() => v,
        _ => Value::Null,
    }
}

/// Deeper nesting than this is not decoded (the value becomes `null`).
const MAX_DEPTH: usize = 256;

fn take<'a>(cursor: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
    if cursor.len() < n {
        return None;
    }
    let (head, rest) = cursor.split_at(n);
    *cursor = rest;
    Some(head)
}

fn be(cursor: &mut &[u8], n: usize) -> Option<u64> {
    Some(take(cursor, n)?.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b)))
}

fn read_value(cursor: &mut &[u8], depth: usize) -> Option<Value> {
    if depth > MAX_DEPTH {
        return None;
    }
    let marker = *take(cursor, 1)?.first()?;
    let len = |cursor: &mut &[u8], n: usize| be(cursor, n).and_then(|l| usize::try_from(l).ok());
    Some(match marker {
        0x00..=0x7f => Value::from(marker),
        0x80..=0x8f => read_map(cursor, usize::from(marker & 0x0f), depth)?,
        0x90..=0x9f => read_array(cursor, usize::from(marker & 0x0f), depth)?,
        0xa0..=0xbf => read_str(cursor, usize::from(marker & 0x1f))?,
        0xc0 => Value::Null,
        0xc2 => Value::Bool(false),
        0xc3 => Value::Bool(true),
        0xc4..=0xc6 => {
            let n = len(cursor, 1 << (marker - 0xc4))?;
            Value::Array(take(cursor, n)?.iter().map(|b| Value::from(*b)).collect())
        }
        0xc7..=0xc9 => {
            let n = len(cursor, 1 << (marker - 0xc7))?;
            take(cursor, 1 + n)?;
            Value::Null
        }
        0xca => Number::from_f64(f64::from(f32::from_bits(u32::try_from(be(cursor, 4)?).ok()?)))
            .map_or(Value::Null, Value::Number),
        0xcb => Number::from_f64(f64::from_bits(be(cursor, 8)?)).map_or(Value::Null, Value::Number),
        0xcc..=0xcf => Value::from(be(cursor, 1 << (marker - 0xcc))?),
        0xd0 => Value::from(i64::from(take(cursor, 1)?[0] as i8)),
        0xd1 => Value::from(i64::from(be(cursor, 2)? as u16 as i16)),
        0xd2 => Value::from(i64::from(be(cursor, 4)? as u32 as i32)),
        0xd3 => Value::from(be(cursor, 8)? as i64),
        0xd4..=0xd8 => {
            take(cursor, 1 + (1 << (marker - 0xd4)))?;
            Value::Null
        }
        0xd9..=0xdb => {
            let n = len(cursor, 1 << (marker - 0xd9))?;
            read_str(cursor, n)?
        }
        0xdc | 0xdd => {
            let n = len(cursor, if marker == 0xdc { 2 } else { 4 })?;
            read_array(cursor, n, depth)?
        }
        0xde | 0xdf => {
            let n = len(cursor, if marker == 0xde { 2 } else { 4 })?;
            read_map(cursor, n, depth)?
        }
        0xe0..=0xff => Value::from(i64::from(marker as i8)),
        0xc1 => return None,
    })
}

fn read_str(cursor: &mut &[u8], n: usize) -> Option<Value> {
    Some(Value::String(String::from_utf8_lossy(take(cursor, n)?).into_owned()))
}

fn read_array(cursor: &mut &[u8], n: usize, depth: usize) -> Option<Value> {
    // Every element takes at least one byte: a length beyond the input is corrupt.
    if n > cursor.len() {
        return None;
    }
    let mut items = Vec::with_capacity(n);
    for _ in 0..n {
        items.push(read_value(cursor, depth + 1)?);
    }
    Some(Value::Array(items))
}

fn read_map(cursor: &mut &[u8], n: usize, depth: usize) -> Option<Value> {
    if n > cursor.len() / 2 {
        return None;
    }
    let mut map = Map::new();
    for _ in 0..n {
        let key = match read_value(cursor, depth + 1)? {
            Value::String(s) => s,
            other => other.to_string(),
        };
        map.insert(key, read_value(cursor, depth + 1)?);
    }
    Some(Value::Object(map))
}

/// The canonical MessagePack form of a JSON value, as flux stores inputs.
pub(crate) fn json_to_msgpack(value: &Value) -> Result<Vec<u8>> {
    crate::value::to_msgpack(value)
}

/// A UTC time in RFC 3339 with microseconds (`2026-11-22T10:00:00.123456Z`); a time that
/// format cannot show (after year 9999) is written as microseconds since the Unix epoch.
pub(crate) fn rfc3339(time: SystemTime) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    if write!(out, "{}", humantime::format_rfc3339_micros(time)).is_err() {
        out.clear();
        let _ = write!(out, "{}", crate::event::to_micros(time));
    }
    out
}

/// The state a workflow event moves its execution to, if it is a workflow event.
pub(crate) fn state_after(kind: EventType) -> Option<ExecutionState> {
    Some(match kind {
        EventType::WorkflowScheduled => ExecutionState::Scheduled,
        EventType::WorkflowClaimed => ExecutionState::Claimed,
        EventType::WorkflowStarted | EventType::WorkflowResumed => ExecutionState::Running,
        EventType::WorkflowCompleted => ExecutionState::Completed,
        EventType::WorkflowFailed => ExecutionState::Failed,
        EventType::WorkflowPaused => ExecutionState::Paused,
        EventType::WorkflowResuming => ExecutionState::Resuming,
        EventType::WorkflowResumeScheduled => ExecutionState::ResumeScheduled,
        EventType::WorkflowResumeClaimed => ExecutionState::ResumeClaimed,
        EventType::WorkflowCancelling => ExecutionState::Cancelling,
        EventType::WorkflowCancelled => ExecutionState::Cancelled,
        _ => return None,
    })
}

/// Whether a stream or a waiting request stops at `state`.
pub(crate) fn is_resting(state: ExecutionState) -> bool {
    state.is_terminal() || state == ExecutionState::Paused
}

/// The JSON form of one event (`{"id", "type", "source_id", "name", "value", "time"}`).
pub(crate) fn event_json(execution_id: &str, event: &Event) -> Value {
    let mut map = Map::new();
    map.insert("id".into(), Value::String(format!("{execution_id}-{}", event.seq)));
    map.insert("type".into(), Value::String(event.kind.as_str().to_string()));
    map.insert("source_id".into(), Value::String(event.source_id.to_string()));
    map.insert("name".into(), Value::String(event.name.to_string()));
    map.insert("value".into(), msgpack_to_json(&event.value));
    map.insert("time".into(), Value::String(rfc3339(event.time)));
    Value::Object(map)
}

/// An execution summary as sent on the wire, built from storage or from a stream of events.
#[derive(Clone, Debug)]
pub(crate) struct Summary {
    pub(crate) workflow_name: String,
    pub(crate) execution_id: String,
    pub(crate) input: Value,
    pub(crate) output: Value,
    pub(crate) state: ExecutionState,
    /// `Some` when the events are asked for (`?detailed=true`).
    pub(crate) events: Option<Vec<Value>>,
}

impl Summary {
    /// The summary of a stored execution; `resolve` turns an output-storage reference into the
    /// value it stands for.
    pub(crate) fn of(stored: &StoredExecution, detailed: bool, resolve: impl Fn(&[u8]) -> Result<Vec<u8>>) -> Summary {
        let output = match (&stored.output, stored.state) {
            (Some(bytes), ExecutionState::Completed) => match resolve(bytes) {
                Ok(bytes) => msgpack_to_json(&bytes),
                Err(e) => unreadable(&e),
            },
            (Some(bytes), _) => msgpack_to_json(bytes),
            (None, _) => Value::Null,
        };
        Summary {
            workflow_name: stored.workflow_name.clone(),
            execution_id: stored.id.clone(),
            input: msgpack_to_json(&stored.input),
            output,
            state: stored.state,
            events: detailed.then(|| stored.events.iter().map(|e| event_json(&stored.id, e)).collect()),
        }
    }

    /// Applies one durable event; returns the new state if the event changed it.
    pub(crate) fn apply(
        &mut self,
        event: &Event,
        resolve: impl Fn(&[u8]) -> Result<Vec<u8>>,
    ) -> Option<ExecutionState> {
        if let Some(events) = &mut self.events {
            events.push(event_json(&self.execution_id, event));
        }
        let state = state_after(event.kind)?;
        match event.kind {
            EventType::WorkflowCompleted => {
                self.output = match resolve(&event.value) {
                    Ok(bytes) => msgpack_to_json(&bytes),
                    Err(e) => unreadable(&e),
                }
            }
            EventType::WorkflowFailed | EventType::WorkflowCancelled => self.output = msgpack_to_json(&event.value),
            EventType::WorkflowPaused => {
                self.output = match msgpack_to_json(&event.value) {
                    Value::Object(mut map) => map.remove("output").unwrap_or(Value::Null),
                    _ => Value::Null,
                }
            }
            EventType::WorkflowResumed | EventType::WorkflowResuming => self.output = Value::Null,
            _ => {}
        }
        self.state = state;
        Some(state)
    }

    /// The JSON object: `{"workflow_id", "workflow_name", "execution_id", "input", "output",
    /// "state"}` and, when detailed, `"events"`.
    pub(crate) fn to_json(&self) -> Value {
        let mut map = Map::new();
        map.insert("workflow_id".into(), Value::String(self.workflow_name.clone()));
        map.insert("workflow_name".into(), Value::String(self.workflow_name.clone()));
        map.insert("execution_id".into(), Value::String(self.execution_id.clone()));
        map.insert("input".into(), self.input.clone());
        map.insert("output".into(), self.output.clone());
        map.insert("state".into(), Value::String(self.state.as_str().to_string()));
        if let Some(events) = &self.events {
            map.insert("events".into(), Value::Array(events.clone()));
        }
        Value::Object(map)
    }
}

fn unreadable(e: &Error) -> Value {
    serde_json::json!({ "unreadable_output": e.to_string() })
}

/// Bytes written as a MessagePack binary string (not an array of numbers).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Blob(pub(crate) Vec<u8>);

impl Serialize for Blob {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_bytes(&self.0)
    }
}

impl<'de> Deserialize<'de> for Blob {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = Blob;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a binary string")
            }
            fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> std::result::Result<Blob, E> {
                Ok(Blob(v.to_vec()))
            }
            fn visit_byte_buf<E: serde::de::Error>(self, v: Vec<u8>) -> std::result::Result<Blob, E> {
                Ok(Blob(v))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> std::result::Result<Blob, A::Error> {
                let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1 << 16));
                while let Some(b) = seq.next_element::<u8>()? {
                    out.push(b);
                }
                Ok(Blob(out))
            }
        }
        d.deserialize_byte_buf(Visit)
    }
}

/// An event in the worker protocol: exact, with its MessagePack value untouched.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct WireEvent {
    pub(crate) seq: u64,
    #[serde(rename = "type")]
    pub(crate) kind: String,
    pub(crate) source_id: String,
    pub(crate) name: String,
    pub(crate) value: Blob,
    /// Microseconds since the Unix epoch.
    pub(crate) time: i64,
}

impl WireEvent {
    pub(crate) fn from_event(e: &Event) -> WireEvent {
        WireEvent {
            seq: e.seq,
            kind: e.kind.as_str().to_string(),
            source_id: e.source_id.to_string(),
            name: e.name.to_string(),
            value: Blob(e.value.to_vec()),
            time: crate::event::to_micros(e.time),
        }
    }

    pub(crate) fn into_event(self) -> Result<Event> {
        let kind: EventType = self
            .kind
            .parse()
            .map_err(|e: Error| Error::new(ErrorKind::Decode, format!("event #{}: {}", self.seq, e.message())))?;
        Ok(Event::new(self.seq, kind, self.source_id, self.name, self.value.0, crate::event::from_micros(self.time)))
    }
}

/// A stored execution in the worker protocol.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct WireExecution {
    pub(crate) id: String,
    pub(crate) workflow_name: String,
    pub(crate) state: String,
    pub(crate) input: Blob,
    pub(crate) output: Option<Blob>,
    pub(crate) parent_id: Option<String>,
    pub(crate) claim_generation: u64,
    pub(crate) events: Vec<WireEvent>,
}

impl WireExecution {
    pub(crate) fn from_stored(s: &StoredExecution) -> WireExecution {
        WireExecution {
            id: s.id.clone(),
            workflow_name: s.workflow_name.clone(),
            state: s.state.as_str().to_string(),
            input: Blob(s.input.clone()),
            output: s.output.clone().map(Blob),
            parent_id: s.parent_id.clone(),
            claim_generation: s.claim_generation,
            events: s.events.iter().map(WireEvent::from_event).collect(),
        }
    }

    pub(crate) fn into_stored(self, worker: &str) -> Result<StoredExecution> {
        let state: ExecutionState = self.state.parse()?;
        let events = self.events.into_iter().map(WireEvent::into_event).collect::<Result<Vec<_>>>()?;
        for (i, e) in events.iter().enumerate() {
            if e.seq != i as u64 + 1 {
                return Err(Error::new(
                    ErrorKind::Decode,
                    format!("the log of execution `{}` skips from #{i} to #{}", self.id, e.seq),
                ));
            }
        }
        let now = crate::event::now();
        Ok(StoredExecution {
            id: self.id,
            workflow_name: self.workflow_name,
            state,
            input: self.input.0,
            output: self.output.map(|o| o.0),
            parent_id: self.parent_id,
            created_at: now,
            updated_at: now,
            worker: Some(worker.to_string()),
            claim_generation: self.claim_generation,
            events,
        })
    }
}

/// The answer to a claim.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct ClaimResponse {
    /// The claim generation every checkpoint must carry.
    pub(crate) generation: u64,
    /// The execution with its log, including the claim's own event.
    pub(crate) execution: WireExecution,
    /// The input of a resume that has not reached its pause yet (MessagePack).
    pub(crate) resume_input: Option<Blob>,
}

/// One change a worker sends in a checkpoint.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub(crate) enum WireWrite {
    /// Append an event.
    Append { event: WireEvent },
    /// Change the execution's state (with its output or error).
    SetState { state: String, output: Option<Blob>, time: i64 },
    /// Progress a task sent before the writes that follow it: passed on to the execution's
    /// streams, never stored.
    Progress { task_id: String, name: String, value: Blob, time: i64 },
    /// The resume the worker was given was refused (its input does not fit the pause); the
    /// execution went back to `PAUSED` with the `SetState` before this.
    Refused { reason: String },
}

impl WireWrite {
    /// The wire form of an engine write for `execution_id`; `None` for writes a worker keeps to
    /// itself (the task cache) or never sends.
    pub(crate) fn from_write(w: &Write) -> Option<WireWrite> {
        match w {
            Write::Append { event, .. } => Some(WireWrite::Append { event: WireEvent::from_event(event) }),
            Write::SetState { state, output, time, .. } => Some(WireWrite::SetState {
                state: state.as_str().to_string(),
                output: output.as_ref().map(|o| Blob(o.to_vec())),
                time: crate::event::to_micros(*time),
            }),
            _ => None,
        }
    }

    /// The wire form of a progress event.
    pub(crate) fn progress(event: &Event) -> WireWrite {
        WireWrite::Progress {
            task_id: event.source_id.to_string(),
            name: event.name.to_string(),
            value: Blob(event.value.to_vec()),
            time: crate::event::to_micros(event.time),
        }
    }

    /// The engine write this stands for (`Progress` and `Refused` are not writes: the caller
    /// handles them).
    pub(crate) fn into_write(self, execution_id: &Arc<str>) -> Result<Write> {
        Ok(match self {
            WireWrite::Progress { .. } | WireWrite::Refused { .. } => {
                return Err(Error::new(ErrorKind::Decode, "progress and refusals are not stored"));
            }
            WireWrite::Append { event } => {
                Write::Append { execution_id: execution_id.clone(), event: event.into_event()? }
            }
            WireWrite::SetState { state, output, time } => Write::SetState {
                execution_id: execution_id.clone(),
                state: state.parse()?,
                output: output.map(|o| Arc::from(o.0)),
                time: crate::event::from_micros(time),
            },
        })
    }
}

/// A checkpoint: what a worker recorded since its last one, in order.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub(crate) struct Checkpoint {
    pub(crate) generation: u64,
    pub(crate) writes: Vec<WireWrite>,
}

/// A message the server pushes to a connected worker.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct Offer {
    pub(crate) execution_id: String,
    pub(crate) workflow_name: String,
}

/// The SSE event names of the worker connection.
pub(crate) const EXECUTION_SCHEDULED: &str = "execution_scheduled";
pub(crate) const EXECUTION_RESUMED: &str = "execution_resumed";
pub(crate) const EXECUTION_CANCELLED: &str = "execution_cancelled";

/// The media type of worker-protocol bodies.
pub(crate) const MSGPACK: &str = "application/msgpack";

/// A workflow a worker offers to run.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct WorkflowRef {
    pub(crate) name: String,
    #[serde(default = "first_version")]
    pub(crate) version: u32,
}

fn first_version() -> u32 {
    1
}

/// What a worker machine has: reported at registration.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct Resources {
    #[serde(default)]
    pub(crate) cpu_count: u64,
    #[serde(default)]
    pub(crate) memory_total_bytes: u64,
    #[serde(default)]
    pub(crate) memory_available_bytes: u64,
    #[serde(default)]
    pub(crate) gpus: Vec<Gpu>,
}

/// One GPU of a worker machine.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct Gpu {
    pub(crate) name: String,
    #[serde(default)]
    pub(crate) memory_total_bytes: u64,
}

/// `POST /workers/register`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct Registration {
    pub(crate) name: String,
    pub(crate) workflows: Vec<WorkflowRef>,
    #[serde(default)]
    pub(crate) resources: Resources,
}

/// The answer to a registration.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct Registered {
    pub(crate) name: String,
    pub(crate) session_token: String,
    /// How long a claim lasts without news from the worker, in milliseconds: the worker
    /// renews its claims well within it.
    #[serde(default)]
    pub(crate) lease_timeout_ms: u64,
}

/// The answer to a checkpoint.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize)]
pub(crate) struct CheckpointAnswer {
    /// The last event stored.
    #[serde(default)]
    pub(crate) seq: u64,
    /// The execution's cancellation was asked for.
    #[serde(default)]
    pub(crate) cancelling: bool,
}

/// `POST /workers/{name}/progress/{id}`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct ProgressReport {
    pub(crate) task_id: String,
    pub(crate) name: String,
    pub(crate) value: Value,
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn stored_values_read_as_the_json_they_came_from() {
        #[derive(Serialize)]
        struct Order {
            id: u32,
            items: Vec<String>,
            total: f64,
            note: Option<String>,
            delta: i64,
        }
        let order = Order { id: 7, items: vec!["a".into(), "b".into()], total: 9.5, note: None, delta: -300 };
        let bytes = crate::value::to_msgpack(&order).unwrap();
        assert_eq!(
            msgpack_to_json(&bytes),
            serde_json::json!({"id": 7, "items": ["a", "b"], "total": 9.5, "note": null, "delta": -300})
        );
        let json = serde_json::json!({"x": [1, -2, 3.25, "s", true, null, {"y": u64::MAX}], "big": i64::MIN});
        assert_eq!(msgpack_to_json(&json_to_msgpack(&json).unwrap()), json);
    }

    #[test]
    fn odd_values_still_have_a_json_form() {
        let ints: HashMap<u8, &str> = [(1, "one")].into_iter().collect();
        assert_eq!(msgpack_to_json(&crate::value::to_msgpack(&ints).unwrap()), serde_json::json!({"1": "one"}));
        assert_eq!(msgpack_to_json(&crate::value::to_msgpack(&Blob(vec![1, 2])).unwrap()), serde_json::json!([1, 2]));
        assert_eq!(msgpack_to_json(&[0xc1]), Value::Null);
        assert_eq!(msgpack_to_json(&[0xdd, 0xff, 0xff, 0xff, 0xff]), Value::Null);
        assert_eq!(msgpack_to_json(&[0x91]), Value::Null);
        assert_eq!(msgpack_to_json(&[0x01, 0x02]), Value::Null);
        let deep: Vec<u8> = std::iter::repeat_n(0x91, 10_000).chain([0xc0]).collect();
        assert_eq!(msgpack_to_json(&deep), Value::Null);
    }

    #[test]
    fn times_beyond_year_9999_still_format() {
        assert_eq!(rfc3339(crate::event::from_micros(0)), "1970-01-01T00:00:00.000000Z");
        let far = crate::event::from_micros(i64::MAX);
        assert_eq!(rfc3339(far), i64::MAX.to_string());
    }

    #[test]
    fn protocol_messages_round_trip() {
        let event = Event::new(3, EventType::TaskCompleted, "t_1", "t", vec![0xa1, b'x'], crate::event::now());
        let checkpoint = Checkpoint {
            generation: 4,
            writes: vec![
                WireWrite::Append { event: WireEvent::from_event(&event) },
                WireWrite::SetState { state: "COMPLETED".into(), output: Some(Blob(vec![1])), time: 5 },
            ],
        };
        let bytes = crate::value::to_msgpack(&checkpoint).unwrap();
        let back: Checkpoint = crate::value::from_msgpack(&bytes).unwrap();
        assert_eq!(back.generation, 4);
        let id: Arc<str> = Arc::from("e");
        let mut writes = back.writes.into_iter().map(|w| w.into_write(&id).unwrap());
        match writes.next() {
            Some(Write::Append { event: e, .. }) => assert_eq!(e, event),
            other => panic!("{other:?}"),
        }
        match writes.next() {
            Some(Write::SetState { state, output, .. }) => {
                assert_eq!(state, ExecutionState::Completed);
                assert_eq!(output.as_deref(), Some(&[1u8][..]));
            }
            other => panic!("{other:?}"),
        }
    }
}
