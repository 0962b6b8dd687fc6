#[flux::task(cache_ttl = "0s")]
async fn lookup(key: String) -> String {
    key
}

fn main() {}
