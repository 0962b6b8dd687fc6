#[flux::task(cache_ttl = "a fortnight-ish")]
async fn lookup(key: String) -> String {
    key
}

fn main() {}
