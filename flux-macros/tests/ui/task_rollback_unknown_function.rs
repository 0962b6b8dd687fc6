#[flux::task(rollback = undo_that_does_not_exist)]
async fn charge(amount: u32) -> u32 {
    amount
}

fn main() {}
