use flux::prelude::*;

#[flux::workflow(version = 0)]
async fn zero(_ctx: ExecutionContext<()>) -> flux::Result<()> {
    Ok(())
}

fn main() {}
