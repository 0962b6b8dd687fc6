// A task argument must be owned, so that it can be recorded and replayed.

#[flux::task]
async fn greet(name: &str) -> String {
    name.to_string()
}

fn main() {
    let _ = greet("World");
}
