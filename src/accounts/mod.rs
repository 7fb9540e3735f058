//! Accounts: Register, Login, Refresh, and who may act as whom (PROTOCOL.md section 2).
//!
//! - Passwords: argon2id PHC strings, hashed off the async executor (`passwords`).
//! - Tokens: 256 random bits, stored only as SHA-256 hashes, with expiry (`tokens`). Login
//!   starts a token *family*; Refresh rotates the refresh token inside it, and presenting a
//!   rotated refresh token again revokes the whole family (it can only mean the token leaked).
//!   A rotation leaves the previous access token valid until it expires, so requests already
//!   in flight do not fail.
//! - Throttles: Register per client address, failed Logins per userid (`throttle`).
//! - Login and Refresh answer an IM UserSig v2 for the user when `im.sdkappid` and
//!   `im.secret_key` are set; otherwise `im.usersig` is `""` (and `im.sdkappid` 0).
//!
//! Passwords and tokens are never logged and never put in error messages.

mod error;
pub mod passwords;
pub mod throttle;
pub mod tokens;

pub use error::AccountError;

use crate::config::{AuthMode, Config, ConfigError, ImConfig};
use crate::model::now_unix;
use crate::sign::{ct_eq, usersig};
use crate::store::{AccountStore, NewToken, TokenKind, TokenState};
use passwords::Hasher;
use serde::Serialize;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use throttle::{Refused, Shared, SharedWindows, Throttle};

/// Expired tokens are deleted at most this often (seconds), by whichever Login comes next.
const PURGE_EVERY: i64 = 600;

/// The accounts service: storage, hashing and throttles of one running app.
pub struct Accounts {
    store: Arc<dyn AccountStore>,
    mode: AuthMode,
    token_ttl: i64,
    refresh_ttl: i64,
    im: ImConfig,
    hasher: Hasher,
    register_throttle: Throttle<IpAddr>,
    login_throttle: Throttle<String>,
    next_purge: AtomicI64,
    /// Recently verified access tokens (by hash): userid, expiry and when it was checked.
    /// Saves a database read on every protected request; bounded, and emptied whenever a
    /// family is revoked so a revoked token stops working at once in this process.
    verified: dashmap::DashMap<String, (String, i64, i64)>,
    /// Told when a family is revoked here (a cluster passes it on to the other nodes).
    on_revoke: std::sync::OnceLock<Box<dyn Fn() + Send + Sync>>,
    /// In a cluster, the throttles' windows as every node counts them (each node's own
    /// throttle still applies, and alone while the shared count cannot be reached).
    shared: std::sync::OnceLock<Arc<dyn SharedWindows>>,
}

/// An attempt's hold in a shared window. Ended with `end`; dropped without (a cancelled
/// request), it is given back from a task of its own.
struct SharedHold {
    shared: Arc<dyn SharedWindows>,
    key: String,
    window: Duration,
    ended: bool,
}

impl SharedHold {
    async fn end(mut self, failed: bool) {
        self.ended = true;
        self.shared.finish(&self.key, failed, self.window).await;
    }
}

impl Drop for SharedHold {
    fn drop(&mut self) {
        if self.ended {
            return;
        }
        let (shared, key, window) = (
            self.shared.clone(),
            std::mem::take(&mut self.key),
            self.window,
        );
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move { shared.finish(&key, false, window).await });
        }
    }
}

/// How long a verified token is trusted without asking the database again.
const VERIFIED_TTL: i64 = 30;
/// Most verified tokens remembered.
const VERIFIED_CAPACITY: usize = 100_000;

/// The answer of Login and Refresh.
#[derive(Serialize, utoipa::ToSchema)]
pub struct TokenSet {
    pub token: String,
    pub refresh_token: String,
    /// Seconds the access token stays valid.
    pub expires: i64,
    pub im: Im,
}

/// The IM identity of the user (an empty `usersig` when IM is not configured).
#[derive(Serialize, utoipa::ToSchema)]
pub struct Im {
    pub sdkappid: u64,
    pub userid: String,
    pub usersig: String,
}

/// Who may run an Action when authentication is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Guard<'a> {
    /// Anyone.
    Public,
    /// Any logged-in user.
    AnyUser,
    /// Only this userid, logged in.
    Owner(&'a str),
    /// An operator: the admin token, in every auth mode (checked by the action itself).
    Admin,
}

type Result<T, E = AccountError> = std::result::Result<T, E>;

