//! What a schedule is: [`Schedule`], its kinds and policies, its JSON shape, and the instants it
//! fires at.

use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use croner::Cron;
use croner::parser::{CronParser, Seconds, Year};
use jiff::Timestamp;
use jiff::tz::TimeZone;

use crate::error::{Error, ErrorKind, Result};

/// When a workflow runs by itself: a cron expression in a time zone, a fixed interval, or one
/// instant; with what happens when a fire comes while the previous run is still going
/// ([`Overlap`]) and after the scheduler was down ([`Schedule::catchup_window`]).
///
/// Every fire instant is a whole second, and names the execution it starts:
/// `{schedule}_{fire time}`, as in `nightly_2026-12-07T09:00:00Z`. Two schedulers (two
/// processes on one database, several servers) that fire the same instant try to create the
/// same execution, and only one can.
///
/// Its JSON shape is the Python original's: `{"type": "cron", "cron_expression": "0 9 * * *",
/// "timezone": "Europe/Paris"}`, `{"type": "interval", "interval_seconds": 3600}` (with
/// optional `start_time` and `end_time`), `{"type": "once", "run_time":
/// "2026-12-24T18:00:00Z"}`, each with optional `overlap` and `catchup_window_seconds`.
///
/// ```
/// use flux::schedule::{Overlap, Schedule};
/// use std::time::{Duration, SystemTime};
///
/// let weekdays = Schedule::cron("0 9 * * MON-FRI")?.timezone("Europe/Paris")?;
/// let hourly = Schedule::interval(Duration::from_secs(3600))?.overlap(Overlap::BufferOne);
/// let in_an_hour = Schedule::once(SystemTime::now() + Duration::from_secs(3600));
/// assert!(Schedule::cron("0 25 * * *").is_err());
/// # let _ = (weekdays, hourly, in_an_hour);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "Wire", into = "Wire")]
pub struct Schedule {
    kind: Kind,
    overlap: Overlap,
    catchup_window: Option<Duration>,
}

#[derive(Clone, Debug)]
enum Kind {
    Cron { expression: String, cron: Arc<Cron>, timezone: String, zone: TimeZone },
    Interval { every: u64, start: Option<i64>, end: Option<i64> },
    Once { at: i64 },
}

impl PartialEq for Kind {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Kind::Cron { expression: a, timezone: ta, .. }, Kind::Cron { expression: b, timezone: tb, .. }) => {
                a == b && ta == tb
            }
            (Kind::Interval { every: a, start: sa, end: ea }, Kind::Interval { every: b, start: sb, end: eb }) => {
                (a, sa, ea) == (b, sb, eb)
            }
            (Kind::Once { at: a }, Kind::Once { at: b }) => a == b,
            _ => false,
        }
    }
}

impl Eq for Kind {}

/// What a fire does while the execution the schedule started last is still going (not yet
/// `COMPLETED`, `FAILED` or `CANCELLED`; a `PAUSED` one is still going).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Overlap {
    /// The fire is dropped (counted in the schedule's skips); the next one is due as usual.
    #[default]
    Skip,
    /// The fire starts another execution alongside.
    Allow,
    /// The fire waits, and starts once the previous execution ends; fires that come while one
    /// waits are dropped.
    BufferOne,
}

impl FromStr for Overlap {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "skip" => Ok(Overlap::Skip),
            "allow" => Ok(Overlap::Allow),
            "buffer_one" => Ok(Overlap::BufferOne),
            other => {
                Err(invalid(format!("unknown overlap policy `{other}` (expected `skip`, `allow` or `buffer_one`)")))
            }
        }
    }
}

fn invalid(message: impl Into<String>) -> Error {
    Error::new(ErrorKind::InvalidInput, message)
}

