// `timeout` must be a duration humantime understands.

#[flux::task(timeout = "3 parsecs")]
async fn fetch(url: String) -> String {
    url
}

fn main() {
    let _ = fetch(String::new());
}
