// The same mistake as `task_negative_retry_count.rs`, with another option after it.

#[flux::task(retry_max_attempts = -1, timeout = "1s")]
async fn fetch(url: String) -> String {
    url
}

fn main() {
    let _ = fetch(String::new());
}
