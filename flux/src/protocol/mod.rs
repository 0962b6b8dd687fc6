//! What crosses the network between a flux server, its workers and its clients (features
//! `client`, `worker` and `server`).
//!
//! The client API speaks JSON: executions as summaries whose values are the JSON forms of what
//! is stored, events streamed under the names given here. The worker protocol sends
//! registrations and offers as JSON and claims and checkpoints as MessagePack, so that events
//! and values travel byte for byte as the engine recorded them. The server and the worker client
//! both build on this module; it needs neither of them.
//!
//! Public here are the shapes a client of the API writes itself; the rest is internal to the
//! server and the worker and may change with them.

mod api;
#[cfg(feature = "worker")]
mod json;
#[cfg(feature = "server")]
mod summary;
#[cfg(feature = "worker")]
mod worker;

pub(crate) use self::api::is_resting;
pub use self::api::{NewSecret, STREAM_ERROR, TASK_PROGRESS};
#[cfg(feature = "worker")]
pub(crate) use self::json::msgpack_to_json;
#[cfg(feature = "server")]
pub(crate) use self::json::{json_to_msgpack, rfc3339};
#[cfg(feature = "server")]
pub(crate) use self::summary::{Summary, state_after};
#[cfg(feature = "worker")]
pub(crate) use self::worker::{
    BatchAnswer, BatchOutcome, BatchedCheckpoint, Blob, Checkpoint, CheckpointAnswer, CheckpointBatch, ClaimResponse,
    DeclaredSchedule, EXECUTION_CANCELLED, EXECUTION_RESUMED, EXECUTION_SCHEDULED, Gpu, MAX_BATCH, MSGPACK, Offer,
    Registered, Registration, Resources, WireEvent, WireWrite, WorkflowRef,
};
#[cfg(feature = "server")]
pub(crate) use self::worker::{ProgressReport, WireExecution};
