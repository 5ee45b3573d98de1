#![no_main]
//! `jwkit::fuzz_entry::jwe`: see src/fuzz_entry.rs for what it takes and asserts.
libfuzzer_sys::fuzz_target!(|data: &[u8]| jwkit::fuzz_entry::jwe(data));
