#[flux::task(cache = "yes")]
async fn lookup(key: String) -> String {
    key
}

fn main() {}
