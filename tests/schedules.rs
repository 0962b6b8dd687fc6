//! Schedules on an embedded engine: the instants a schedule fires at (cron in a time zone
//! across daylight-saving changes, intervals, once), overlap, catch-up, pause/resume/delete and
//! history, the schedule a workflow declares, and two engines on one file firing each instant
//! once. Turns are driven with `Engine::fire_schedules(now)` at chosen instants, and the
//! background scheduler under Tokio's paused clock: nothing here sleeps in real time.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use flux::prelude::*;
use flux::schedule::{Overlap, Schedule};
use flux::{Engine, ErrorKind, ExecutionState, State};
use tokio::sync::Semaphore;

fn t(text: &str) -> SystemTime {
    humantime::parse_rfc3339(text).unwrap()
}

fn text(at: SystemTime) -> String {
    humantime::format_rfc3339_seconds(at).to_string()
}

/// The next `n` fire instants after `from`.
fn upcoming(schedule: &Schedule, from: &str, n: usize) -> Vec<String> {
    let mut at = t(from);
    let mut out = Vec::new();
    for _ in 0..n {
        at = schedule.next_after(at).expect("the schedule ended");
        out.push(text(at));
    }
    out
}

#[test]
fn a_cron_schedule_in_paris_fires_at_nine_local_time_on_both_sides_of_each_change() {
    let nine = Schedule::cron("0 9 * * *").unwrap().timezone("Europe/Paris").unwrap();
    // Summer time starts on 28 March 2027 and ends on 31 October 2027.
    assert_eq!(
        upcoming(&nine, "2027-03-26T12:00:00Z", 3),
        ["2027-03-27T08:00:00Z", "2027-03-28T07:00:00Z", "2027-03-29T07:00:00Z"]
    );
    assert_eq!(
        upcoming(&nine, "2027-10-29T12:00:00Z", 3),
        ["2027-10-30T07:00:00Z", "2027-10-31T08:00:00Z", "2027-11-01T08:00:00Z"]
    );
}

#[test]
fn a_cron_time_in_the_skipped_or_repeated_hour_fires_once_a_day() {
    let half_past_two = Schedule::cron("30 2 * * *").unwrap().timezone("Europe/Paris").unwrap();
    // 02:30 does not exist on 28 March 2027: the fire comes as the clocks go forward (02:00
    // becomes 03:00, 01:00 UTC), once.
    assert_eq!(upcoming(&half_past_two, "2027-03-27T12:00:00Z", 2), ["2027-03-28T01:00:00Z", "2027-03-29T00:30:00Z"]);
    // 02:30 happens twice on 31 October 2027: it fires the first time only.
    assert_eq!(upcoming(&half_past_two, "2027-10-30T12:00:00Z", 2), ["2027-10-31T00:30:00Z", "2027-11-01T01:30:00Z"]);
}

#[test]
fn an_hourly_cron_fires_twenty_three_times_on_the_short_day_and_twenty_five_on_the_long_one() {
    let hourly = Schedule::cron("0 * * * *").unwrap().timezone("America/New_York").unwrap();
    let count = |from: &str, to: &str| {
        let (mut at, end) = (t(from), t(to));
        let mut n = 0;
        while let Some(next) = hourly.next_after(at).filter(|next| *next < end) {
            (at, n) = (next, n + 1);
        }
        n
    };
    // New York's local days of 14 March and 7 November 2027, in UTC, counted from just before
    // local midnight.
    assert_eq!(count("2027-03-14T04:59:59Z", "2027-03-15T03:59:59Z"), 23);
    assert_eq!(count("2027-11-07T03:59:59Z", "2027-11-08T04:59:59Z"), 25);
}

