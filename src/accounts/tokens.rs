//! Bearer tokens: 256 random bits, sent as unpadded base64url, stored as a SHA-256 hash.
//!
//! A plain hash (no salt, no slow KDF) is enough because the input is 256 random bits: a
//! leaked table gives nothing to brute-force, and the lookup stays one indexed read.

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine as _};
use rand::rngs::OsRng;
use rand::RngCore;
use sha2::{Digest, Sha256};

/// Length of a token as sent: 32 bytes in unpadded base64url.
pub const TOKEN_LEN: usize = 43;

/// A fresh random token.
pub fn generate() -> String {
    let mut bytes = [0u8; 32];
    OsRng.fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// A fresh family id (128 random bits, hex): not a secret, only a grouping key.
pub fn family() -> String {
    let mut bytes = [0u8; 16];
    OsRng.fill_bytes(&mut bytes);
    hex::encode(bytes)
}

/// What the store keeps: lowercase hex SHA-256 of the token text.
pub fn hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Whether `token` could be one of ours; anything else is refused without a database read.
pub fn well_formed(token: &str) -> bool {
    token.len() == TOKEN_LEN
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_well_formed_and_hashed() {
        let a = generate();
        let b = generate();
        assert_ne!(a, b);
        assert!(well_formed(&a) && well_formed(&b), "{a} {b}");
        assert_eq!(hash(&a).len(), 64);
        assert_ne!(hash(&a), hash(&b));
        assert_eq!(
            hash("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(family().len(), 32);
    }

    #[test]
    fn malformed_tokens() {
        assert!(!well_formed(""));
        assert!(!well_formed(&"a".repeat(42)));
        assert!(!well_formed(&"a".repeat(44)));
        assert!(!well_formed(&format!("{}=", "a".repeat(42))));
        assert!(!well_formed(&format!("{}é", "a".repeat(41))));
        assert!(well_formed(
            &"a-_9"
                .repeat(10)
                .chars()
                .chain("abc".chars())
                .collect::<String>()
        ));
    }
}
