//! Random-bytes smoke test of every switch parser and the forwarder (the cargo-fuzz targets
//! in fuzz/ run the same entry points under libFuzzer): no input panics, every genuine
//! packet is forwarded.

use proptest::prelude::*;

fn rtp_like() -> impl Strategy<Value = Vec<u8>> {
    // Half the cases start like an RTP header (V = 2) so the parsers get past byte 0.
    (
        any::<bool>(),
        proptest::collection::vec(any::<u8>(), 0..300),
    )
        .prop_map(|(steer, mut v)| {
            if steer && !v.is_empty() {
                v[0] = 0x80 | (v[0] & 0x3f);
            }
            v
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1500))]

    #[test]
    fn rtp_header_parser_never_panics(data in rtp_like()) {
        switch::fuzzing::rtp_header(&data);
    }

    #[test]
    fn tip_decoders_never_panic(mut data in proptest::collection::vec(any::<u8>(), 0..80), subtype in 0u8..32) {
        // Half the cases carry a TIP header so the body decoders run.
        if data.len() >= 12 && subtype % 2 == 0 {
            data[0] = 0x80 | (subtype & 0x1f);
            data[1] = 204;
            data[8..12].copy_from_slice(b"xcts");
        }
        switch::fuzzing::tip_packet(&data);
    }

    #[test]
    fn srtp_unprotect_never_panics(data in rtp_like()) {
        switch::fuzzing::srtp_unprotect(&data);
    }

    #[test]
    fn an_established_dtls_line_survives_any_datagram(first in 20u8..64, data in proptest::collection::vec(any::<u8>(), 0..300)) {
        // The first byte in the DTLS range (RFC 7983), as the meeting hands them over.
        let mut input = vec![first];
        input.extend(data);
        switch::fuzzing::dtls_established(&input);
    }

    #[test]
    fn forwarder_drops_garbage_and_forwards_genuine_packets(mode in any::<u8>(), data in rtp_like()) {
        let mut input = vec![mode];
        input.extend(data);
        switch::fuzzing::forward(&input);
    }

    #[test]
    fn a_transcrypt_leg_survives_any_datagram(data in rtp_like()) {
        switch::fuzzing::transcrypt(&data);
    }
}
