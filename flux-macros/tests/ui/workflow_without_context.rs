// A workflow's first parameter must be `ExecutionContext<I>`.

#[flux::workflow]
async fn double(input: u32) -> u32 {
    input * 2
}

fn main() {}
