use flux::secrets::Secrets;

#[flux::task(secret_requests = "API_KEY")]
async fn call(path: String, secrets: Secrets) -> String {
    format!("{path} {}", secrets.len())
}

fn main() {}
