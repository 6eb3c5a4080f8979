//! `mswitch selftest`: the forwarding fast path on the WIRE.md section 3 vectors, checked
//! byte for byte, plus a tampered copy that must be dropped. A quick way for an operator to
//! see the core doing its job on this machine.

use std::fmt::Write as _;

use ekt::kek::EktCipher;
use ekt::{ParameterSet, Spi, SrtpProfile};
use switch::forward::{CsrcRewrite, DropReason, Forwarder, Receiver, TxBatch};

const KEK: &str = "000102030405060708090a0b0c0d0e0f";
const SALT: &str = "0ec675ad498afeebb6960b3aabe6";
const VECTORS: [(&str, &str, &str); 2] = [
    (
        "full EKT tag, IDR flag",
        "81701234decafbadcafebabe123451214e55dc4ce79978d88ca4d215949d2402016c2b86db4d3f17ba13ee53c128b0a3642573474b33a2d4b90b8e000000001234a5a5",
        "81701234decafbadcafebabe123453234e55dc4ce79978d88ca4d215949d2402172e6dd8f67e39e135b353c128b0a3642573474b33a2d4b90b8e000000001234a5a5",
    ),
    (
        "short EKT tag",
        "81701235decafbadcafebabe1234512111399ff951c3e036f8de27e9c27ee3e0004c84de539929e5a2728e00",
        "81701235decafbadcafebabe1234532311399ff951c3e036f8de27e9c27ee3e02730134cf68ff9e2066d00",
    ),
];

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex vector"))
        .collect()
}

fn hex(b: &[u8]) -> String {
    b.iter().fold(String::new(), |mut s, x| {
        let _ = write!(s, "{x:02x}");
        s
    })
}

fn forwarder() -> Result<Forwarder, String> {
    let mut f = Forwarder::new(4);
    let set = ParameterSet::new(
        EktCipher::AesEcb128,
        &unhex(KEK),
        SrtpProfile::AesCm128HmacSha1_80,
        &unhex(SALT),
    )
    .map_err(|e| e.to_string())?;
    f.registry_mut()
        .insert(Spi(0xa5a5), set)
        .map_err(|e| e.to_string())?;
    Ok(f)
}

/// Runs the self-check; returns a readable report, or what went wrong.
pub fn run() -> Result<String, String> {
    let mut f = forwarder()?;
    let screen3 = [Receiver {
        id: 1,
        csrc: CsrcRewrite::TipScreen(3),
    }];
    let mut report =
        String::from("EKT group parameters: SPI 0xa5a5, AES-128-ECB, AES_CM_128_HMAC_SHA1_80\n");
    for (name, input, want) in VECTORS {
        let data = unhex(input);
        let v = f
            .verify(&data, true)
            .map_err(|r| format!("{name}: dropped ({})", r.label()))?;
        let mut out = TxBatch::new(1, 1);
        f.emit(&data, &v, &screen3, &mut out)
            .map_err(|r| format!("{name}: {}", r.label()))?;
        let got = out.iter().next().map(|(_, b)| hex(b)).unwrap_or_default();
        if got != want {
            return Err(format!("{name}: forwarded {got}, expected {want}"));
        }
        let _ = writeln!(
            report,
            "{name}: SSRC {:#010x} verified, appended byte {:?} stripped, CSRC {:#010x} -> screen 3, re-signed: {} bytes match",
            v.ssrc(),
            v.appended_byte().unwrap_or_default(),
            v.first_csrc().unwrap_or_default(),
            got.len() / 2
        );
    }
    // One flipped ciphertext bit, offered to a fresh forwarder: the tag must catch it.
    let mut forged = unhex(VECTORS[0].1);
    forged[20] ^= 1;
    let mut fresh = forwarder()?;
    match fresh.verify(&forged, true) {
        Err(DropReason::AuthFailed) => {
            report.push_str("tampered packet: dropped (auth_failed), as it must be\n")
        }
        other => return Err(format!("tampered packet was not dropped: {other:?}")),
    }
    let s = f.stats();
    let _ = write!(
        report,
        "counters: verified {}, forwarded {}, re-signed {}, keys learned {}, dropped {}",
        s.verified,
        s.forwarded,
        s.resigned,
        s.keys_learned,
        s.dropped_total()
    );
    Ok(report)
}

#[cfg(test)]
mod tests {
    #[test]
    fn selftest_passes() {
        let report = super::run().unwrap();
        assert!(report.contains("dropped (auth_failed)"), "{report}");
        assert!(report.contains("forwarded 2"), "{report}");
    }
}
