// `retry_backoff` multiplies the delay between attempts: it must be positive.

#[flux::task(retry_backoff = 0)]
async fn fetch(url: String) -> String {
    url
}

fn main() {
    let _ = fetch(String::new());
}
