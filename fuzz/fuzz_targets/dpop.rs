#![no_main]
//! `jwkit::fuzz_entry::dpop`: see src/fuzz_entry.rs for what it takes and asserts.
libfuzzer_sys::fuzz_target!(|data: &[u8]| jwkit::fuzz_entry::dpop(data));
