//! Recovery's box scanner on arbitrary bytes: it must never panic, never
//! read past the input, and never claim more than the input holds.
#![no_main]

use std::io::Cursor;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = reallive_store::scan::scan(&mut Cursor::new(data)) {
        assert!(s.valid_len <= data.len() as u64);
        assert!(s.init_bytes <= s.valid_len);
        for f in &s.fragments {
            assert!(f.end() <= s.valid_len);
        }
    }
});