/// Parses a cron expression of 5 fields (minute, hour, day of month, month, day of week) or 6
/// (seconds first), as [`Schedule::cron`] takes it.
pub fn parse_cron(expression: &str) -> Result<Cron> {
    let fields = expression.split_whitespace().count();
    if !(5..=6).contains(&fields) {
        return Err(invalid(format!(
            "invalid cron expression `{expression}`: it has {fields} fields; expected 5 (minute hour day-of-month \
             month day-of-week) or 6 (with seconds first)"
        )));
    }
    let parser = CronParser::builder().seconds(Seconds::Optional).year(Year::Disallowed).build();
    parser.parse(expression).map_err(|e| invalid(format!("invalid cron expression `{expression}`: {e}")))
}

fn zone(name: &str) -> Result<TimeZone> {
    if name.eq_ignore_ascii_case("local") {
        return Err(invalid("time zone `local` is not portable: name one, such as `Europe/Paris` or `UTC`"));
    }
    TimeZone::get(name).map_err(|e| invalid(format!("unknown time zone `{name}`: {e}")))
}

/// Seconds since the epoch of `t`, rounded down.
pub(crate) fn to_secs(t: SystemTime) -> i64 {
    match t.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(e) => {
            let d = e.duration();
            let whole = i64::try_from(d.as_secs()).unwrap_or(i64::MAX);
            if d.subsec_nanos() > 0 { -whole - 1 } else { -whole }
        }
    }
}

/// The instant `secs` seconds after the epoch.
pub(crate) fn from_secs(secs: i64) -> SystemTime {
    match u64::try_from(secs) {
        Ok(s) => SystemTime::UNIX_EPOCH + Duration::from_secs(s),
        Err(_) => SystemTime::UNIX_EPOCH - Duration::from_secs(secs.unsigned_abs()),
    }
}

/// The text of instant `secs` in RFC 3339, in UTC (`2026-12-07T09:00:00Z`).
pub(crate) fn format_secs(secs: i64) -> String {
    match Timestamp::from_second(secs) {
        Ok(t) => t.to_string(),
        Err(_) => secs.to_string(),
    }
}

fn parse_time(field: &str, text: &str) -> Result<i64> {
    let t: Timestamp = text.parse().map_err(|e| {
        invalid(format!("`{field}` must be an RFC 3339 time such as `2026-12-24T18:00:00Z`, not `{text}`: {e}"))
    })?;
    Ok(t.as_second())
}

impl Schedule {
    /// Fires at the instants cron `expression` names, in UTC unless
    /// [`Schedule::timezone`] says otherwise: 5 fields (minute hour day-of-month month
    /// day-of-week) or 6 (seconds first). Names (`MON-FRI`, `JAN`), ranges, steps and lists are
    /// understood. A malformed expression is refused with [`ErrorKind::InvalidInput`].
    pub fn cron(expression: &str) -> Result<Schedule> {
        let cron = parse_cron(expression)?;
        let kind = Kind::Cron {
            expression: expression.trim().to_string(),
            cron: Arc::new(cron),
            timezone: "UTC".to_string(),
            zone: TimeZone::UTC,
        };
        Ok(Schedule { kind, overlap: Overlap::default(), catchup_window: None })
    }

    /// Fires every `every` (whole seconds, at least one), from the moment the schedule is
    /// created unless [`Schedule::start`] says when.
    pub fn interval(every: Duration) -> Result<Schedule> {
        if every.subsec_nanos() != 0 || every.is_zero() {
            return Err(invalid(format!("an interval must be a whole number of seconds, at least 1, not {every:?}")));
        }
        let kind = Kind::Interval { every: every.as_secs(), start: None, end: None };
        Ok(Schedule { kind, overlap: Overlap::default(), catchup_window: None })
    }

    /// Fires once, at `at` (to the second); at once if that time has passed when the schedule
    /// is created.
    pub fn once(at: SystemTime) -> Schedule {
        Schedule { kind: Kind::Once { at: to_secs(at) }, overlap: Overlap::default(), catchup_window: None }
    }

