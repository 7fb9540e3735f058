//! Account names, password rules and argon2id hashing.
//!
//! Parameters (`auth.argon2_*`): argon2id, m = 8 MiB, t = 2, p = 1 by default. On the 2-core
//! x86-64 VM this was built on, one hash takes about 5.5 ms on an idle core in a release
//! build (about 9-11 ms median while the other core was busy compiling; about 20 ms in the
//! debug test profile). OWASP's baseline m = 19 MiB, t = 2 took about 16 ms idle there. The
//! default keeps a login within a few milliseconds of CPU while still costing a guesser
//! 8 MiB and two passes per try, and the login throttle bounds guesses per user on top.
//! Stored hashes are PHC strings carrying their own parameters, so changing these later
//! only affects new passwords.
//!
//! Hashing runs on tokio's blocking pool, never on an async worker, and a semaphore bounds
//! how many run at once: memory is at most `max_concurrent_hashes * m_cost`.

use super::AccountError;
use crate::config::AuthConfig;
use crate::sign::ct_eq;
use argon2::password_hash::{PasswordHash, PasswordHasher, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use rand::rngs::OsRng;
use rand::RngCore;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;

/// `^[A-Za-z][A-Za-z0-9_]{3,23}$` (PROTOCOL.md, Register).
pub fn valid_userid(userid: &str) -> bool {
    let b = userid.as_bytes();
    (4..=24).contains(&b.len())
        && b[0].is_ascii_alphabetic()
        && b[1..]
            .iter()
            .all(|c| c.is_ascii_alphanumeric() || *c == b'_')
}

/// 8 to 64 printable ASCII characters, space included.
pub fn valid_password(password: &str) -> bool {
    (8..=64).contains(&password.len()) && password.bytes().all(|c| (0x20..=0x7e).contains(&c))
}

/// How long a request waits for a hashing slot before it is told to retry.
pub const QUEUE_WAIT: Duration = Duration::from_secs(5);

pub struct Hasher {
    params: Params,
    permits: Arc<Semaphore>,
}

impl Hasher {
    pub fn new(params: Params, max_concurrent: usize) -> Hasher {
        let n = if max_concurrent == 0 {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(2)
        } else {
            max_concurrent
        };
        Hasher {
            params,
            permits: Arc::new(Semaphore::new(n)),
        }
    }

    /// A new PHC string for `password`, with a fresh 128-bit salt.
    pub async fn hash(&self, password: String) -> Result<String, AccountError> {
        let params = self.params.clone();
        self.blocking(move || {
            let mut salt = [0u8; 16];
            OsRng.fill_bytes(&mut salt);
            let salt = SaltString::encode_b64(&salt).map_err(|e| e.to_string())?;
            Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
                .hash_password(password.as_bytes(), &salt)
                .map(|h| h.to_string())
                .map_err(|e| e.to_string())
        })
        .await
    }

    /// Whether `password` matches the stored PHC string.
    pub async fn verify(&self, password: String, phc: String) -> Result<bool, AccountError> {
        self.blocking(move || verify_phc(&password, &phc)).await
    }

    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> Result<T, String> + Send + 'static,
    ) -> Result<T, AccountError> {
        let permit = tokio::time::timeout(QUEUE_WAIT, self.permits.clone().acquire_owned())
            .await
            .map_err(|_| AccountError::HasherBusy)?
            .map_err(|_| AccountError::Hashing("the hashing pool is closed".into()))?;
        let r = tokio::task::spawn_blocking(move || {
            let r = f();
            drop(permit);
            r
        })
        .await;
        match r {
            Ok(Ok(v)) => Ok(v),
            // The error texts come from argon2 and never contain the password.
            Ok(Err(e)) => Err(AccountError::Hashing(e)),
            Err(e) => Err(AccountError::Hashing(format!("hashing task failed: {e}"))),
        }
    }
}

