fn fallback_charge(amount: String) -> Result<u32, String> {
    Ok(amount.len() as u32)
}

#[flux::task(fallback = fallback_charge)]
async fn charge(amount: u32) -> Result<u32, String> {
    Ok(amount)
}

fn main() {}
