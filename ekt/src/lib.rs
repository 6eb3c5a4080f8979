//! EKT (Encrypted Key Transport) wire formats and key-transport crypto. No I/O.
//!
//! Two formats live here, both parsed from the end of a packet:
//! - [`tip_tag`]: the TIP/CTMS EKT field that replaces the SRTP/SRTCP authentication tag
//!   (draft-ietf-avt-srtp-ekt-02 reading; shared/design/WIRE.md section 2).
//! - [`ekt_field`]: the RFC 8870 EKTField appended after the SRTP tag (WIRE.md section 4).
//!
//! [`kek`] holds the key-encrypting keys and the EMK ciphers (AES-128-ECB, AES-KW RFC 3394,
//! AES-KWP RFC 5649); [`spi`] the registry of parameter sets by SPI; [`epoch`] the RFC 8870
//! epoch rule.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod ekt_field;
pub mod epoch;
mod error;
pub mod kek;
pub mod spi;
pub mod tip_tag;

#[doc(hidden)]
pub mod fuzzing;

pub use error::{DecodeError, EncodeError, KeyError};
pub use spi::{ParameterSet, RegistryError, Spi, SpiRegistry, SrtpProfile};

/// The longest SRTP master key any supported profile uses (AES-256).
pub const MAX_MASTER_KEY_LEN: usize = 32;
/// The longest SRTP master salt (the AES-CM 112-bit salt; GCM uses 96 bits).
pub const MAX_MASTER_SALT_LEN: usize = 14;
