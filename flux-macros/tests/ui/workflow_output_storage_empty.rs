use flux::prelude::*;

#[flux::workflow(output_storage = "")]
async fn report(ctx: ExecutionContext<u32>) -> u32 {
    *ctx.input()
}

fn main() {}
