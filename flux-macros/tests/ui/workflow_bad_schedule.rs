// A schedule's cron expression is checked when the workflow compiles: four fields are too few,
// and a `timezone` needs a `schedule`.

use flux::ExecutionContext;

#[flux::workflow(schedule = "0 9 * *")]
async fn nightly(ctx: ExecutionContext<u32>) -> flux::Result<u32> {
    Ok(*ctx.input())
}

#[flux::workflow(timezone = "Europe/Paris")]
async fn zoned(ctx: ExecutionContext<u32>) -> flux::Result<u32> {
    Ok(*ctx.input())
}

fn main() {}
