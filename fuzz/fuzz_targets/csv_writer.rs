//! Any bytes through the CSV reader; rows made of them through the writer and back.
//! The invariants: `learnlink_core::fuzz_checks::csv_writer`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    learnlink_core::fuzz_checks::csv_writer(data);
});
