use flux::secrets::Secrets;

#[flux::task]
async fn call(path: String, secrets: Secrets) -> String {
    format!("{path} {}", secrets.len())
}

fn main() {}
