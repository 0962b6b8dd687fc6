// A workflow takes only its `ExecutionContext<I>`: further inputs belong in `I`.

use flux::ExecutionContext;

#[flux::workflow]
async fn scale(ctx: ExecutionContext<u32>, factor: u32) -> u32 {
    ctx.input() * factor
}

fn main() {}
