//! Tencent LVB event callback signature: `sign = md5(api_key + t)`, where
//! `t` is the expiry the sender chose.

use md5::{Digest, Md5};

use super::{ct_eq, SignError};

/// Lower-case hex `md5(api_key + decimal t)`.
pub fn sign(api_key: &str, t: u64) -> String {
    let mut h = Md5::new();
    h.update(api_key.as_bytes());
    h.update(t.to_string().as_bytes());
    hex::encode(h.finalize())
}

/// Verify a callback's `sign` (hex, any case), then that `t` has not passed.
pub fn verify(api_key: &str, t: u64, sign: &str, now: u64) -> Result<(), SignError> {
    if !ct_eq(
        sign.to_ascii_lowercase().as_bytes(),
        self::sign(api_key, t).as_bytes(),
    ) {
        return Err(SignError::Mismatch);
    }
    if now > t {
        return Err(SignError::Expired);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn vector() {
        // md5("key1234") computed independently (e.g. `printf key1234 | md5sum`).
        assert_eq!(sign("key", 1234), "a3242946d36928582d4bccd842d3318d");
        assert_eq!(
            verify("key", 1234, "A3242946D36928582D4BCCD842D3318D", 1234),
            Ok(())
        );
        assert_eq!(
            verify("key", 1234, &sign("key", 1234), 1235),
            Err(SignError::Expired)
        );
        assert_eq!(
            verify("key", 1235, &sign("key", 1234), 0),
            Err(SignError::Mismatch)
        );
        // Mismatch wins over expiry so forgeries learn nothing more.
        assert_eq!(verify("key", 1, "00", u64::MAX), Err(SignError::Mismatch));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn sign_then_verify(key in ".{0,40}", now in 0u64..u64::MAX / 2, ttl in 0u64..1u64 << 40) {
            let t = now + ttl;
            prop_assert_eq!(verify(&key, t, &sign(&key, t), now), Ok(()));
        }

        #[test]
        fn tampering_rejected(key in ".{0,40}", t in any::<u64>(), other_t in any::<u64>(),
                              idx in any::<prop::sample::Index>(), pick in prop_oneof![prop::char::range('*', 'z'), any::<char>()]) {
            let s = sign(&key, t);
            let mut sc: Vec<char> = s.chars().collect();
            let i = idx.index(sc.len());
            // Hex is compared case-insensitively, so a case flip is not a change.
            if !sc[i].eq_ignore_ascii_case(&pick) {
                sc[i] = pick;
                let bad: String = sc.into_iter().collect();
                prop_assert_eq!(verify(&key, t, &bad, 0), Err(SignError::Mismatch));
            }
            if other_t != t {
                prop_assert_eq!(verify(&key, other_t, &s, 0), Err(SignError::Mismatch));
            }
        }

        #[test]
        fn expired_rejected(key in ".{0,40}", t in 0u64..u64::MAX - 1000, late in 1u64..1000) {
            prop_assert_eq!(verify(&key, t, &sign(&key, t), t + late), Err(SignError::Expired));
        }

        #[test]
        fn verify_never_panics(key in ".*", t in any::<u64>(), s in ".*", now in any::<u64>()) {
            let _ = verify(&key, t, &s, now);
        }
    }
}
