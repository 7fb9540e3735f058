//! Signature schemes for the Tencent services minilvb talks to: LVB push URLs,
//! COS v4 upload signatures, IM UserSig v2 and LVB callback signatures.
//!
//! Every verifier checks the signature before expiry, so a forged value only
//! ever learns "mismatch", and no error message carries a key or signature.

pub mod callback;
pub mod cos;
pub mod push;
pub mod usersig;
pub mod vod;

use subtle::ConstantTimeEq;

/// Constant-time equality. Lengths are public (every signature here has a
/// fixed length), so a length difference returns `false` straight away.
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

/// Whether a presented bearer token is the configured one. Both are hashed first, so
/// the comparison takes the same time whatever either length; an empty `expected` (not
/// configured) or an oversized `given` never matches.
pub fn token_eq(given: &str, expected: &str) -> bool {
    use sha2::{Digest, Sha256};
    !expected.is_empty()
        && given.len() <= 512
        && ct_eq(
            &Sha256::digest(given.as_bytes()),
            &Sha256::digest(expected.as_bytes()),
        )
}

/// Why a presented operator token was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenRefusal {
    /// None is configured: whatever needs it is off.
    NotConfigured,
    Missing,
    Invalid,
}

/// Checks a presented token (if any) against the configured one.
pub fn check_token(given: Option<&str>, expected: &str) -> Result<(), TokenRefusal> {
    if expected.is_empty() {
        return Err(TokenRefusal::NotConfigured);
    }
    match given {
        None => Err(TokenRefusal::Missing),
        Some(t) if token_eq(t, expected) => Ok(()),
        Some(_) => Err(TokenRefusal::Invalid),
    }
}

/// Why a signature was rejected. Messages never include secret material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignError {
    #[error("signature mismatch")]
    Mismatch,
    #[error("signature expired")]
    Expired,
    #[error("malformed {0}")]
    Malformed(&'static str),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ct_eq_basics() {
        assert!(ct_eq(b"", b""));
        assert!(ct_eq(b"abc", b"abc"));
        assert!(!ct_eq(b"abc", b"abd"));
        assert!(!ct_eq(b"abc", b"ab"));
        assert!(!ct_eq(b"", b"a"));
    }

    #[test]
    fn huge_inputs_are_rejected_not_panicked() {
        let huge = "A".repeat(4 << 20);
        assert!(push::verify(&huge, &huge, &huge, &huge, 0).is_err());
        assert!(cos::verify(&huge, &huge, 0).is_err());
        assert!(usersig::verify(&huge, &huge, 0).is_err());
        assert!(callback::verify(&huge, 0, &huge, 0).is_err());
    }

    #[test]
    fn error_messages_are_fixed() {
        assert_eq!(SignError::Mismatch.to_string(), "signature mismatch");
        assert_eq!(SignError::Expired.to_string(), "signature expired");
        assert_eq!(
            SignError::Malformed("txTime").to_string(),
            "malformed txTime"
        );
    }
}
