#[flux::task(cache = false, cache_ttl = "1h")]
async fn lookup(key: String) -> String {
    key
}

fn main() {}
