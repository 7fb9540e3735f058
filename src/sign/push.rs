//! Tencent LVB push URL hotlink protection:
//! `txSecret = md5(key + streamName + txTime)`, `txTime` = expiry in upper hex.

use md5::{Digest, Md5};

use super::{ct_eq, SignError};

/// `{bizid}_{userid}` (the userid alone without a bizid: a self-hosted media server) with
/// every char outside `[A-Za-z0-9_]` turned into one `_`, so the result is always safe in a
/// URL path and an RTMP stream key.
pub fn stream_name(bizid: &str, userid: &str) -> String {
    let name = if bizid.is_empty() {
        userid.to_string()
    } else {
        format!("{bizid}_{userid}")
    };
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Expiry as upper-case hex without padding, as the LVB docs show it.
pub fn tx_time(expiry_unix: u64) -> String {
    format!("{expiry_unix:X}")
}

/// Lower-case hex `md5(key + stream + tx_time)`.
pub fn tx_secret(key: &str, stream: &str, tx_time: &str) -> String {
    let mut h = Md5::new();
    h.update(key.as_bytes());
    h.update(stream.as_bytes());
    h.update(tx_time.as_bytes());
    hex::encode(h.finalize())
}

/// Verify a push URL's `txSecret`/`txTime`. `tx_time` is hashed exactly as
/// received; the secret is compared case-insensitively (hex).
pub fn verify(
    key: &str,
    stream: &str,
    tx_secret: &str,
    tx_time: &str,
    now_unix: u64,
) -> Result<(), SignError> {
    // Validate first so from_str_radix never sees a sign or a >64-bit value.
    if tx_time.is_empty() || tx_time.len() > 16 || !tx_time.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(SignError::Malformed("txTime"));
    }
    let expiry = u64::from_str_radix(tx_time, 16).map_err(|_| SignError::Malformed("txTime"))?;
    let expected = self::tx_secret(key, stream, tx_time);
    if !ct_eq(
        tx_secret.to_ascii_lowercase().as_bytes(),
        expected.as_bytes(),
    ) {
        return Err(SignError::Mismatch);
    }
    if expiry < now_unix {
        return Err(SignError::Expired);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const KEY: &str = "e12c46f2612d5106e2034781ab261ca3";

    #[test]
    fn vector() {
        assert_eq!(tx_time(0x5C27_1099), "5C271099");
        assert_eq!(
            tx_secret(KEY, "test", "5C271099"),
            "f85a2ab363fe4deaffef9754d79da6fe"
        );
        let secret = "f85a2ab363fe4deaffef9754d79da6fe";
        assert_eq!(verify(KEY, "test", secret, "5C271099", 0x5C27_1099), Ok(()));
        assert_eq!(
            verify(KEY, "test", &secret.to_uppercase(), "5C271099", 0),
            Ok(())
        );
        assert_eq!(
            verify(KEY, "test", secret, "5C271099", 0x5C27_109A),
            Err(SignError::Expired)
        );
        // Same value, different case: hashed as received, so it must not match.
        assert_eq!(
            verify(KEY, "test", secret, "5c271099", 0),
            Err(SignError::Mismatch)
        );
    }

    #[test]
    fn stream_names() {
        assert_eq!(stream_name("8888", "user_1"), "8888_user_1");
        assert_eq!(stream_name("8888", "a b/c-d"), "8888_a_b_c_d");
        assert_eq!(stream_name("88 88", "小明x"), "88_88___x");
        assert_eq!(stream_name("", "alice1"), "alice1");
        assert_eq!(stream_name("", "a.b"), "a_b");
    }

    #[test]
    fn tx_time_format() {
        assert_eq!(tx_time(0), "0");
        assert_eq!(tx_time(0xabc), "ABC");
        assert_eq!(tx_time(u64::MAX), "FFFFFFFFFFFFFFFF");
    }

    #[test]
    fn malformed_tx_time() {
        for t in ["", "+1", "-1", "G", "0x1", "12345678901234567", " 1", "１"] {
            assert_eq!(
                verify(KEY, "s", "00", t, 0),
                Err(SignError::Malformed("txTime")),
                "{t:?}"
            );
        }
    }

    /// A different character that is not just the ASCII case variant.
    fn other_char(c: char, pick: char) -> Option<char> {
        (pick != c && !pick.eq_ignore_ascii_case(&c)).then_some(pick)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn sign_then_verify(key in ".{0,40}", biz in "[0-9]{1,8}", user in ".{0,20}",
                            now in 0u64..u64::MAX / 2, ttl in 0u64..1u64 << 40) {
            let stream = stream_name(&biz, &user);
            prop_assert!(stream.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'));
            let t = tx_time(now + ttl);
            let s = tx_secret(&key, &stream, &t);
            prop_assert_eq!(verify(&key, &stream, &s, &t, now), Ok(()));
            prop_assert_eq!(verify(&key, &stream, &s.to_uppercase(), &t, now), Ok(()));
        }

        #[test]
        fn tampering_rejected(key in ".{0,40}", stream in "[A-Za-z0-9_]{1,30}",
                              exp in 1u64..u64::MAX, idx in any::<prop::sample::Index>(),
                              pick in prop_oneof![prop::char::range('*', 'z'), any::<char>()]) {
            let t = tx_time(exp);
            let s = tx_secret(&key, &stream, &t);

            let mut sc: Vec<char> = s.chars().collect();
            let i = idx.index(sc.len());
            if let Some(c) = other_char(sc[i], pick) {
                sc[i] = c;
                let bad: String = sc.into_iter().collect();
                prop_assert!(verify(&key, &stream, &bad, &t, 0).is_err());
            }

            let mut tc: Vec<char> = t.chars().collect();
            let i = idx.index(tc.len());
            if pick != tc[i] {
                tc[i] = pick;
                let bad: String = tc.into_iter().collect();
                prop_assert!(verify(&key, &stream, &s, &bad, 0).is_err());
            }

            let mut stc: Vec<char> = stream.chars().collect();
            let i = idx.index(stc.len());
            if pick != stc[i] {
                stc[i] = pick;
                let bad: String = stc.into_iter().collect();
                prop_assert_eq!(verify(&key, &bad, &s, &t, 0), Err(SignError::Mismatch));
            }
        }

        #[test]
        fn expired_rejected(key in ".{0,40}", stream in "[A-Za-z0-9_]{1,30}",
                            exp in 0u64..u64::MAX - 1, late in 1u64..1000) {
            let t = tx_time(exp);
            let s = tx_secret(&key, &stream, &t);
            let now = exp.saturating_add(late);
            prop_assert_eq!(verify(&key, &stream, &s, &t, now), Err(SignError::Expired));
        }

        #[test]
        fn verify_never_panics(key in ".*", stream in ".*", s in ".*", t in ".*", now in any::<u64>()) {
            let _ = verify(&key, &stream, &s, &t, now);
        }
    }
}
