#[flux::task(retry_max_attempts = 2, retry_delay = "soon")]
async fn fetch(url: String) -> String {
    url
}

fn main() {}
