#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| kuri_fuzz::json_body(data));
