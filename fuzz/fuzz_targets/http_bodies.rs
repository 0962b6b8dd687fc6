//! libFuzzer entry point of the `http_bodies` target; the harness is `flux_fuzz::http_bodies::run`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| flux_fuzz::http_bodies::run(data));