#[test]
fn five_and_six_field_expressions_are_read_and_bad_ones_refused_with_their_reason() {
    let every_15s = Schedule::cron("*/15 * * * * *").unwrap();
    assert_eq!(
        upcoming(&every_15s, "2026-12-07T10:00:01Z", 3),
        ["2026-12-07T10:00:15Z", "2026-12-07T10:00:30Z", "2026-12-07T10:00:45Z"]
    );
    let weekdays = Schedule::cron("0 9 * * MON-FRI").unwrap();
    // 11 December 2026 is a Friday.
    assert_eq!(upcoming(&weekdays, "2026-12-11T10:00:00Z", 1), ["2026-12-14T09:00:00Z"]);
    for (expression, reason) in [
        ("0 25 * * *", "invalid cron expression `0 25 * * *`"),
        ("* * *", "it has 3 fields; expected 5"),
        ("0 0 0 * * * 2027", "it has 7 fields"),
        ("0 9 * * FUNDAY", "invalid cron expression"),
        ("", "it has 0 fields"),
    ] {
        let error = Schedule::cron(expression).unwrap_err();
        assert_eq!(error.kind(), ErrorKind::InvalidInput, "{expression}: {error}");
        assert!(error.to_string().contains(reason), "{expression}: {error}");
    }
    let error = Schedule::cron("0 9 * * *").unwrap().timezone("Mars/Olympus").unwrap_err();
    assert!(error.to_string().contains("unknown time zone `Mars/Olympus`"), "{error}");
    let error = Schedule::cron("0 9 * * *").unwrap().timezone("local").unwrap_err();
    assert!(error.to_string().contains("not portable"), "{error}");
}

