//! First byte: the dialect (`c`, `t`, `n`, `d`, `s` or any byte modulo 5); the rest: the body.
//! The invariants: `learnlink_core::fuzz_checks::webhook_dialects`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    learnlink_core::fuzz_checks::webhook_dialects(data);
});
