// Retries and timeouts are task options: a workflow only takes `name`.

use flux::ExecutionContext;

#[flux::workflow(timeout = "1s")]
async fn double(ctx: ExecutionContext<u32>) -> u32 {
    ctx.input() * 2
}

fn main() {}