#[test]
fn schedules_read_and_write_the_json_shape_of_the_python_original() {
    let cron: Schedule =
        serde_json::from_str(r#"{"type":"cron","cron_expression":"0 * * * *","timezone":"Europe/Paris"}"#).unwrap();
    assert_eq!(cron, Schedule::cron("0 * * * *").unwrap().timezone("Europe/Paris").unwrap());
    let interval: Schedule = serde_json::from_str(r#"{"type":"interval","interval_seconds":3600}"#).unwrap();
    assert_eq!(interval, Schedule::interval(Duration::from_secs(3600)).unwrap());
    let once: Schedule = serde_json::from_str(r#"{"type":"once","run_time":"2026-12-24T18:00:00Z"}"#).unwrap();
    assert_eq!(once, Schedule::once(t("2026-12-24T18:00:00Z")));
    let written = serde_json::to_value(Schedule::once(t("2026-12-24T18:00:00Z")).overlap(Overlap::BufferOne)).unwrap();
    assert_eq!(
        written,
        serde_json::json!({"type": "once", "run_time": "2026-12-24T18:00:00Z", "overlap": "buffer_one"})
    );
    let windowed = Schedule::interval(Duration::from_secs(60)).unwrap().catchup_window(Duration::from_secs(600));
    let written = serde_json::to_value(windowed).unwrap();
    assert_eq!(
        written,
        serde_json::json!({"type": "interval", "interval_seconds": 60, "overlap": "skip", "catchup_window_seconds": 600})
    );
    for (json, reason) in [
        (r#"{"type":"cron"}"#, "needs `cron_expression`"),
        (r#"{"type":"weekly"}"#, "unknown schedule type `weekly`"),
        (r#"{"type":"interval","interval_seconds":0}"#, "at least 1"),
        (r#"{"type":"once","run_time":"tomorrow"}"#, "`run_time` must be an RFC 3339 time"),
        (r#"{"type":"cron","cron_expression":"0 9 * *"}"#, "it has 4 fields"),
        (r#"{"type":"interval","interval_seconds":5,"overlap":"sometimes"}"#, "unknown variant `sometimes`"),
    ] {
        let error = serde_json::from_str::<Schedule>(json).unwrap_err();
        assert!(error.to_string().contains(reason), "{json}: {error}");
    }
}

/// Lets the executions of one test's `held` workflow finish, one permit each.
struct Gate(Arc<Semaphore>);

#[flux::task]
async fn wait_for_gate(n: u32, gate: State<Gate>) -> u32 {
    gate.0.acquire().await.expect("the gate closed").forget();
    n
}

#[flux::workflow]
async fn held(ctx: ExecutionContext<u32>) -> flux::Result<u32> {
    wait_for_gate(*ctx.input()).await
}

#[flux::workflow]
async fn quick(ctx: ExecutionContext<u32>) -> flux::Result<u32> {
    Ok(*ctx.input() + 1)
}

/// An engine whose `held` executions wait for the returned gate.
fn gated() -> (Engine, Arc<Semaphore>) {
    let gate = Arc::new(Semaphore::new(0));
    (Engine::in_memory().with_state(Gate(gate.clone())), gate)
}

/// Waits until execution `id` has finished, through the engine's own wait.
async fn finished(engine: &Engine, id: &str) -> ExecutionState {
    held.on(engine).wait(id).await.unwrap().state()
}

const T0: &str = "2030-01-01T00:00:00Z";

fn at(seconds: u64) -> SystemTime {
    t(T0) + Duration::from_secs(seconds)
}

/// The ids of the executions that `fired` started.
fn ids(fired: &[flux::schedule::Fired]) -> Vec<String> {
    fired.iter().map(|f| f.execution_id.clone()).collect()
}

fn every_minute_from_t0(overlap: Overlap) -> Schedule {
    Schedule::interval(Duration::from_secs(60)).unwrap().start(at(0)).overlap(overlap)
}

#[tokio::test]
async fn skip_drops_a_fire_while_the_previous_execution_is_still_going() {
    let (engine, gate) = gated();
    engine.schedule(held, every_minute_from_t0(Overlap::Skip), 7).await.unwrap();
    assert_eq!(ids(&engine.fire_schedules(at(0)).await.unwrap()), ["held_2030-01-01T00:00:00Z"]);
    assert!(engine.fire_schedules(at(60)).await.unwrap().is_empty(), "a fire started beside a running one");
    let info = engine.schedule_info("held").await.unwrap().unwrap();
    assert_eq!((info.skips, info.last_skipped, info.next_fire), (1, Some(at(60)), Some(at(120))));
    gate.add_permits(1);
    assert_eq!(finished(&engine, "held_2030-01-01T00:00:00Z").await, ExecutionState::Completed);
    assert_eq!(ids(&engine.fire_schedules(at(120)).await.unwrap()), ["held_2030-01-01T00:02:00Z"]);
    gate.add_permits(1);
}

#[tokio::test]
async fn allow_starts_a_fire_beside_the_previous_execution() {
    let (engine, gate) = gated();
    engine.schedule(held, every_minute_from_t0(Overlap::Allow), 7).await.unwrap();
    engine.fire_schedules(at(0)).await.unwrap();
    assert_eq!(ids(&engine.fire_schedules(at(60)).await.unwrap()), ["held_2030-01-01T00:01:00Z"]);
    let running = engine
        .list_executions(flux::ExecutionFilter::new().schedule("held").state(ExecutionState::Running))
        .await
        .unwrap();
    assert_eq!(running.total, 2, "both fires run at once");
    gate.add_permits(2);
    for id in ["held_2030-01-01T00:00:00Z", "held_2030-01-01T00:01:00Z"] {
        assert_eq!(finished(&engine, id).await, ExecutionState::Completed);
    }
}

#[flux::workflow(max_concurrency = 1)]
async fn held_alone(ctx: ExecutionContext<u32>) -> flux::Result<u32> {
    wait_for_gate(*ctx.input()).await
}

#[tokio::test]
async fn a_fire_of_a_limited_workflow_waits_in_scheduled_for_its_turn() {
    let (engine, gate) = gated();
    engine.schedule(held_alone, every_minute_from_t0(Overlap::Allow), 7).await.unwrap();
    engine.fire_schedules(at(0)).await.unwrap();
    assert_eq!(ids(&engine.fire_schedules(at(60)).await.unwrap()), ["held_alone_2030-01-01T00:01:00Z"]);
    let second = "held_alone_2030-01-01T00:01:00Z";
    // `max_concurrency = 1`: the second fire is stored, and waits while the first runs.
    let state = |id: &'static str| {
        let engine = engine.clone();
        async move { engine.store().state(id).unwrap() }
    };
    assert_eq!(state(second).await, Some(ExecutionState::Scheduled));
    gate.add_permits(2);
    for id in ["held_alone_2030-01-01T00:00:00Z", second] {
        assert_eq!(held_alone.on(&engine).wait(id).await.unwrap().state(), ExecutionState::Completed);
    }
    let log = engine.store().load(second).unwrap().unwrap();
    assert_eq!(log.events[0].kind(), flux::EventType::WorkflowScheduled, "it waited in SCHEDULED");
}

#[tokio::test]
async fn buffer_one_keeps_one_fire_and_starts_it_when_the_previous_execution_ends() {
    let (engine, gate) = gated();
    engine.schedule(held, every_minute_from_t0(Overlap::BufferOne), 7).await.unwrap();
    engine.fire_schedules(at(0)).await.unwrap();
    assert!(engine.fire_schedules(at(60)).await.unwrap().is_empty());
    assert!(engine.fire_schedules(at(150)).await.unwrap().is_empty());
    let info = engine.schedule_info("held").await.unwrap().unwrap();
    assert_eq!(info.next_fire, Some(at(60)), "the kept fire is still due");
    gate.add_permits(1);
    finished(&engine, "held_2030-01-01T00:00:00Z").await;
    // One execution for the fires kept while the first ran: the latest of them.
    assert_eq!(ids(&engine.fire_schedules(at(170)).await.unwrap()), ["held_2030-01-01T00:02:00Z"]);
    let info = engine.schedule_info("held").await.unwrap().unwrap();
    assert_eq!((info.fires, info.next_fire), (2, Some(at(180))));
    gate.add_permits(1);
}

#[tokio::test]
async fn after_ten_missed_intervals_a_schedule_fires_once_for_all_of_them() {
    let engine = Engine::in_memory();
    engine.schedule(quick, every_minute_from_t0(Overlap::Skip), 1).await.unwrap();
    let first = engine.fire_schedules(at(0)).await.unwrap();
    // Finished before the next fire, which `skip` would drop otherwise.
    quick.on(&engine).wait(&first[0].execution_id).await.unwrap();
    // Down from 00:00:30 to 00:10:30: ten instants missed.
    assert_eq!(ids(&engine.fire_schedules(at(630)).await.unwrap()), ["quick_2030-01-01T00:10:00Z"]);
    assert!(engine.fire_schedules(at(631)).await.unwrap().is_empty());
    let info = engine.schedule_info("quick").await.unwrap().unwrap();
    assert_eq!((info.fires, info.next_fire), (2, Some(at(660))));
}

#[tokio::test]
async fn within_a_catch_up_window_each_missed_instant_fires_in_order() {
    let engine = Engine::in_memory();
    let schedule = every_minute_from_t0(Overlap::Allow).catchup_window(Duration::from_secs(300));
    engine.schedule(quick, schedule, 1).await.unwrap();
    engine.fire_schedules(at(0)).await.unwrap();
    let mut fired = Vec::new();
    loop {
        let turn = engine.fire_schedules(at(630)).await.unwrap();
        if turn.is_empty() {
            break;
        }
        fired.extend(ids(&turn));
    }
    // The window is 00:05:30 to 00:10:30.
    assert_eq!(
        fired,
        [
            "quick_2030-01-01T00:06:00Z",
            "quick_2030-01-01T00:07:00Z",
            "quick_2030-01-01T00:08:00Z",
            "quick_2030-01-01T00:09:00Z",
            "quick_2030-01-01T00:10:00Z"
        ]
    );
}

#[tokio::test]
async fn paused_schedules_do_not_fire_and_resumed_ones_skip_what_they_missed() {
    let engine = Engine::in_memory();
    // Due ten minutes ago: fired at once unless paused.
    let start = SystemTime::now() - Duration::from_secs(600);
    let schedule = Schedule::interval(Duration::from_secs(60)).unwrap().start(start);
    let info = engine.schedule_as("every_minute", quick, schedule, 1).await.unwrap();
    assert_eq!(info.status(), "active");
    let due = info.next_fire.unwrap();
    assert!(due < SystemTime::now());
    assert!(engine.pause_schedule("every_minute").await.unwrap().paused);
    assert!(engine.fire_schedules(due + Duration::from_secs(600)).await.unwrap().is_empty());
    let resumed = engine.resume_schedule("every_minute").await.unwrap();
    assert_eq!(resumed.status(), "active");
    assert!(resumed.next_fire.unwrap() > SystemTime::now(), "a resumed schedule catches up what it missed");
    let error = engine.pause_schedule("nope").await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::NotFound, "{error}");
}

#[tokio::test]
async fn history_lists_the_executions_a_schedule_started_newest_first_even_after_it_is_deleted() {
    let engine = Engine::in_memory();
    engine.schedule(quick, every_minute_from_t0(Overlap::Skip), 1).await.unwrap();
    for n in 0..3 {
        let fired = engine.fire_schedules(at(60 * n)).await.unwrap();
        quick.on(&engine).wait(&fired[0].execution_id).await.unwrap();
    }
    let page = engine.schedule_history("quick", 2, 0).await.unwrap();
    let listed: Vec<(&str, ExecutionState)> = page.executions.iter().map(|r| (r.id.as_str(), r.state)).collect();
    assert_eq!(
        listed,
        [
            ("quick_2030-01-01T00:02:00Z", ExecutionState::Completed),
            ("quick_2030-01-01T00:01:00Z", ExecutionState::Completed)
        ]
    );
    assert_eq!(page.total, 3);
    assert!(engine.delete_schedule("quick").await.unwrap());
    assert!(!engine.delete_schedule("quick").await.unwrap());
    assert!(engine.schedule_info("quick").await.unwrap().is_none());
    assert!(engine.fire_schedules(at(600)).await.unwrap().is_empty());
    assert_eq!(engine.schedule_history("quick", 10, 0).await.unwrap().total, 3);
}

#[tokio::test]
async fn scheduling_again_from_code_keeps_the_state_and_another_workflow_cannot_take_the_name() {
    let engine = Engine::in_memory();
    engine.schedule(quick, every_minute_from_t0(Overlap::Skip), 1).await.unwrap();
    engine.fire_schedules(at(0)).await.unwrap();
    let again = engine.schedule(quick, every_minute_from_t0(Overlap::Skip), 1).await.unwrap();
    assert_eq!((again.fires, again.next_fire), (1, Some(at(60))), "an unchanged declaration changed the schedule");
    let changed = engine.schedule(quick, every_minute_from_t0(Overlap::Skip), 2).await.unwrap();
    assert_eq!((changed.fires, changed.input.as_slice()), (1, &[2u8][..]), "a new input is taken, the history kept");
    let error = engine.schedule_as("quick", held, every_minute_from_t0(Overlap::Skip), 1).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Conflict, "{error}");
    let error = engine.schedule_as("bad name", quick, every_minute_from_t0(Overlap::Skip), 1).await.unwrap_err();
    assert!(error.to_string().contains("invalid schedule name `bad name`"), "{error}");
}

#[tokio::test]
async fn a_once_schedule_fires_once_and_then_has_ended() {
    let engine = Engine::in_memory();
    engine.schedule(quick, Schedule::once(at(30)), 5).await.unwrap();
    assert!(engine.fire_schedules(at(29)).await.unwrap().is_empty());
    assert_eq!(ids(&engine.fire_schedules(at(31)).await.unwrap()), ["quick_2030-01-01T00:00:30Z"]);
    let info = engine.schedule_info("quick").await.unwrap().unwrap();
    assert_eq!((info.status(), info.next_fire), ("ended", None));
    assert!(engine.fire_schedules(at(3600)).await.unwrap().is_empty());
    let done = quick.on(&engine).wait("quick_2030-01-01T00:00:30Z").await.unwrap();
    assert_eq!(done.output(), Some(&6));
}

#[tokio::test]
async fn two_engines_on_one_database_start_each_of_a_thousand_fires_once() {
    // SQLite (two engines on one file) and, when a server is at hand, PostgreSQL.
    for place in flux_suite::places() {
        let (a, b) = (place.open(), place.open());
        let schedule = Schedule::interval(Duration::from_secs(1)).unwrap().start(at(0)).overlap(Overlap::Allow);
        a.schedule(quick, schedule.clone(), 1).await.unwrap();
        b.schedule(quick, schedule, 1).await.unwrap();
        let mut started = 0;
        for n in 0..1000 {
            let (x, y) = tokio::join!(a.fire_schedules(at(n)), b.fire_schedules(at(n)));
            started += x.unwrap().len() + y.unwrap().len();
        }
        assert_eq!(started, 1000, "{place}: fires started, by both engines");
        let page = a.schedule_history("quick", 1000, 0).await.unwrap();
        assert_eq!(page.total, 1000, "{place}: executions the schedule started");
        let mut seen: Vec<&str> = page.executions.iter().map(|r| r.id.as_str()).collect();
        seen.sort_unstable();
        seen.dedup();
        assert_eq!(seen.len(), 1000, "{place}");
        assert_eq!(a.schedule_info("quick").await.unwrap().unwrap().fires, 1000, "{place}");
    }
}

/// A clock that follows Tokio's (paused) time from `start`.
fn paused_clock(start: SystemTime) -> impl Fn() -> SystemTime + Send + Sync + 'static {
    let origin = tokio::time::Instant::now();
    move || start + origin.elapsed()
}

#[tokio::test(start_paused = true)]
async fn the_background_scheduler_fires_an_interval_every_second_until_its_end() {
    let engine = Engine::in_memory();
    let schedule = Schedule::interval(Duration::from_secs(1)).unwrap().start(at(1)).end(at(5));
    engine.schedule_as("ticks", quick, schedule, 0).await.unwrap();
    let scheduler = engine.run_schedules_with(paused_clock(at(0)));
    tokio::time::sleep(Duration::from_secs(10)).await;
    scheduler.stop().await;
    let page = engine.schedule_history("ticks", 100, 0).await.unwrap();
    let mut listed: Vec<String> = page.executions.iter().map(|r| r.id.clone()).collect();
    listed.sort();
    assert_eq!(
        listed,
        [
            "ticks_2030-01-01T00:00:01Z",
            "ticks_2030-01-01T00:00:02Z",
            "ticks_2030-01-01T00:00:03Z",
            "ticks_2030-01-01T00:00:04Z",
            "ticks_2030-01-01T00:00:05Z"
        ]
    );
    assert_eq!(engine.schedule_info("ticks").await.unwrap().unwrap().status(), "ended");
}

#[tokio::test(start_paused = true)]
async fn the_background_scheduler_starts_a_buffered_fire_as_soon_as_the_previous_execution_ends() {
    let (engine, gate) = gated();
    engine.schedule(held, every_minute_from_t0(Overlap::BufferOne), 1).await.unwrap();
    let scheduler = engine.run_schedules_with(paused_clock(at(0)));
    tokio::time::sleep(Duration::from_secs(90)).await;
    assert_eq!(engine.schedule_history("held", 10, 0).await.unwrap().total, 1, "one execution while the first runs");
    gate.add_permits(1);
    // Well before the next minute: the kept fire starts when the first execution ends.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let page = engine.schedule_history("held", 10, 0).await.unwrap();
    assert_eq!(page.executions[0].id, "held_2030-01-01T00:01:00Z");
    gate.add_permits(10);
    scheduler.stop().await;
}

/// Declares a schedule: every day at 06:00 in Tokyo, with the input's default.
#[flux::workflow(schedule = "0 6 * * *", timezone = "Asia/Tokyo")]
async fn morning(ctx: ExecutionContext<u32>) -> flux::Result<u32> {
    Ok(*ctx.input())
}

#[tokio::test]
async fn a_workflow_declaring_a_schedule_gets_it_when_the_scheduler_starts() {
    let engine = Engine::in_memory();
    engine.register(morning);
    engine.declare_schedules().await.unwrap();
    let info = engine.schedule_info("morning").await.unwrap().expect("the declared schedule is missing");
    assert_eq!(info.workflow_name, "morning");
    assert_eq!(info.schedule, Schedule::cron("0 6 * * *").unwrap().timezone("Asia/Tokyo").unwrap());
    let next = text(info.next_fire.unwrap());
    assert!(next.ends_with("T21:00:00Z"), "06:00 in Tokyo is 21:00 UTC: {next}");
    // Declared again (a restart): nothing changes.
    engine.declare_schedules().await.unwrap();
    assert_eq!(engine.schedule_info("morning").await.unwrap().unwrap().updated_at, info.updated_at);
}
