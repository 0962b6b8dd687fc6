// A task's arguments and output are recorded with concrete types: it cannot be generic.

#[flux::task]
async fn echo<T: Clone>(value: T) -> T {
    value
}

fn main() {
    let _ = echo(1_u32);
}
