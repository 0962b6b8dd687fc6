// A duration cannot be negative.

#[flux::task(timeout = -5)]
async fn fetch(url: String) -> String {
    url
}

fn main() {
    let _ = fetch(String::new());
}
