//! COS v4 reusable (multi-effect) upload signature:
//! `base64(hmac_sha1(secret_key, plain) ++ plain)`.

use base64::{engine::general_purpose::STANDARD, Engine as _};
use hmac::{Hmac, Mac};
use rand::Rng;
use sha1::Sha1;

use super::{ct_eq, SignError};

const MAC_LEN: usize = 20;

/// The signed text. `f=` is empty because a reusable signature is not bound
/// to a single file.
pub fn plain(
    appid: &str,
    bucket: &str,
    secret_id: &str,
    expire: u64,
    now: u64,
    rand: u32,
) -> String {
    format!("a={appid}&b={bucket}&k={secret_id}&e={expire}&t={now}&r={rand}&f=")
}

fn mac(secret_key: &str, plain: &[u8]) -> [u8; MAC_LEN] {
    // HMAC takes keys of any length, so this cannot fail.
    let mut m = Hmac::<Sha1>::new_from_slice(secret_key.as_bytes())
        .expect("HMAC accepts keys of any length");
    m.update(plain);
    m.finalize().into_bytes().into()
}

/// Sign an already built plain text.
pub fn sign_plain(secret_key: &str, plain: &str) -> String {
    let mut buf = Vec::with_capacity(MAC_LEN + plain.len());
    buf.extend_from_slice(&mac(secret_key, plain.as_bytes()));
    buf.extend_from_slice(plain.as_bytes());
    STANDARD.encode(buf)
}

/// A fresh signature valid from `now` for `validity_secs`; `r` is random so
/// two signatures made in the same second differ.
pub fn sign(
    appid: &str,
    bucket: &str,
    secret_id: &str,
    secret_key: &str,
    now: u64,
    validity_secs: u64,
) -> String {
    let r: u32 = rand::thread_rng().gen();
    let expire = now.saturating_add(validity_secs);
    sign_plain(secret_key, &plain(appid, bucket, secret_id, expire, now, r))
}

