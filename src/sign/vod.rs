//! Tencent VOD client-upload signature (GetVodSignatureV2): the query string
//! `secretId=..&currentTimeStamp=..&expireTime=..[&procedure=..]&random=..` (URL-encoded, in
//! that order), and `base64(HMAC-SHA1(secret_key, query) ‖ query)`.

use base64::Engine;
use hmac::{Hmac, Mac};
use sha1::Sha1;

/// What one signature grants.
pub struct Grant<'a> {
    pub secret_id: &'a str,
    pub now: u64,
    pub expire: u64,
    /// A VOD task flow to run on the upload; empty for none.
    pub procedure: &'a str,
    pub random: u32,
}

/// The signed query string, before encoding.
pub fn original(g: &Grant) -> String {
    let mut q = form_urlencoded_pairs(&[
        ("secretId", g.secret_id),
        ("currentTimeStamp", &g.now.to_string()),
        ("expireTime", &g.expire.to_string()),
    ]);
    if !g.procedure.is_empty() {
        q.push('&');
        q.push_str(&form_urlencoded_pairs(&[("procedure", g.procedure)]));
    }
    q.push_str(&format!("&random={}", g.random));
    q
}

fn form_urlencoded_pairs(pairs: &[(&str, &str)]) -> String {
    serde_urlencoded::to_string(pairs).unwrap_or_default()
}

/// `base64(HMAC-SHA1(secret_key, original) ‖ original)`.
pub fn signature(secret_key: &str, g: &Grant) -> String {
    let original = original(g);
    let mut mac = Hmac::<Sha1>::new_from_slice(secret_key.as_bytes())
        .expect("HMAC accepts a key of any length");
    mac.update(original.as_bytes());
    let mut raw = mac.finalize().into_bytes().to_vec();
    raw.extend_from_slice(original.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(raw)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Computed independently (`openssl dgst -sha1 -hmac`, then base64 of digest and text).
    #[test]
    fn vector() {
        let g = Grant {
            secret_id: "AKIDtestSecretId",
            now: 1_500_000_000,
            expire: 1_500_086_400,
            procedure: "XIAOZHIBO-DEFAULT",
            random: 12345,
        };
        assert_eq!(
            original(&g),
            "secretId=AKIDtestSecretId&currentTimeStamp=1500000000&expireTime=1500086400\
             &procedure=XIAOZHIBO-DEFAULT&random=12345"
        );
        assert_eq!(
            signature("testSecretKey", &g),
            "XvjGAIOeJsbE7nZUYLMS1MEFRnJzZWNyZXRJZD1BS0lEdGVzdFNlY3JldElkJmN1cnJlbnRUaW1lU3Rh\
             bXA9MTUwMDAwMDAwMCZleHBpcmVUaW1lPTE1MDAwODY0MDAmcHJvY2VkdXJlPVhJQU9aSElCTy1ERUZB\
             VUxUJnJhbmRvbT0xMjM0NQ=="
        );
    }

    #[test]
    fn values_are_url_encoded_and_procedure_optional() {
        let g = Grant {
            secret_id: "a b&c",
            now: 1,
            expire: 2,
            procedure: "",
            random: 7,
        };
        assert_eq!(
            original(&g),
            "secretId=a+b%26c&currentTimeStamp=1&expireTime=2&random=7"
        );
    }
}
