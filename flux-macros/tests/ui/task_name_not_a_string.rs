#[flux::task(name = 5)]
async fn fetch(url: String) -> String {
    url
}

fn main() {}
