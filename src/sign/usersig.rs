//! Tencent IM UserSig v2: a zlib-compressed JSON document carrying
//! `TLS.sig = base64(hmac_sha256(key, content))`, base64-encoded with
//! `+ / =` swapped for `* - _` so it survives URLs.

use base64::{engine::general_purpose::STANDARD, Engine as _};
use flate2::{write::ZlibEncoder, Compression, Decompress, FlushDecompress, Status};
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;
use std::io::Write;

use super::{ct_eq, SignError};

/// Inflated JSON is ~200 bytes; cap it (and the input) to bound work on garbage.
const MAX_LEN: usize = 64 * 1024;

/// The text the HMAC covers.
pub fn hmac_content(identifier: &str, sdkappid: u64, time: i64, expire: i64) -> String {
    format!(
        "TLS.identifier:{identifier}\nTLS.sdkappid:{sdkappid}\nTLS.time:{time}\nTLS.expire:{expire}\n"
    )
}

/// `base64(hmac_sha256(key, hmac_content(..)))`.
pub fn tls_sig(key: &str, identifier: &str, sdkappid: u64, time: i64, expire: i64) -> String {
    // HMAC takes keys of any length, so this cannot fail.
    let mut m =
        Hmac::<Sha256>::new_from_slice(key.as_bytes()).expect("HMAC accepts keys of any length");
    m.update(hmac_content(identifier, sdkappid, time, expire).as_bytes());
    STANDARD.encode(m.finalize().into_bytes())
}

/// Make a UserSig valid from `time` for `expire` seconds.
pub fn gen(key: &str, identifier: &str, sdkappid: u64, time: i64, expire: i64) -> String {
    let sig = tls_sig(key, identifier, sdkappid, time, expire);
    // Written by hand to keep Tencent's key order whatever serde_json features
    // are enabled; Value's Display does the string escaping.
    let json = format!(
        r#"{{"TLS.ver":"2.0","TLS.identifier":{},"TLS.sdkappid":{sdkappid},"TLS.expire":{expire},"TLS.time":{time},"TLS.sig":{}}}"#,
        Value::from(identifier),
        Value::from(sig),
    );
    let mut z = ZlibEncoder::new(Vec::new(), Compression::default());
    // Writing to a Vec cannot fail.
    let compressed = z
        .write_all(json.as_bytes())
        .and_then(|()| z.finish())
        .expect("in-memory zlib cannot fail");
    url_encode(&compressed)
}

/// Standard base64 with `+ / =` mapped to `* - _`.
fn url_encode(bytes: &[u8]) -> String {
    STANDARD
        .encode(bytes)
        .chars()
        .map(|c| match c {
            '+' => '*',
            '/' => '-',
            '=' => '_',
            c => c,
        })
        .collect()
}

/// The fields of a decoded (not yet verified) UserSig.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decoded {
    pub ver: String,
    pub identifier: String,
    pub sdkappid: u64,
    pub expire: i64,
    pub time: i64,
    pub sig: String,
}

/// Decode without checking the signature.
///
/// Inflate ignores the unused bits that pad the deflate stream's last byte,
/// so several strings can decode to one document: key caches or revocation
/// lists on the decoded fields (or `sig`), not on the raw UserSig string.
pub fn decode(usersig: &str) -> Result<Decoded, SignError> {
    const BAD: SignError = SignError::Malformed("usersig");
    if usersig.len() > MAX_LEN {
        return Err(BAD);
    }
    // Reject the unmapped characters too: accepting both `*` and `+` would
    // give one signature two spellings.
    let b64: String = usersig
        .chars()
        .map(|c| match c {
            '*' => Ok('+'),
            '-' => Ok('/'),
            '_' => Ok('='),
            '+' | '/' | '=' => Err(BAD),
            c => Ok(c),
        })
        .collect::<Result<_, _>>()?;
    let raw = STANDARD.decode(b64).map_err(|_| BAD)?;

    // One-shot inflate into a capped buffer: the stream must end (adler32
    // checked) within MAX_LEN bytes and use all of the input.
    let mut z = Decompress::new(true);
    let mut json = Vec::with_capacity(MAX_LEN);
    match z.decompress_vec(&raw, &mut json, FlushDecompress::Finish) {
        Ok(Status::StreamEnd) if usize::try_from(z.total_in()).ok() == Some(raw.len()) => {}
        _ => return Err(BAD),
    }

    let v: Value = serde_json::from_slice(&json).map_err(|_| BAD)?;
    let s = |k: &str| {
        v.get(k)
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or(BAD)
    };
    let i = |k: &str| v.get(k).and_then(Value::as_i64).ok_or(BAD);
    Ok(Decoded {
        ver: s("TLS.ver")?,
        identifier: s("TLS.identifier")?,
        sdkappid: v.get("TLS.sdkappid").and_then(Value::as_u64).ok_or(BAD)?,
        expire: i("TLS.expire")?,
        time: i("TLS.time")?,
        sig: s("TLS.sig")?,
    })
}

