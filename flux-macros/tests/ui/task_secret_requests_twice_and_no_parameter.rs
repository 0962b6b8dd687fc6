#[flux::task(secret_requests = ["API_KEY", "API_KEY"])]
async fn call(path: String) -> String {
    path
}

fn main() {}
