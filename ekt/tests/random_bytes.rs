//! Random-bytes smoke test of every parser: no input panics (the fuzz targets run the same
//! entry points under libFuzzer).

use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4000))]

    #[test]
    fn tip_tag_parser_never_panics(data in proptest::collection::vec(any::<u8>(), 0..200)) {
        ekt::fuzzing::tip_tag(&data);
    }

    #[test]
    fn ekt_field_parser_never_panics(mut data in proptest::collection::vec(any::<u8>(), 0..200), len in 0u16..300) {
        // Steer half the cases into the full-field branch with a plausible length.
        if data.len() > 3 && len % 2 == 0 {
            let n = data.len();
            data[n - 1] = 2;
            data[n - 3..n - 1].copy_from_slice(&len.to_be_bytes());
        }
        ekt::fuzzing::ekt_field(&data);
    }
}
