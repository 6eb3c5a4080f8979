use thiserror::Error;

/// Why bytes could not be read as an EKT field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum DecodeError {
    /// The packet is shorter than the field it claims to end with.
    #[error("packet too short for the EKT field: {have} bytes, need {need}")]
    TooShort {
        /// Bytes available.
        have: usize,
        /// Bytes the field needs.
        need: usize,
    },
    /// TIP EKT: the last byte is neither a full tag (bit 0 set) nor a short tag (0x00).
    #[error("TIP EKT short tag with reserved bits set (last byte {0:#04x})")]
    ReservedBitsSet(u8),
    /// RFC 8870: a message type this implementation does not know (RFC 8870 §4.1: discard).
    #[error("unknown EKT message type {0:#04x}")]
    UnknownMessageType(u8),
    /// RFC 8870: the EKTMsgLength does not describe a well-formed full field.
    #[error("invalid EKT message length {0}")]
    InvalidLength(usize),
}

/// Why an EKT field could not be written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum EncodeError {
    /// The output buffer is too small.
    #[error("output buffer too small: {have} bytes, need {need}")]
    BufferTooSmall {
        /// Bytes available.
        have: usize,
        /// Bytes needed.
        need: usize,
    },
    /// A field value does not fit the format (e.g. an even SPI in a TIP full tag).
    #[error("invalid field value: {0}")]
    InvalidValue(&'static str),
}

/// Errors of key wrapping and unwrapping.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum KeyError {
    /// A key-encrypting key of a length the cipher does not take.
    #[error("key-encrypting key of {0} bytes is not valid for this cipher")]
    BadKekLength(usize),
    /// A master key of a length the cipher cannot wrap.
    #[error("master key of {0} bytes cannot be wrapped by this cipher")]
    BadKeyLength(usize),
    /// The encrypted master key has the wrong length for the cipher.
    #[error("encrypted master key of {0} bytes has the wrong length")]
    BadCiphertextLength(usize),
    /// AES key wrap integrity check failed: wrong KEK or corrupted ciphertext.
    #[error("key unwrap integrity check failed")]
    IntegrityCheckFailed,
    /// The output buffer is too small.
    #[error("output buffer too small")]
    BufferTooSmall,
    /// RFC 8870: the unwrapped plaintext is malformed (length byte, key length).
    #[error("malformed EKT plaintext")]
    MalformedPlaintext,
}
