#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| mswitch::admin::fuzzing::admin_input(data));
