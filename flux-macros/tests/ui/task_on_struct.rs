// `#[flux::task]` applies only to functions.

#[flux::task]
struct Fetch {
    url: String,
}

fn main() {
    let _ = Fetch { url: String::new() }.url;
}
