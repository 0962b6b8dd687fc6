//! Events, event types and execution states.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::{Error, ErrorKind, Result};

macro_rules! wire_enum {
    ($(#[$meta:meta])* $name:ident, $what:literal { $($(#[$vmeta:meta])* $variant:ident = $wire:literal,)* }) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum $name {
            $($(#[$vmeta])* $variant,)*
        }

        impl $name {
            /// Every value, in the order of the specification.
            pub const ALL: &'static [$name] = &[$($name::$variant,)*];

            /// The wire name (`SCREAMING_SNAKE_CASE`), as stored and sent.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $wire,)*
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = Error;
            fn from_str(s: &str) -> Result<Self> {
                match s {
                    $($wire => Ok($name::$variant),)*
                    other => Err(Error::new(ErrorKind::Corrupt, format!("unknown {} `{other}`", $what))),
                }
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
                let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

wire_enum! {
    /// The type of an event in an execution's log.
    ///
    /// ```
    /// use flux::EventType;
    /// assert_eq!(EventType::TaskStarted.to_string(), "TASK_STARTED");
    /// assert_eq!("WORKFLOW_COMPLETED".parse::<EventType>()?, EventType::WorkflowCompleted);
    /// # Ok::<(), flux::Error>(())
    /// ```
    EventType, "event type" {
        /// The execution was scheduled for a worker.
        WorkflowScheduled = "WORKFLOW_SCHEDULED",
        /// A worker claimed the execution.
        WorkflowClaimed = "WORKFLOW_CLAIMED",
        /// The workflow body started (written once per execution).
        WorkflowStarted = "WORKFLOW_STARTED",
        /// The workflow returned its output.
        WorkflowCompleted = "WORKFLOW_COMPLETED",
        /// The workflow returned an error; the value is the structured error.
        WorkflowFailed = "WORKFLOW_FAILED",
        /// The workflow paused.
        WorkflowPaused = "WORKFLOW_PAUSED",
        /// A resume was requested.
        WorkflowResuming = "WORKFLOW_RESUMING",
        /// The workflow resumed at its pause point.
        WorkflowResumed = "WORKFLOW_RESUMED",
        /// A resume was scheduled for a worker.
        WorkflowResumeScheduled = "WORKFLOW_RESUME_SCHEDULED",
        /// A worker claimed a resume.
        WorkflowResumeClaimed = "WORKFLOW_RESUME_CLAIMED",
        /// A cancellation was requested.
        WorkflowCancelling = "WORKFLOW_CANCELLING",
        /// The execution was cancelled.
        WorkflowCancelled = "WORKFLOW_CANCELLED",
        /// A task started its first attempt; the value is its arguments.
        TaskStarted = "TASK_STARTED",
        /// A task completed; the value is its output.
        TaskCompleted = "TASK_COMPLETED",
        /// A task failed for good; the value is the structured error.
        TaskFailed = "TASK_FAILED",
        /// A task was cancelled.
        TaskCancelled = "TASK_CANCELLED",
        /// A task paused.
        TaskPaused = "TASK_PAUSED",
        /// A paused task resumed.
        TaskResumed = "TASK_RESUMED",
        /// Progress reported by a task (never stored).
        TaskProgress = "TASK_PROGRESS",
        /// A retry attempt started.
        TaskRetryStarted = "TASK_RETRY_STARTED",
        /// A retry attempt succeeded.
        TaskRetryCompleted = "TASK_RETRY_COMPLETED",
        /// An attempt failed.
        TaskRetryFailed = "TASK_RETRY_FAILED",
        /// The fallback started.
        TaskFallbackStarted = "TASK_FALLBACK_STARTED",
        /// The fallback succeeded.
        TaskFallbackCompleted = "TASK_FALLBACK_COMPLETED",
        /// The fallback failed.
        TaskFallbackFailed = "TASK_FALLBACK_FAILED",
        /// The rollback started.
        TaskRollbackStarted = "TASK_ROLLBACK_STARTED",
        /// The rollback succeeded.
        TaskRollbackCompleted = "TASK_ROLLBACK_COMPLETED",
        /// The rollback failed.
        TaskRollbackFailed = "TASK_ROLLBACK_FAILED",
    }
}

wire_enum! {
    /// The state of an execution.
    ///
    /// ```
    /// use flux::ExecutionState;
    /// assert_eq!(ExecutionState::Running.to_string(), "RUNNING");
    /// assert!(ExecutionState::Completed.is_terminal());
    /// ```
    ExecutionState, "execution state" {
        /// Created, not yet started.
        Created = "CREATED",
        /// Waiting for a worker.
        Scheduled = "SCHEDULED",
        /// Claimed by a worker.
        Claimed = "CLAIMED",
        /// Running.
        Running = "RUNNING",
        /// Finished with an output (final).
        Completed = "COMPLETED",
        /// Finished with an error (final).
        Failed = "FAILED",
        /// Waiting to be resumed.
        Paused = "PAUSED",
        /// A resume was requested.
        Resuming = "RESUMING",
        /// A resume waits for a worker.
        ResumeScheduled = "RESUME_SCHEDULED",
        /// A worker claimed the resume.
        ResumeClaimed = "RESUME_CLAIMED",
        /// A cancellation was requested; only a terminal state follows.
        Cancelling = "CANCELLING",
        /// Cancelled (final).
        Cancelled = "CANCELLED",
    }
}

impl ExecutionState {
    /// `COMPLETED`, `FAILED` or `CANCELLED`: the execution will never change again.
    pub const fn is_terminal(self) -> bool {
        matches!(self, ExecutionState::Completed | ExecutionState::Failed | ExecutionState::Cancelled)
    }
}

/// The value of an event: a range of a buffer that other events may share. The events of a log
/// loaded together share a few buffers, so that loading a log makes one allocation per buffer
/// instead of one per event.
#[derive(Clone)]
pub(crate) struct Value {
    buf: Arc<[u8]>,
    start: u32,
    /// [`Value::WHOLE`]: all of `buf`.
    len: u32,
}

impl Value {
    const WHOLE: u32 = u32::MAX;

    /// The bytes of `buf` in `range`. A range that is not within `buf` gives an empty value; a
    /// range past the first 4 GiB of `buf` gets a copy of its own. (The SQLite store's loader
    /// shares its buffers so.)
    #[cfg_attr(not(feature = "sqlite"), allow(dead_code))]
    pub(crate) fn shared(buf: &Arc<[u8]>, range: std::ops::Range<usize>) -> Value {
        match (u32::try_from(range.start), u32::try_from(range.len())) {
            (Ok(start), Ok(len)) if len != Self::WHOLE && range.end <= buf.len() => {
                Value { buf: buf.clone(), start, len }
            }
            _ => Value::from(Arc::<[u8]>::from(buf.get(range).unwrap_or_default())),
        }
    }
}

impl From<Arc<[u8]>> for Value {
    fn from(buf: Arc<[u8]>) -> Self {
        Value { buf, start: 0, len: Self::WHOLE }
    }
}

impl std::ops::Deref for Value {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        if self.len == Self::WHOLE {
            return &self.buf;
        }
        let start = self.start as usize;
        // The range is within the buffer by construction.
        self.buf.get(start..start + self.len as usize).unwrap_or_default()
    }
}

impl PartialEq for Value {
    fn eq(&self, other: &Self) -> bool {
        **self == **other
    }
}

impl Eq for Value {}

impl fmt::Debug for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

/// One entry of an execution's log.
///
/// Cloning is cheap: the strings and the value are shared. The value of an event loaded from a
/// store may share its buffer (up to 64 KiB) with the values of its neighbours in the log, and
/// a clone keeps that buffer alive.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    pub(crate) seq: u64,
    pub(crate) kind: EventType,
    pub(crate) source_id: Arc<str>,
    pub(crate) name: Arc<str>,
    pub(crate) value: Value,
    pub(crate) time: SystemTime,
}

impl Event {
    /// Builds an event. `value` is MessagePack (see [`crate::value`]).
    pub fn new(
        seq: u64,
        kind: EventType,
        source_id: impl Into<Arc<str>>,
        name: impl Into<Arc<str>>,
        value: impl Into<Arc<[u8]>>,
        time: SystemTime,
    ) -> Self {
        Event { seq, kind, source_id: source_id.into(), name: name.into(), value: Value::from(value.into()), time }
    }

    /// Position in the execution's log, from 1.
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// The event type.
    pub fn kind(&self) -> EventType {
        self.kind
    }

    /// The task id, or `"{workflow_name}_{execution_id}"` for workflow events.
    pub fn source_id(&self) -> &str {
        &self.source_id
    }

    /// The task or workflow name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The value, decoded into `T`.
    ///
    /// ```
    /// use flux::{Event, EventType};
    /// let value = flux::value::to_msgpack("Hello")?;
    /// let event = Event::new(2, EventType::TaskCompleted, "say_hello_0", "say_hello", value, std::time::SystemTime::now());
    /// assert_eq!(event.value::<String>()?, "Hello");
    /// # Ok::<(), flux::Error>(())
    /// ```
    pub fn value<T: DeserializeOwned>(&self) -> Result<T> {
        if let Some((storage, reference)) = crate::output::reference_of(&self.value) {
            return Err(Error::new(
                ErrorKind::Decode,
                format!(
                    "the value of {} event #{} is kept in output storage `{storage}` (reference `{reference}`); \
                     replay and `Execution::output` read it back",
                    self.kind, self.seq
                ),
            ));
        }
        crate::value::from_msgpack(&self.value)
            .map_err(|e| Error::decode(format_args!("value of {} event #{}", self.kind, self.seq), e))
    }

    /// Where the value is kept, when it is an output moved to an output storage:
    /// `(storage name, reference)`.
    pub fn output_reference(&self) -> Option<(String, String)> {
        crate::output::reference_of(&self.value)
    }

    /// The raw MessagePack bytes of the value.
    pub fn value_bytes(&self) -> &[u8] {
        &self.value
    }

    /// When the event was recorded (UTC).
    pub fn time(&self) -> SystemTime {
        self.time
    }
}

/// The current time at the precision events are stored with (microseconds), so that an event
/// kept in memory equals the same event loaded back.
pub(crate) fn now() -> SystemTime {
    from_micros(to_micros(SystemTime::now()))
}

/// Microseconds since the Unix epoch, as stored.
pub(crate) fn to_micros(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
}

/// The inverse of [`to_micros`]; negative values clamp to the epoch.
pub(crate) fn from_micros(us: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_micros(u64::try_from(us).unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_value_reads_its_own_range_of_a_shared_buffer() {
        let buf: Arc<[u8]> = Arc::from(&b"abcdef"[..]);
        assert_eq!(&*Value::shared(&buf, 1..4), b"bcd");
        assert_eq!(&*Value::shared(&buf, 6..6), b"");
        assert_eq!(&*Value::from(buf.clone()), b"abcdef");
        // A range outside the buffer reads as empty rather than panicking.
        assert_eq!(&*Value::shared(&buf, 4..9), b"");
        assert_eq!(Value::shared(&buf, 0..2), Value::from(Arc::<[u8]>::from(&b"ab"[..])));
    }

    #[test]
    fn wire_names_round_trip() {
        assert_eq!(EventType::ALL.len(), 28);
        for t in EventType::ALL {
            assert_eq!(t.as_str().parse::<EventType>().unwrap(), *t);
        }
        assert_eq!(ExecutionState::ALL.len(), 12);
        for s in ExecutionState::ALL {
            assert_eq!(s.as_str().parse::<ExecutionState>().unwrap(), *s);
        }
        assert_eq!(EventType::TaskRetryStarted.as_str(), "TASK_RETRY_STARTED");
        assert_eq!(ExecutionState::ResumeScheduled.as_str(), "RESUME_SCHEDULED");
    }

    #[test]
    fn unknown_names_are_errors() {
        let err = "TASK_EXPLODED".parse::<EventType>().unwrap_err();
        assert_eq!(err.to_string(), "unknown event type `TASK_EXPLODED`");
    }

    #[test]
    fn times_round_trip_at_microsecond_precision() {
        let t = UNIX_EPOCH + Duration::from_micros(1_700_000_000_123_456);
        assert_eq!(from_micros(to_micros(t)), t);
    }
}
