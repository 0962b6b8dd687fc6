async fn fallback_charge(amount: u32) -> String {
    amount.to_string()
}

#[flux::task(fallback = fallback_charge)]
async fn charge(amount: u32) -> Result<u32, String> {
    Ok(amount)
}

fn main() {}