    /// The time zone a cron expression is read in (an IANA name, such as `Europe/Paris`, from
    /// the system's time zone database); refused for other kinds, and for unknown names.
    pub fn timezone(mut self, name: &str) -> Result<Schedule> {
        match &mut self.kind {
            Kind::Cron { timezone, zone: z, .. } => {
                *z = zone(name)?;
                *timezone = name.to_string();
                Ok(self)
            }
            _ => Err(invalid("only a cron schedule has a time zone")),
        }
    }

    /// For an interval, when the first fire is (later fires follow every interval from it).
    /// Ignored by the other kinds.
    pub fn start(mut self, at: SystemTime) -> Schedule {
        if let Kind::Interval { start, .. } = &mut self.kind {
            *start = Some(to_secs(at));
        }
        self
    }

    /// For an interval, the last instant it may fire at. Ignored by the other kinds.
    pub fn end(mut self, at: SystemTime) -> Schedule {
        if let Kind::Interval { end, .. } = &mut self.kind {
            *end = Some(to_secs(at));
        }
        self
    }

    /// What a fire does while the previous execution is still going ([`Overlap::Skip`] by
    /// default).
    pub fn overlap(mut self, overlap: Overlap) -> Schedule {
        self.overlap = overlap;
        self
    }

    /// After the scheduler was down (or behind), fire every missed instant of the last `window`
    /// in order, instead of once for all that was missed (the default).
    pub fn catchup_window(mut self, window: Duration) -> Schedule {
        self.catchup_window = Some(window);
        self
    }

    /// The overlap policy.
    pub fn overlap_policy(&self) -> Overlap {
        self.overlap
    }

    /// The catch-up window, if one was set.
    pub fn catchup(&self) -> Option<Duration> {
        self.catchup_window
    }

    /// The kind: `cron`, `interval` or `once`.
    pub fn kind(&self) -> &'static str {
        match self.kind {
            Kind::Cron { .. } => "cron",
            Kind::Interval { .. } => "interval",
            Kind::Once { .. } => "once",
        }
    }

    /// The first instant after `t` this schedule fires at, if any (an interval without a start
    /// counts from `t`): to list the coming fires.
    pub fn next_after(&self, t: SystemTime) -> Option<SystemTime> {
        let t = to_secs(t);
        self.after(t, t).map(from_secs)
    }

    /// The first fire of a schedule made at `created` (whole seconds), for an interval
    /// anchored there unless it has a start.
    pub(crate) fn first(&self, created: i64) -> Option<i64> {
        match &self.kind {
            Kind::Once { at } => Some(*at),
            Kind::Interval { start: Some(start), end, .. } => Some(*start).filter(|s| end.is_none_or(|e| *s <= e)),
            _ => self.after(created, created),
        }
    }

    /// The first fire strictly after `t`, for a schedule whose intervals count from `anchor`.
    pub(crate) fn after(&self, t: i64, anchor: i64) -> Option<i64> {
        match &self.kind {
            Kind::Once { at } => Some(*at).filter(|at| *at > t),
            Kind::Interval { every, start, end } => {
                let every = i64::try_from(*every).unwrap_or(i64::MAX);
                let anchor = start.unwrap_or(anchor);
                let next = if t < anchor { anchor } else { anchor.saturating_add(((t - anchor) / every + 1) * every) };
                Some(next).filter(|n| end.is_none_or(|e| *n <= e))
            }
            Kind::Cron { cron, zone, .. } => {
                let from = Timestamp::from_second(t).ok()?.to_zoned(zone.clone());
                cron.find_next_occurrence(&from, false).ok().map(|z| z.timestamp().as_second())
            }
        }
    }

    /// The last fire at or before `t` and not before `floor`, if there is one.
    pub(crate) fn latest(&self, t: i64, floor: i64, anchor: i64) -> Option<i64> {
        let found = match &self.kind {
            Kind::Once { at } => Some(*at).filter(|at| *at <= t),
            Kind::Interval { every, start, end } => {
                let every = i64::try_from(*every).unwrap_or(i64::MAX);
                let anchor = start.unwrap_or(anchor);
                let t = end.map_or(t, |e| t.min(e));
                (t >= anchor).then(|| anchor + (t - anchor) / every * every)
            }
            Kind::Cron { cron, zone, .. } => {
                let from = Timestamp::from_second(t).ok()?.to_zoned(zone.clone());
                cron.find_previous_occurrence(&from, true).ok().map(|z| z.timestamp().as_second())
            }
        };
        found.filter(|f| *f >= floor)
    }
}

