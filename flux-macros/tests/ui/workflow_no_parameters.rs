// A workflow without parameters has no `ExecutionContext<I>`.

#[flux::workflow]
async fn nothing() -> u32 {
    0
}

fn main() {}
