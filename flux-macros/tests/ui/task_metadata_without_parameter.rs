#[flux::task(metadata = true)]
async fn lookup(key: String) -> String {
    key
}

fn main() {}
