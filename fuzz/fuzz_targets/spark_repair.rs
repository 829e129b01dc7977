//! Fuzzes `trendflow_ops::spark_lenient::repair` on one line of raw bytes.
//!
//! Checked, besides "no panic": a repaired line is valid UTF-8 (the parser hands it to a
//! strict UTF-8 JSON parser) and differs from the input (None means "nothing to change").
#![no_main]

use libfuzzer_sys::fuzz_target;
use trendflow_ops::spark_lenient::repair;

fuzz_target!(|line: &[u8]| {
    if let Some(fixed) = repair(line) {
        assert!(
            std::str::from_utf8(&fixed).is_ok(),
            "repaired line is not UTF-8: {fixed:?}"
        );
        assert_ne!(fixed, line, "Some but nothing changed");
    }
});
