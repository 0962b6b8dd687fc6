//! libFuzzer entry point of the `parse` target; the harness is `flux_fuzz::parse::run`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| flux_fuzz::parse::run(data));