fn secs(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

impl Accounts {
    pub fn new(config: &Config, store: Arc<dyn AccountStore>) -> Result<Accounts, ConfigError> {
        let a = &config.auth;
        let window = |s: u64| Duration::from_secs(s.max(1));
        Ok(Accounts {
            store,
            mode: a.mode,
            token_ttl: secs(a.token_ttl_secs.max(1)),
            refresh_ttl: secs(a.refresh_ttl_secs.max(1)),
            im: config.im.clone(),
            hasher: Hasher::new(a.argon2_params()?, a.max_concurrent_hashes),
            register_throttle: Throttle::new(
                a.register_per_addr,
                window(a.register_window_secs),
                a.throttle_capacity,
            ),
            login_throttle: Throttle::new(
                a.login_failures_per_user,
                window(a.login_window_secs),
                a.throttle_capacity,
            ),
            next_purge: AtomicI64::new(0),
            verified: dashmap::DashMap::new(),
            on_revoke: std::sync::OnceLock::new(),
            shared: std::sync::OnceLock::new(),
        })
    }

    pub fn store(&self) -> &Arc<dyn AccountStore> {
        &self.store
    }

    /// Counts the throttles' windows in `shared` too (set once, at start, in a cluster).
    pub fn share_throttles(&self, shared: Arc<dyn SharedWindows>) {
        let _ = self.shared.set(shared);
    }

    /// Counts a hit of `key` where every node sees it: the retry wait when over `throttle`'s
    /// limit. Nothing on a single node, or while the shared count cannot be reached.
    async fn shared_hit<K: Eq + std::hash::Hash + Clone>(
        &self,
        throttle: &Throttle<K>,
        key: &str,
    ) -> Option<Duration> {
        let shared = self.shared.get()?;
        if throttle.limit() == 0 {
            return None;
        }
        // Unreachable: this node's own throttle decides alone.
        shared
            .hit(key, throttle.limit(), throttle.window())
            .await
            .unwrap_or(None)
    }

    /// Starts an attempt in the shared window too, waiting (up to `max_wait`) while every
    /// hit left is held by attempts on any node. `Ok(None)`: no shared window (one node,
    /// or it cannot be reached), nothing to finish.
    async fn shared_begin<K: Eq + std::hash::Hash + Clone>(
        &self,
        throttle: &Throttle<K>,
        key: &str,
        max_wait: Duration,
    ) -> Result<Option<SharedHold>, Refused> {
        let Some(shared) = self.shared.get() else {
            return Ok(None);
        };
        if throttle.limit() == 0 {
            return Ok(None);
        }
        let deadline = tokio::time::Instant::now() + max_wait;
        let mut pause = Duration::from_millis(5);
        loop {
            match shared.begin(key, throttle.limit(), throttle.window()).await {
                Err(()) => return Ok(None),
                Ok(Shared::Go) => {
                    return Ok(Some(SharedHold {
                        shared: shared.clone(),
                        key: key.to_string(),
                        window: throttle.window(),
                        ended: false,
                    }))
                }
                Ok(Shared::Throttled(wait)) => return Err(Refused::Throttled(wait)),
                Ok(Shared::Busy) if tokio::time::Instant::now() + pause > deadline => {
                    return Err(Refused::Busy)
                }
                // Other nodes' attempts cannot wake this one: look again, less and less often.
                Ok(Shared::Busy) => {
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_millis(100));
                }
            }
        }
    }

    /// Runs `f` whenever a token family is revoked here (set once, at start).
    pub fn on_revoke(&self, f: impl Fn() + Send + Sync + 'static) {
        let _ = self.on_revoke.set(Box::new(f));
    }

    /// Forgets every verified token, so the next use of each asks the database: another
    /// node revoked a family.
    pub fn forget_verified(&self) {
        self.verified.clear();
    }

    /// The userid a valid (known, unexpired, unrevoked) access token belongs to.
    pub async fn user_of(&self, token: &str) -> Result<Option<String>> {
        if !tokens::well_formed(token) {
            return Ok(None);
        }
        let hash = tokens::hash(token);
        let now = now_unix();
        if let Some(hit) = self.verified.get(&hash) {
            let (userid, expires_at, checked_at) = hit.value();
            if *expires_at > now && now - *checked_at < VERIFIED_TTL {
                return Ok(Some(userid.clone()));
            }
        }
        let Some(rec) = self.store.find_token(&hash).await? else {
            return Ok(None);
        };
        // The row was found by its hash; comparing again here keeps the one comparison this
        // code makes constant-time whatever the database's collation does.
        let valid = ct_eq(rec.hash.as_bytes(), hash.as_bytes())
            && rec.kind == TokenKind::Access
            && rec.state == TokenState::Active
            && rec.expires_at > now;
        if valid {
            if self.verified.len() >= VERIFIED_CAPACITY {
                self.verified
                    .retain(|_, (_, exp, checked)| *exp > now && now - *checked < VERIFIED_TTL);
            }
            if self.verified.len() < VERIFIED_CAPACITY {
                self.verified
                    .insert(hash, (rec.userid.clone(), rec.expires_at, now));
            }
        }
        Ok(valid.then_some(rec.userid))
    }

    /// Whether a caller with `token` may run `action` under `guard`. With authentication
    /// off, anyone may do anything.
    pub async fn authorize(
        &self,
        action: &'static str,
        guard: Guard<'_>,
        token: Option<&str>,
    ) -> Result<()> {
        if self.mode == AuthMode::Off || guard == Guard::Public || guard == Guard::Admin {
            return Ok(());
        }
        let token = token.ok_or(AccountError::TokenMissing { action })?;
        let user = self
            .user_of(token)
            .await?
            .ok_or(AccountError::TokenInvalid)?;
        match guard {
            Guard::Owner(userid) if userid != user => {
                Err(AccountError::TokenNotOwner(userid.to_string()))
            }
            _ => Ok(()),
        }
    }

    /// A new user (Register); `peer` is the client address registrations are throttled by.
    pub async fn register(
        &self,
        userid: String,
        password: String,
        peer: Option<IpAddr>,
    ) -> Result<()> {
        if !passwords::valid_userid(&userid) {
            return Err(AccountError::BadUserName);
        }
        if !passwords::valid_password(&password) {
            return Err(AccountError::BadPassword);
        }
        let addr = throttle_addr(peer);
        let throttled = self.register_throttle.hit(&addr).is_err()
            || self
                .shared_hit(&self.register_throttle, &format!("register:{addr}"))
                .await
                .is_some();
        if throttled {
            tracing::info!(addr = %addr, "registration throttled");
            return Err(AccountError::RegisterThrottled);
        }
        let exists = || AccountError::UserExists(userid.clone());
        // Cheap check first, so a taken name costs no hash; the insert stays authoritative.
        if self.store.user_exists(&userid).await? {
            return Err(exists());
        }
        let phc = self.hasher.hash(password).await?;
        if !self.store.create_user(&userid, &phc, now_unix()).await? {
            return Err(exists());
        }
        tracing::info!(userid = %userid, "user registered");
        Ok(())
    }

    pub async fn login(&self, userid: String, password: &str) -> Result<TokenSet> {
        let unknown = || AccountError::NoSuchUser(userid.clone());
        if !passwords::valid_userid(&userid) {
            return Err(unknown());
        }
        let Some(phc) = self.store.password_hash(&userid).await? else {
            return Err(unknown());
        };
        // Only a wrong password counts against the user. While its password is checked, an
        // attempt holds one of the failures the user has left, so guesses sent at once
        // cannot outrun the limit; correct passwords give theirs back, and attempts beyond
        // what is left wait for one to finish rather than fail.
        let attempt = match self
            .login_throttle
            .attempt(&userid, passwords::QUEUE_WAIT)
            .await
        {
            Ok(a) => a,
            Err(Refused::Throttled(wait)) => {
                tracing::info!(userid = %userid, "login throttled");
                return Err(AccountError::LoginThrottled {
                    userid,
                    retry_secs: wait.as_secs().max(1),
                });
            }
            Err(Refused::Busy) => {
                tracing::info!(userid = %userid, "login busy: too many attempts at once");
                return Err(AccountError::LoginBusy(userid));
            }
        };
        // In a cluster the attempt also holds a hit of the window every node sees, so
        // guesses spread over the nodes cannot outrun the limit either.
        let shared_key = format!("login:{userid}");
        let shared = match self
            .shared_begin(&self.login_throttle, &shared_key, passwords::QUEUE_WAIT)
            .await
        {
            Ok(shared) => shared,
            Err(Refused::Throttled(wait)) => {
                tracing::info!(userid = %userid, "login throttled (cluster-wide)");
                return Err(AccountError::LoginThrottled {
                    userid,
                    retry_secs: wait.as_secs().max(1),
                });
            }
            Err(Refused::Busy) => {
                tracing::info!(userid = %userid, "login busy: too many attempts at once (cluster-wide)");
                return Err(AccountError::LoginBusy(userid));
            }
        };
        // A password outside the rules cannot match: no need to hash it. A hashing error
        // drops the attempt uncounted.
        let ok = match passwords::valid_password(password) {
            false => Ok(false),
            true => self.hasher.verify(password.to_string(), phc).await,
        };
        if let Some(hold) = shared {
            hold.end(matches!(ok, Ok(false))).await;
        }
        if !ok? {
            attempt.fail();
            tracing::info!(userid = %userid, "login failed: wrong password");
            return Err(AccountError::WrongPassword);
        }
        drop(attempt);
        let now = now_unix();
        self.purge_now_and_then(now).await;
        let answer = self.issue(&userid, &tokens::family(), now, None).await?;
        tracing::info!(userid = %userid, "user logged in");
        Ok(answer)
    }

    pub async fn refresh(&self, userid: String, refresh_token: &str) -> Result<TokenSet> {
        let refused = || AccountError::RefreshRefused;
        if !tokens::well_formed(refresh_token) {
            return Err(refused());
        }
        let hash = tokens::hash(refresh_token);
        let Some(rec) = self.store.find_token(&hash).await? else {
            return Err(refused());
        };
        if !ct_eq(rec.hash.as_bytes(), hash.as_bytes()) || rec.kind != TokenKind::Refresh {
            return Err(refused());
        }
        match rec.state {
            // Whoever holds a rotated token (thief or victim), the family is compromised.
            TokenState::Used => return Err(self.reused(&rec.userid, &rec.family).await),
            TokenState::Revoked => return Err(refused()),
            TokenState::Active => {}
        }
        let now = now_unix();
        if rec.userid != userid || rec.expires_at <= now {
            return Err(refused());
        }
        let answer = self.issue(&userid, &rec.family, now, Some(&hash)).await?;
        tracing::info!(userid = %userid, "tokens refreshed");
        Ok(answer)
    }

    async fn reused(&self, userid: &str, family: &str) -> AccountError {
        // Revocation is rare: forget every verified token rather than track families here.
        self.verified.clear();
        match self.store.revoke_family(family).await {
            Ok(n) => {
                tracing::warn!(
                    userid = %userid,
                    family = %family,
                    revoked = n,
                    "a rotated refresh token was presented again: every token of its login is revoked"
                );
                if let Some(f) = self.on_revoke.get() {
                    f();
                }
            }
            Err(e) => return AccountError::Store(e),
        }
        AccountError::RefreshReused
    }

    /// Makes and stores a new access and refresh token; with `rotating`, atomically marks
    /// that refresh token used. Returns the Login/Refresh answer.
    async fn issue(
        &self,
        userid: &str,
        family: &str,
        now: i64,
        rotating: Option<&str>,
    ) -> Result<TokenSet> {
        let token = tokens::generate();
        let refresh_token = tokens::generate();
        let new = [
            NewToken {
                hash: tokens::hash(&token),
                userid: userid.to_string(),
                kind: TokenKind::Access,
                family: family.to_string(),
                expires_at: now.saturating_add(self.token_ttl),
            },
            NewToken {
                hash: tokens::hash(&refresh_token),
                userid: userid.to_string(),
                kind: TokenKind::Refresh,
                family: family.to_string(),
                expires_at: now.saturating_add(self.refresh_ttl),
            },
        ];
        match rotating {
            None => self.store.insert_tokens(&new, now).await?,
            Some(used) => {
                if !self.store.rotate(used, &new, now).await? {
                    // Another request exchanged it between our read and this write.
                    return Err(self.reused(userid, family).await);
                }
            }
        }
        Ok(TokenSet {
            token,
            refresh_token,
            expires: self.token_ttl,
            im: Im {
                sdkappid: self.im.sdkappid,
                userid: userid.to_string(),
                usersig: self.usersig(userid, now),
            },
        })
    }

    fn usersig(&self, userid: &str, now: i64) -> String {
        let im = &self.im;
        if im.sdkappid == 0 || im.secret_key.is_empty() {
            return String::new();
        }
        usersig::gen(
            im.secret_key.expose(),
            userid,
            im.sdkappid,
            now,
            im.expire_secs,
        )
    }

    /// Deletes expired tokens, at most every `PURGE_EVERY` seconds, so the table holds live
    /// sessions only. A failure is logged and retried next time; it never fails a Login.
    async fn purge_now_and_then(&self, now: i64) {
        let due = self.next_purge.load(Ordering::Relaxed);
        if now < due
            || self
                .next_purge
                .compare_exchange(due, now + PURGE_EVERY, Ordering::Relaxed, Ordering::Relaxed)
                .is_err()
        {
            return;
        }
        match self.store.purge_expired(now).await {
            Ok(n) if n > 0 => tracing::debug!(deleted = n, "expired tokens purged"),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "purging expired tokens failed"),
        }
    }
}

/// The throttling key of a client address (see `net::addr_key`).
fn throttle_addr(peer: Option<IpAddr>) -> IpAddr {
    peer.map(crate::net::addr_key)
        .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_grouped_by_ipv6_64() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::2".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(throttle_addr(Some(a)), throttle_addr(Some(b)));
        assert_ne!(throttle_addr(Some(a)), throttle_addr(Some(c)));
        let v4: IpAddr = "192.0.2.7".parse().unwrap();
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().unwrap();
        assert_eq!(throttle_addr(Some(mapped)), v4);
        assert_eq!(throttle_addr(Some(v4)), v4);
        assert_eq!(throttle_addr(None), IpAddr::V4(Ipv4Addr::UNSPECIFIED));
    }
}
