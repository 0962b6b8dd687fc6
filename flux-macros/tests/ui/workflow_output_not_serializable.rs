// A workflow's output is recorded in the event log: its type must be serializable.

use flux::ExecutionContext;

struct Report {
    total: u32,
}

#[flux::workflow]
async fn report(ctx: ExecutionContext<u32>) -> Report {
    Report { total: *ctx.input() }
}

fn main() {
    let _ = report.run(1);
}
