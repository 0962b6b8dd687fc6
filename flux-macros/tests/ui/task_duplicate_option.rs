// An option can be given only once.

#[flux::task(timeout = "1s", retry_max_attempts = 2, timeout = "2s")]
async fn fetch(url: String) -> String {
    url
}

fn main() {
    let _ = fetch(String::new());
}
