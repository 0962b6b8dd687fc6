// `retry_max_attempts` is a count: it cannot be negative.

#[flux::task(retry_max_attempts = -1)]
async fn fetch(url: String) -> String {
    url
}

fn main() {
    let _ = fetch(String::new());
}
