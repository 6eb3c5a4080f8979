#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ekt::fuzzing::ekt_field(data));
