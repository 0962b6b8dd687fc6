// A placeholder of the name template must name an argument of the task.

#[flux::task(name = "x_{nope}")]
async fn fetch(url: String) -> String {
    url
}

fn main() {
    let _ = fetch(String::new());
}
