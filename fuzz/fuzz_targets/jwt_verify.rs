#![no_main]

use std::sync::LazyLock;

static TARGET: LazyLock<kuri_fuzz::JwtTarget> = LazyLock::new(kuri_fuzz::JwtTarget::new);

libfuzzer_sys::fuzz_target!(|data: &[u8]| TARGET.run(data));