/// The JSON shape: one object with a `type`, each kind's fields, and the policies.
#[derive(serde::Serialize, serde::Deserialize)]
struct Wire {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    cron_expression: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    timezone: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    interval_seconds: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    start_time: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    end_time: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    run_time: Option<String>,
    #[serde(default)]
    overlap: Overlap,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    catchup_window_seconds: Option<u64>,
}

impl From<Schedule> for Wire {
    fn from(s: Schedule) -> Wire {
        let mut wire = Wire {
            kind: s.kind().to_string(),
            cron_expression: None,
            timezone: None,
            interval_seconds: None,
            start_time: None,
            end_time: None,
            run_time: None,
            overlap: s.overlap,
            catchup_window_seconds: s.catchup_window.map(|w| w.as_secs()),
        };
        match s.kind {
            Kind::Cron { expression, timezone, .. } => {
                wire.cron_expression = Some(expression);
                wire.timezone = Some(timezone);
            }
            Kind::Interval { every, start, end } => {
                wire.interval_seconds = Some(every);
                wire.start_time = start.map(format_secs);
                wire.end_time = end.map(format_secs);
            }
            Kind::Once { at } => wire.run_time = Some(format_secs(at)),
        }
        wire
    }
}

impl TryFrom<Wire> for Schedule {
    type Error = Error;
    fn try_from(w: Wire) -> Result<Schedule> {
        let required = |field: Option<String>, name: &str| {
            field.ok_or_else(|| invalid(format!("a `{}` schedule needs `{name}`", w.kind)))
        };
        let schedule = match w.kind.as_str() {
            "cron" => {
                let schedule = Schedule::cron(&required(w.cron_expression.clone(), "cron_expression")?)?;
                schedule.timezone(w.timezone.as_deref().unwrap_or("UTC"))?
            }
            "interval" => {
                let every =
                    w.interval_seconds.ok_or_else(|| invalid("an `interval` schedule needs `interval_seconds`"))?;
                let mut schedule = Schedule::interval(Duration::from_secs(every))?;
                if let Kind::Interval { start, end, .. } = &mut schedule.kind {
                    *start = w.start_time.as_deref().map(|t| parse_time("start_time", t)).transpose()?;
                    *end = w.end_time.as_deref().map(|t| parse_time("end_time", t)).transpose()?;
                }
                schedule
            }
            "once" => Schedule {
                kind: Kind::Once { at: parse_time("run_time", &required(w.run_time.clone(), "run_time")?)? },
                overlap: Overlap::default(),
                catchup_window: None,
            },
            other => {
                return Err(invalid(format!(
                    "unknown schedule type `{other}` (expected `cron`, `interval` or `once`)"
                )));
            }
        };
        let schedule = schedule.overlap(w.overlap);
        Ok(match w.catchup_window_seconds {
            Some(secs) => schedule.catchup_window(Duration::from_secs(secs)),
            None => schedule,
        })
    }
}

impl std::fmt::Display for Schedule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.kind {
            Kind::Cron { expression, timezone, .. } => write!(f, "cron `{expression}` ({timezone})"),
            Kind::Interval { every, .. } => write!(f, "every {every} s"),
            Kind::Once { at } => write!(f, "once at {}", format_secs(*at)),
        }
    }
}
