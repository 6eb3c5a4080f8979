//! Entry points for the cargo-fuzz targets and the random-bytes smoke tests. Not API.

use crate::kek::{EktCipher, Kek};
use crate::{ekt_field, tip_tag};

/// Runs every TIP EKT parser over `data`; must never panic.
pub fn tip_tag(data: &[u8]) {
    let _ = tip_tag::tag_form(data);
    let _ = tip_tag::peek_spi(data);
    let header = usize::from(data.first().copied().unwrap_or(0) % 32);
    for emk_len in [16, 24, 32, 40] {
        if let Ok(p) = tip_tag::TipEkt::parse(data, header, 10, emk_len) {
            assert!(p.start >= header && p.start + p.field.len() == data.len());
        }
    }
}

/// Runs the RFC 8870 parser and unwrap over `data`; must never panic.
pub fn ekt_field(data: &[u8]) {
    if let Ok(p) = ekt_field::parse(data) {
        assert!(p.start <= data.len());
        if let ekt_field::EktField::Full(f) = p.field {
            let kek = Kek::new(EktCipher::AesKwp, &[0u8; 16]).expect("16-byte KEK");
            let _ = ekt_field::unwrap(&kek, &f);
        }
    }
    for cipher in [EktCipher::AesEcb128, EktCipher::AesKw] {
        let kek = Kek::new(cipher, &[1u8; 16]).expect("16-byte KEK");
        let _ = kek.unwrap(data, &mut [0u8; 64]);
    }
}
