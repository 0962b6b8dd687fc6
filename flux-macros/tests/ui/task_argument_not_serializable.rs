// A task argument is recorded in the event log: its type must be serializable.

struct Order {
    id: u64,
}

#[flux::task]
async fn ship(order: Order) -> u64 {
    order.id
}

fn main() {
    let _ = ship(Order { id: 1 });
}
