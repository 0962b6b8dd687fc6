#[flux::task(fallback = "fallback_charge")]
async fn charge(amount: u32) -> u32 {
    amount
}

fn main() {}
