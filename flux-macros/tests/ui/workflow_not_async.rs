// A workflow must be an `async fn`.

use flux::ExecutionContext;

#[flux::workflow]
fn double(ctx: ExecutionContext<u32>) -> u32 {
    ctx.input() * 2
}

fn main() {}
