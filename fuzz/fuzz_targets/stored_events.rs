//! libFuzzer entry point of the `stored_events` target; the harness is `flux_fuzz::stored_events::run`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| flux_fuzz::stored_events::run(data));
