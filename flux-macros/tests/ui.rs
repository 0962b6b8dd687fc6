//! Compile-fail UI tests for `#[flux::task]` and `#[flux::workflow]`.
//!
//! Each file in `tests/ui/` is a small program that must fail to compile for exactly one
//! reason: a bad attribute option, a function shape the macros reject, or a value type that
//! cannot be stored in the event log. The expected compiler output, including the span of each
//! error, is in the `.stderr` file next to it. Regenerate the snapshots with
//! `TRYBUILD=overwrite cargo test -p flux-macros --test ui` and review the diff. The programs in
//! `tests/pass/` must compile and run.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/*.rs");
    // Legitimate shapes that must keep compiling (and running).
    t.pass("tests/pass/*.rs");
}
