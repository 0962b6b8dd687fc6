// A task cannot be an `unsafe fn`.

#[flux::task]
unsafe fn answer(x: u32) -> u32 {
    x
}

fn main() {
    let _ = answer;
}
