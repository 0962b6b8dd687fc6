// A task has effects and is recorded at run time: it cannot be a `const fn`.

#[flux::task]
const fn answer(x: u32) -> u32 {
    x
}

fn main() {
    let _ = answer(1);
}
