// `retries` is not an option of `#[flux::task]` (it is `retry_max_attempts`).

#[flux::task(retries = 3)]
async fn fetch(url: String) -> String {
    url
}

fn main() {
    let _ = fetch(String::new());
}