/// Recomputes the hash with the stored salt and parameters and compares in constant time.
fn verify_phc(password: &str, phc: &str) -> Result<bool, String> {
    let stored = PasswordHash::new(phc).map_err(|e| format!("stored hash unreadable: {e}"))?;
    if stored.algorithm != Algorithm::Argon2id.ident() {
        return Err("stored hash is not argon2id".into());
    }
    let params = Params::try_from(&stored).map_err(|e| format!("stored params: {e}"))?;
    // A tampered row must not make one login allocate gigabytes.
    if params.m_cost() > AuthConfig::MAX_M_COST_KIB
        || params.t_cost() > AuthConfig::MAX_T_COST
        || params.p_cost() > AuthConfig::MAX_P_COST
    {
        return Err("stored hash parameters exceed the accepted maximum".into());
    }
    let (Some(salt), Some(want)) = (stored.salt, stored.hash) else {
        return Err("stored hash has no salt or no output".into());
    };
    let got = Argon2::default()
        .hash_password_customized(
            password.as_bytes(),
            Some(stored.algorithm),
            stored.version,
            params,
            salt,
        )
        .map_err(|e| format!("rehash: {e}"))?;
    let got = got.hash.ok_or("rehash produced no output")?;
    Ok(ct_eq(got.as_bytes(), want.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fast() -> Hasher {
        Hasher::new(Params::new(64, 1, 1, None).unwrap(), 2)
    }

    #[test]
    fn userid_rule() {
        for ok in ["abcd", "a_1_", "Zz09_abcdefghijklmnopqrs"] {
            assert!(valid_userid(ok), "{ok}");
        }
        for bad in [
            "",
            "abc",
            "1abc",
            "_abc",
            "ab.c",
            "abcé",
            "a bcd",
            "abcdefghijklmnopqrstuvwxy",
        ] {
            assert!(!valid_userid(bad), "{bad}");
        }
    }

    #[test]
    fn password_rule() {
        assert!(valid_password("12345678"));
        assert!(valid_password("with space ~!"));
        assert!(valid_password(&"x".repeat(64)));
        assert!(!valid_password("1234567"));
        assert!(!valid_password(&"x".repeat(65)));
        assert!(!valid_password("tab\there1"));
        assert!(!valid_password("pässwörd1"));
    }

    #[actix_rt::test]
    async fn hash_then_verify() {
        let h = fast();
        let phc = h.hash("correct horse".into()).await.unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=64,t=1,p=1$"), "{phc}");
        assert!(!phc.contains("correct horse"));
        assert!(h.verify("correct horse".into(), phc.clone()).await.unwrap());
        assert!(!h.verify("correct horsE".into(), phc.clone()).await.unwrap());
        // Same password, fresh salt, different hash.
        assert_ne!(h.hash("correct horse".into()).await.unwrap(), phc);
    }

    #[test]
    fn the_library_agrees() {
        use argon2::PasswordVerifier;
        let salt = SaltString::encode_b64(b"0123456789abcdef").unwrap();
        let phc = Argon2::new(
            Algorithm::Argon2id,
            Version::V0x13,
            Params::new(64, 1, 1, None).unwrap(),
        )
        .hash_password(b"password1", &salt)
        .unwrap()
        .to_string();
        let parsed = PasswordHash::new(&phc).unwrap();
        assert!(Argon2::default()
            .verify_password(b"password1", &parsed)
            .is_ok());
        assert_eq!(verify_phc("password1", &phc), Ok(true));
        assert_eq!(verify_phc("password2", &phc), Ok(false));
    }

    #[test]
    fn bad_stored_hashes_are_errors_not_panics() {
        for phc in [
            "",
            "garbage",
            "$argon2i$v=19$m=64,t=1,p=1$MDEyMzQ1Njc4OWFiY2RlZg$aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
            "$argon2id$v=19$m=4294967295,t=1,p=1$MDEyMzQ1Njc4OWFiY2RlZg$aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
            "$argon2id$v=19$m=64,t=1,p=1$MDEyMzQ1Njc4OWFiY2RlZg",
        ] {
            assert!(verify_phc("password1", phc).is_err(), "{phc}");
        }
    }

    /// `cargo test --release --lib accounts::passwords::tests::cost -- --ignored --nocapture`
    #[test]
    #[ignore]
    fn cost() {
        let c = AuthConfig::default();
        let params = c.argon2_params().unwrap();
        let a = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
        let salt = SaltString::encode_b64(b"0123456789abcdef").unwrap();
        let _ = a.hash_password(b"password1", &salt).unwrap();
        let n = 50;
        let t = std::time::Instant::now();
        for _ in 0..n {
            let _ = a.hash_password(b"password1", &salt).unwrap();
        }
        println!(
            "argon2id m={} KiB t={} p={}: {:.2} ms per hash",
            c.argon2_m_cost_kib,
            c.argon2_t_cost,
            c.argon2_p_cost,
            t.elapsed().as_secs_f64() * 1000.0 / n as f64
        );
    }
}
