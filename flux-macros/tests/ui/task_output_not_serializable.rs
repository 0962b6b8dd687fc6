// A task's output is recorded in the event log: its type must be serializable.

struct Receipt {
    id: u64,
}

#[flux::task]
async fn ship(id: u64) -> Receipt {
    Receipt { id }
}

fn main() {
    let _ = ship(1);
}
