#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| mswitch::certs::fuzzing::certificate_input(data));
