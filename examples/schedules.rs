//! A workflow that runs by itself: an interval schedule firing every second for five seconds,
//! on an engine on SQLite in `.flux/`, each fire printed as its execution completes.
//!
//! ```text
//! cargo run --example schedules --features schedule
//! ```
//!
//! Each fire starts execution `heartbeat_demo_{fire time}`: run two copies at once and each
//! fire still starts once (the second copy finds it started). Cron schedules work the same way:
//! `Schedule::cron("0 9 * * MON-FRI")?.timezone("Europe/Paris")?`.

use std::time::{Duration, SystemTime};

use flux::prelude::*;
use flux::schedule::Schedule;

#[flux::task]
async fn take_reading(beat: String) -> String {
    format!("{beat}: all systems nominal")
}

#[flux::workflow]
async fn heartbeat(ctx: ExecutionContext<String>) -> flux::Result<String> {
    take_reading(ctx.input().clone()).await
}

#[tokio::main]
async fn main() -> flux::Result<()> {
    let engine = flux::Engine::open(".flux/flux.db")?;
    // From the next whole second but one, every second, five fires in all.
    let now = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default().as_secs();
    let start = SystemTime::UNIX_EPOCH + Duration::from_secs(now + 2);
    let schedule = Schedule::interval(Duration::from_secs(1))?.start(start).end(start + Duration::from_secs(4));
    let info = engine.schedule_as("heartbeat_demo", heartbeat, schedule, "heartbeat".to_string()).await?;
    println!("schedule {} ({}), first fire at {}", info.name, info.schedule, when(info.next_fire));

    let scheduler = engine.run_schedules();
    let mut printed = 0;
    let deadline = SystemTime::now() + Duration::from_secs(30);
    while printed < 5 && SystemTime::now() < deadline {
        // The five newest executions of the schedule, oldest first, made by this run.
        let page = engine.schedule_history("heartbeat_demo", 5, 0).await?;
        let mine: Vec<_> = page.executions.iter().rev().filter(|row| row.created_at >= start).collect();
        if let Some(row) = mine.get(printed) {
            let done = heartbeat.on(&engine).wait(&row.id).await?;
            println!("{}  {}  {}", row.id, done.state(), done.output().map(String::as_str).unwrap_or("-"));
            printed += 1;
        } else {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    scheduler.stop().await;
    let info = engine.schedule_info("heartbeat_demo").await?.expect("the schedule is stored");
    println!("{} fires in all; the schedule has {}", info.fires, info.status());
    Ok(())
}

fn when(at: Option<SystemTime>) -> String {
    at.map_or_else(|| "never".to_string(), |t| humantime::format_rfc3339_seconds(t).to_string())
}
