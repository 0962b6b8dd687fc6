//! The worker protocol: what a worker and its server send each other. Registration and offers
//! are JSON; claims and checkpoints are MessagePack, carrying events and values byte for byte
//! as the engine recorded them.

use serde::{Deserialize, Serialize};

use crate::error::{Error, ErrorKind, Result};
use crate::event::{Event, EventType, ExecutionState};
use crate::store::{StoredExecution, Write};

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
    /// The wire form of a recorded event.
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

    /// The event this stands for; an unknown event type is a decoding error.
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
    /// The version of the workflow it runs; a server that sends none stored none (1).
    #[serde(default = "first_version")]
    pub(crate) version: u32,
}

impl WireExecution {
    /// The wire form of a stored execution, as a claim hands it to a worker.
    #[cfg(feature = "server")]
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
            version: s.version,
        }
    }

    /// The stored execution a worker runs over, held by `worker`; a log with a gap is refused.
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
            version: self.version,
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
    /// The W3C `traceparent` of the request that started the execution, if it carried one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) traceparent: Option<String>,
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
    #[cfg(feature = "server")]
    pub(crate) fn into_write(self, execution_id: &std::sync::Arc<str>) -> Result<Write> {
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
                output: output.map(|o| std::sync::Arc::from(o.0)),
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

/// The SSE event of the worker connection that offers a new execution.
pub(crate) const EXECUTION_SCHEDULED: &str = "execution_scheduled";
/// The SSE event of the worker connection that offers the resume of a paused execution.
pub(crate) const EXECUTION_RESUMED: &str = "execution_resumed";
/// The SSE event of the worker connection that asks for the cancellation of an execution it
/// holds.
pub(crate) const EXECUTION_CANCELLED: &str = "execution_cancelled";

/// The media type of worker-protocol bodies.
pub(crate) const MSGPACK: &str = "application/msgpack";

/// A workflow a worker offers to run.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct WorkflowRef {
    pub(crate) name: String,
    #[serde(default = "first_version")]
    pub(crate) version: u32,
    /// The schedule the workflow declares (`#[flux::workflow(schedule = "..")]`), which the
    /// server creates (or brings up to date) when the worker registers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) schedule: Option<DeclaredSchedule>,
    /// How many of its executions may run at once (`#[flux::workflow(max_concurrency = n)]`):
    /// the server offers the others once one stops.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) max_concurrency: Option<u32>,
}

/// A schedule a worker's workflow declares.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct DeclaredSchedule {
    /// The cron expression.
    pub(crate) cron: String,
    /// Its time zone.
    pub(crate) timezone: String,
    /// The input of each fire (JSON).
    #[serde(default)]
    pub(crate) input: serde_json::Value,
}

/// The version of a workflow registered without one.
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
    /// How many executions the worker runs at once: the server offers it no more (unlimited
    /// when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) max_concurrency: Option<u32>,
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

/// The most checkpoints one batch (`POST /workers/{name}/checkpoints`) holds.
pub(crate) const MAX_BATCH: usize = 1024;

/// `POST /workers/{name}/checkpoints`: the checkpoints of several executions, at most one each.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub(crate) struct CheckpointBatch {
    pub(crate) items: Vec<BatchedCheckpoint>,
}

/// One execution's checkpoint in a batch.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct BatchedCheckpoint {
    pub(crate) execution_id: String,
    pub(crate) checkpoint: Checkpoint,
}

/// The answer to a batch: one outcome per checkpoint, in the order sent.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub(crate) struct BatchAnswer {
    pub(crate) items: Vec<BatchOutcome>,
}

/// What became of one checkpoint of a batch: the HTTP status it would have had alone (200
/// stored, 409 the claim is over, ...), and the answer or the reason.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct BatchOutcome {
    pub(crate) status: u16,
    #[serde(default)]
    pub(crate) seq: u64,
    #[serde(default)]
    pub(crate) cancelling: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) detail: Option<String>,
}

impl BatchOutcome {
    /// A checkpoint stored (or found stored already).
    #[cfg(feature = "server")]
    pub(crate) fn stored(answer: CheckpointAnswer) -> BatchOutcome {
        BatchOutcome { status: 200, seq: answer.seq, cancelling: answer.cancelling, detail: None }
    }

    /// A checkpoint refused with `status`, for `detail`.
    #[cfg(feature = "server")]
    pub(crate) fn refused(status: u16, detail: String) -> BatchOutcome {
        BatchOutcome { status, seq: 0, cancelling: false, detail: Some(detail) }
    }
}

/// `POST /workers/{name}/progress/{id}`.
#[cfg(feature = "server")]
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct ProgressReport {
    pub(crate) task_id: String,
    pub(crate) name: String,
    pub(crate) value: serde_json::Value,
}

#[cfg(test)]
mod tests {
    /// A checkpoint as the worker encodes it decodes, on the server, to the writes it stands for.
    #[cfg(feature = "server")]
    #[test]
    fn protocol_messages_round_trip() {
        use std::sync::Arc;

        use super::*;

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
