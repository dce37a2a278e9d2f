//! Any document through tenant configuration validation, storage and diffs.
//! The invariants: `learnlink_core::fuzz_checks::config_parser`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    learnlink_core::fuzz_checks::config_parser(data);
});
