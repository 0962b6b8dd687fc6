#[flux::task]
async fn lookup(#[allow(unused)] key: String) -> u32 {
    1
}

fn main() {}