/// Decode and verify. The caller still checks `identifier` and `sdkappid`
/// against what it expects.
pub fn verify(key: &str, usersig: &str, now: i64) -> Result<Decoded, SignError> {
    let d = decode(usersig)?;
    // ver is not covered by the HMAC, so pin it rather than trust it.
    if d.ver != "2.0" {
        return Err(SignError::Malformed("TLS.ver"));
    }
    let want = tls_sig(key, &d.identifier, d.sdkappid, d.time, d.expire);
    if !ct_eq(d.sig.as_bytes(), want.as_bytes()) {
        return Err(SignError::Mismatch);
    }
    if d.time.saturating_add(d.expire) < now {
        return Err(SignError::Expired);
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const KEY: &str = "5bd2850fff3ecb11d7c805251c51ee463a25727bddc2385f3fa8bfee1bb93b5e";
    const APPID: u64 = 1400000000;

    #[test]
    fn vector() {
        assert_eq!(
            tls_sig(KEY, "xiaojun", APPID, 1600000000, 15552000),
            "1Z5PngDjGaufeSiPoBuxdHY7EK3JTdAjMP93S4KvV3M="
        );
        let u = gen(KEY, "xiaojun", APPID, 1600000000, 15552000);
        assert!(!u.contains(['+', '/', '=']));
        let d = verify(KEY, &u, 1600000000 + 15552000).expect("valid");
        assert_eq!(
            d,
            Decoded {
                ver: "2.0".into(),
                identifier: "xiaojun".into(),
                sdkappid: APPID,
                expire: 15552000,
                time: 1600000000,
                sig: "1Z5PngDjGaufeSiPoBuxdHY7EK3JTdAjMP93S4KvV3M=".into(),
            }
        );
        assert_eq!(
            verify(KEY, &u, 1600000000 + 15552001),
            Err(SignError::Expired)
        );
        assert_eq!(verify("nope", &u, 0), Err(SignError::Mismatch));
    }

    #[test]
    fn json_has_exact_keys() {
        let u = gen(KEY, "a\"b\\c\n", APPID, 1, 2);
        let raw = url_decode(&u);
        let mut json = String::new();
        std::io::Read::read_to_string(&mut flate2::read::ZlibDecoder::new(&raw[..]), &mut json)
            .unwrap();
        let v: Value = serde_json::from_str(&json).unwrap();
        let mut keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
        keys.sort_unstable();
        assert_eq!(
            keys,
            [
                "TLS.expire",
                "TLS.identifier",
                "TLS.sdkappid",
                "TLS.sig",
                "TLS.time",
                "TLS.ver"
            ]
        );
        assert_eq!(v["TLS.ver"], "2.0");
        assert_eq!(v["TLS.identifier"], "a\"b\\c\n");
        assert_eq!(v["TLS.sdkappid"], APPID);
        assert_eq!(v["TLS.expire"], 2);
        assert_eq!(v["TLS.time"], 1);
    }

    fn url_decode(u: &str) -> Vec<u8> {
        let b64 = u.replace('*', "+").replace('-', "/").replace('_', "=");
        STANDARD.decode(b64).unwrap()
    }

    fn encode(json: &[u8]) -> String {
        let mut z = ZlibEncoder::new(Vec::new(), Compression::default());
        z.write_all(json).unwrap();
        url_encode(&z.finish().unwrap())
    }

    #[test]
    fn malformed() {
        let bad = Err(SignError::Malformed("usersig"));
        assert_eq!(decode(""), bad);
        assert_eq!(decode("!!!"), bad);
        assert_eq!(decode("eJyrVgIAMAA"), bad); // truncated
        assert_eq!(decode(&"A".repeat(MAX_LEN + 1)), bad);
        let good = gen(KEY, "x", 1, 1, 1);
        // Unmapped standard base64 characters are not accepted.
        assert_eq!(decode(&good.replace('_', "=")), bad);
        // Trailing bytes after the zlib stream.
        let mut raw = url_decode(&good);
        assert!(decode(&url_encode(&raw)).is_ok());
        raw.push(0);
        assert_eq!(decode(&url_encode(&raw)), bad);
        // Well-formed zlib, wrong JSON.
        assert_eq!(decode(&encode(b"[]")), bad);
        assert_eq!(decode(&encode(b"{\"TLS.ver\":\"2.0\"}")), bad);
        // Inflates past the cap.
        assert_eq!(decode(&encode(&vec![b' '; MAX_LEN + 1])), bad);
        // Unknown version.
        let sig = tls_sig(KEY, "x", 1, 1, 1);
        let json = format!(
            r#"{{"TLS.ver":"3.0","TLS.identifier":"x","TLS.sdkappid":1,"TLS.expire":1,"TLS.time":1,"TLS.sig":"{sig}"}}"#
        );
        assert_eq!(
            verify(KEY, &encode(json.as_bytes()), 0),
            Err(SignError::Malformed("TLS.ver"))
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn gen_then_verify(key in ".{0,64}", id in ".{0,32}", appid in any::<u64>(),
                           time in 0i64..1i64 << 40, expire in 0i64..1i64 << 30) {
            let u = gen(&key, &id, appid, time, expire);
            let d = verify(&key, &u, time + expire).expect("fresh sig verifies");
            prop_assert_eq!(d.identifier, id);
            prop_assert_eq!(d.sdkappid, appid);
            prop_assert_eq!((d.time, d.expire), (time, expire));
        }

        #[test]
        fn tampering_rejected(key in ".{0,64}", id in ".{1,32}", time in 0i64..1i64 << 40,
                              idx in any::<prop::sample::Index>(), pick in prop_oneof![prop::char::range('*', 'z'), any::<char>()]) {
            let u = gen(&key, &id, APPID, time, 3600);
            let mut uc: Vec<char> = u.chars().collect();
            let i = idx.index(uc.len());
            if uc[i] != pick {
                uc[i] = pick;
                let bad: String = uc.into_iter().collect();
                // Inflate ignores the deflate stream's final padding bits, so a
                // flip there still decodes; it must decode to the same document.
                if let Ok(d) = verify(&key, &bad, 0) {
                    prop_assert_eq!(Ok(d), decode(&u));
                }
            }
            // A sig made for other content does not verify.
            let mut ic: Vec<char> = id.chars().collect();
            let i = idx.index(ic.len());
            if ic[i] != pick {
                ic[i] = pick;
                let other: String = ic.into_iter().collect();
                let sig = tls_sig(&key, &id, APPID, time, 3600);
                let json = format!(
                    r#"{{"TLS.ver":"2.0","TLS.identifier":{},"TLS.sdkappid":{APPID},"TLS.expire":3600,"TLS.time":{time},"TLS.sig":"{sig}"}}"#,
                    Value::from(other)
                );
                prop_assert_eq!(verify(&key, &encode(json.as_bytes()), 0), Err(SignError::Mismatch));
            }
        }

        #[test]
        fn expired_rejected(key in ".{0,64}", id in ".{0,32}", time in 0i64..1i64 << 40,
                            expire in 0i64..1i64 << 30, late in 1i64..1000) {
            let u = gen(&key, &id, APPID, time, expire);
            prop_assert_eq!(verify(&key, &u, time + expire + late), Err(SignError::Expired));
        }

        #[test]
        fn never_panics(key in ".*", s in ".*", b64 in "[A-Za-z0-9*_-]{0,400}", now in any::<i64>()) {
            let _ = decode(&s);
            let _ = verify(&key, &s, now);
            let _ = verify(&key, &b64, now);
        }
    }
}
