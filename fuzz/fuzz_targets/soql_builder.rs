//! Any text through the SOQL literal and query builders.
//! The invariants: `learnlink_core::fuzz_checks::soql_builder`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    learnlink_core::fuzz_checks::soql_builder(data);
});