/// Check a signature's MAC, then its `e=` expiry.
pub fn verify(secret_key: &str, signature: &str, now: u64) -> Result<(), SignError> {
    let raw = STANDARD
        .decode(signature)
        .map_err(|_| SignError::Malformed("signature"))?;
    if raw.len() < MAC_LEN {
        return Err(SignError::Malformed("signature"));
    }
    let (got, plain) = raw.split_at(MAC_LEN);
    if !ct_eq(got, &mac(secret_key, plain)) {
        return Err(SignError::Mismatch);
    }
    let expire = std::str::from_utf8(plain)
        .ok()
        .and_then(|p| p.split('&').find_map(|kv| kv.strip_prefix("e=")))
        .and_then(|e| e.parse::<u64>().ok())
        .ok_or(SignError::Malformed("e"))?;
    if expire < now {
        return Err(SignError::Expired);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const KEY: &str = "bLcPnl88WU30VY57ipRhSePfPdOfSruK";
    const PLAIN: &str = "a=200001&b=newbucket&k=AKIDUfLUEUigQiXqm7CVSspKJnuaiIKtxqAv&e=1437995704&t=1437995644&r=2081660421&f=";
    const SIG: &str = "wHgvVkXpcZ3d+G0rOkAJml3R5NdhPTIwMDAwMSZiPW5ld2J1Y2tldCZrPUFLSURVZkxVRVVpZ1FpWHFtN0NWU3NwS0pudWFpSUt0eHFBdiZlPTE0Mzc5OTU3MDQmdD0xNDM3OTk1NjQ0JnI9MjA4MTY2MDQyMSZmPQ==";

    #[test]
    fn vector() {
        let p = plain(
            "200001",
            "newbucket",
            "AKIDUfLUEUigQiXqm7CVSspKJnuaiIKtxqAv",
            1437995704,
            1437995644,
            2081660421,
        );
        assert_eq!(p, PLAIN);
        assert_eq!(sign_plain(KEY, PLAIN), SIG);
        assert_eq!(verify(KEY, SIG, 1437995704), Ok(()));
        assert_eq!(verify(KEY, SIG, 1437995705), Err(SignError::Expired));
        assert_eq!(verify("other", SIG, 0), Err(SignError::Mismatch));
    }

    #[test]
    fn malformed() {
        assert_eq!(verify(KEY, "", 0), Err(SignError::Malformed("signature")));
        assert_eq!(verify(KEY, "!!", 0), Err(SignError::Malformed("signature")));
        assert_eq!(
            verify(KEY, "AAAA", 0),
            Err(SignError::Malformed("signature"))
        );
        // Valid MAC over text without an `e=` field.
        let s = sign_plain(KEY, "a=1&b=2");
        assert_eq!(verify(KEY, &s, 0), Err(SignError::Malformed("e")));
        let s = sign_plain(KEY, "a=1&e=x&f=");
        assert_eq!(verify(KEY, &s, 0), Err(SignError::Malformed("e")));
    }

    #[test]
    fn sign_round_trip_and_random_r() {
        let a = sign("1", "b", "id", KEY, 1000, 60);
        let b = sign("1", "b", "id", KEY, 1000, 60);
        assert_eq!(verify(KEY, &a, 1060), Ok(()));
        assert_eq!(verify(KEY, &a, 1061), Err(SignError::Expired));
        // Differs only by r; a u32 collision here is a 1-in-4-billion flake.
        assert_ne!(a, b);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn sign_then_verify(appid in "[0-9]{1,10}", bucket in "[a-z0-9-]{1,20}", id in "[A-Za-z0-9]{0,40}",
                            key in ".{0,40}", now in 0u64..u64::MAX / 2, ttl in 0u64..1u64 << 40) {
            let s = sign(&appid, &bucket, &id, &key, now, ttl);
            prop_assert_eq!(verify(&key, &s, now), Ok(()));
            prop_assert_eq!(verify(&key, &s, now + ttl), Ok(()));
        }

        #[test]
        fn tampering_rejected(key in ".{0,40}", exp in any::<u64>(), r in any::<u32>(),
                              idx in any::<prop::sample::Index>(), pick in prop_oneof![prop::char::range('*', 'z'), any::<char>()]) {
            let p = plain("1250000000", "bucket", "AKIDxx", exp, 0, r);
            let s = sign_plain(&key, &p);

            let mut sc: Vec<char> = s.chars().collect();
            let i = idx.index(sc.len());
            if sc[i] != pick {
                sc[i] = pick;
                let bad: String = sc.into_iter().collect();
                prop_assert!(verify(&key, &bad, 0).is_err());
            }

            // Change the signed text but keep the original MAC.
            let mut pc: Vec<char> = p.chars().collect();
            let i = idx.index(pc.len());
            if pc[i] != pick {
                pc[i] = pick;
                let bad_plain: String = pc.into_iter().collect();
                let raw = STANDARD.decode(&s).expect("own output");
                let mut forged = raw[..MAC_LEN].to_vec();
                forged.extend_from_slice(bad_plain.as_bytes());
                let forged = STANDARD.encode(forged);
                prop_assert_eq!(verify(&key, &forged, 0), Err(SignError::Mismatch));
            }
        }

        #[test]
        fn expired_rejected(key in ".{0,40}", exp in 0u64..u64::MAX - 1000, late in 1u64..1000) {
            let s = sign_plain(&key, &plain("1", "b", "k", exp, 0, 7));
            prop_assert_eq!(verify(&key, &s, exp + late), Err(SignError::Expired));
        }

        #[test]
        fn verify_never_panics(key in ".*", s in ".*", b64 in "[A-Za-z0-9+/=]{0,200}", now in any::<u64>()) {
            let _ = verify(&key, &s, now);
            let _ = verify(&key, &b64, now);
        }
    }
}
