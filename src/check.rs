//! `minilvb check`: validates a configuration the way the original product's setup tool
//! did, prints sample signatures, and names the likely cause of each problem.

use crate::config::{AuthMode, Config};
use crate::model::now_unix;
use crate::sign;

struct Report {
    errors: usize,
    warnings: usize,
}

impl Report {
    fn ok(&self, what: &str) {
        println!("  ok    {what}");
    }
    fn warn(&mut self, what: &str, effect: &str) {
        self.warnings += 1;
        println!("  WARN  {what}\n        likely effect: {effect}");
    }
    fn error(&mut self, what: &str, effect: &str) {
        self.errors += 1;
        println!("  ERROR {what}\n        likely effect: {effect}");
    }
}

fn digits(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

/// Runs every check and prints the report; true when there are no errors.
pub async fn run(cfg: &Config, filled: Option<&crate::secrets::Filled>) -> bool {
    // Keys the first start will generate are not missing.
    let pending = crate::secrets::would_generate(cfg);
    let unset = |key: &str, empty: bool| empty && !pending.contains(&key);
    let mut r = Report {
        errors: 0,
        warnings: 0,
    };
    println!("minilvb check");
    if filled.is_some() || !pending.is_empty() {
        println!("generated secrets (the embedded default; values are never printed):");
        let file = crate::secrets::path_for(cfg)
            .map(|p| p.display().to_string())
            .unwrap_or_default();
        for key in filled.map(|f| f.keys.as_slice()).unwrap_or_default() {
            r.ok(&format!("{key} is generated, kept in {file}"));
        }
        for key in &pending {
            r.ok(&format!(
                "{key} is not set: the first start generates it and keeps it in {file}"
            ));
        }
    } else if !crate::secrets::may_generate(cfg) {
        println!("generated secrets: none (production: every secret must be set)");
    }
    println!("live streaming (push and callbacks):");
    let live = &cfg.live;
    let pushes_refused =
        "pushes are refused (wrong bizid or push key: the media server rejects the txSecret)";
    if live.bizid.is_empty() {
        r.ok(&format!(
            "live.bizid is not set: push URLs go to a media server on this machine \
             (rtmp://{}/{}/...)",
            live.push_host(),
            live.app_name
        ));
    } else if digits(&live.bizid) {
        r.ok(&format!("live.bizid = {}", live.bizid));
    } else {
        r.error("live.bizid is not a number", pushes_refused);
    }
    if unset("live.push_key", live.push_key.is_empty()) {
        r.error("live.push_key is not set", pushes_refused);
    } else if live.push_key.is_empty() {
        // Generated on the first start (listed above).
    } else if live.push_key.expose().len() < 16 {
        r.warn(
            "live.push_key is shorter than 16 characters",
            "push URLs are easy to forge",
        );
    } else {
        r.ok("live.push_key is set");
    }
    if unset("live.api_key", live.api_key.is_empty()) {
        r.error("live.api_key is not set", "no recordings appear and rooms never go live from callbacks (every Tencent callback is refused)");
    } else if !live.api_key.is_empty() {
        r.ok("live.api_key is set");
    }
    for (name, host) in [
        ("live.push_host", &live.push_host),
        ("live.play_host", &live.play_host),
    ] {
        if host.is_empty() || host.contains("://") || host.contains('/') {
            r.error(
                &format!("{name} must be a host[:port] without scheme or path"),
                pushes_refused,
            );
        }
    }
    if !(live.http_play_base.starts_with("http://") || live.http_play_base.starts_with("https://"))
    {
        r.error(
            "live.http_play_base must start with http:// or https://",
            "players cannot open FLV/HLS URLs",
        );
    }
    if live.stale_after_secs == 0 {
        r.warn(
            "live.stale_after_secs = 0",
            "a stream that dies without a stop event stays online forever",
        );
    }

    println!("uploads (COS):");
    let cos = &cfg.cos;
    let uploads_fail = "uploads fail (wrong COS appid, bucket or secret: the signature is refused)";
    if digits(&cos.appid) {
        r.ok(&format!("cos.appid = {}", cos.appid));
    } else {
        r.error("cos.appid is missing or not a number", uploads_fail);
    }
    let bucket_ok = !cos.bucket.is_empty()
        && cos
            .bucket
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if bucket_ok {
        r.ok(&format!("cos.bucket = {}", cos.bucket));
    } else {
        r.error(
            "cos.bucket is missing or has characters other than a-z, 0-9 and '-'",
            uploads_fail,
        );
    }
    if cos.secret_id.is_empty() {
        r.error("cos.secret_id is not set", uploads_fail);
    } else if !cos.secret_id.starts_with("AKID") {
        r.warn("cos.secret_id does not start with AKID", uploads_fail);
    }
    if cos.secret_key.is_empty() {
        r.error("cos.secret_key is not set", uploads_fail);
    } else if cos.secret_key.expose().len() != 32 {
        r.warn("cos.secret_key is not 32 characters long", uploads_fail);
    }

    println!("instant messaging (UserSig):");
    let im = &cfg.im;
    if im.sdkappid == 0 || im.secret_key.is_empty() {
        r.warn(
            "im.sdkappid or im.secret_key is not set",
            "Login answers an empty UserSig: the app cannot join IM groups",
        );
    } else {
        r.ok(&format!("im.sdkappid = {}", im.sdkappid));
    }

    println!("co-hosting, short videos and moderation:");
    if unset("live.play_key", live.play_key.is_empty()) {
        r.warn(
            "live.play_key is not set",
            "co-hosts get no signed play URLs (RequestPlayUrlWithSignForLinkMic answers 500)",
        );
    } else if !live.play_key.is_empty() {
        // (A play key equal to the push key is refused when the configuration loads.)
        r.ok("live.play_key is set");
    }
    if live.appid.is_empty() {
        r.warn(
            "live.appid is not set",
            "stream mixing (MergeVideoStream) is refused and banned VJs' Tencent streams are not cut",
        );
    } else {
        r.ok(&format!("live.appid = {}", live.appid));
    }
    if cfg.vod.secret_id.is_empty() || cfg.vod.secret_key.is_empty() {
        r.warn(
            "vod.secret_id or vod.secret_key is not set",
            "the apps cannot upload short videos (GetVodSignatureV2 answers 500)",
        );
    } else {
        r.ok("vod.secret_id and vod.secret_key are set");
    }
    if unset("admin.token", cfg.admin.token.is_empty()) {
        r.warn(
            "admin.token is not set",
            "StopLVB, ForbidLive and the dashboard's operator actions are off",
        );
    } else if !cfg.admin.token.is_empty() {
        r.ok("admin.token is set");
    }
    if cfg.media.nginx_control_url.is_empty() {
        r.ok("media.nginx_control_url is not set: streams on nginx-rtmp end on their own");
    } else {
        r.ok(&format!(
            "media.nginx_control_url = {}",
            cfg.media.nginx_control_url
        ));
    }

    println!("access:");
    // Either way the operator reads what it means for the unmodified apps.
    if cfg.auth.mode == AuthMode::Off {
        r.warn(
            "auth.mode = \"off\"",
            "any client may act as any userid (legacy open protocol)",
        );
    } else {
        r.ok("auth.mode = \"required\"");
    }
    println!("        {}", cfg.auth.mode.meaning());

    println!("connections:");
    let fds = crate::http::connections::raise_fd_limit();
    let (max, warnings) = crate::http::connections::budget(cfg, fds);
    for w in &warnings {
        r.warn(
            w,
            "clients are refused (503) before the configured bound is reached",
        );
    }
    if warnings.is_empty() {
        r.ok(&format!(
            "up to {max} client connections fit in the open-file limit ({})",
            fds.map_or("unknown".into(), |n| n.to_string())
        ));
    }
    if cfg.server.trusted_proxies.is_empty() {
        r.ok("no trusted proxies: each client is its TCP address (set server.trusted_proxies behind a reverse proxy)");
    } else {
        r.ok(&format!(
            "client addresses behind {} trusted prox(ies) come from {:?}",
            cfg.server.trusted_proxies.len(),
            cfg.server.proxy_header
        ));
    }

    println!("database:");
    match crate::store::open(&cfg.database).await {
        Err(e) => r.error(
            &format!("cannot open the database: {e}"),
            "nothing can be stored; the server will not start",
        ),
        Ok(store) => match store.ping().await {
            Err(e) => r.error(
                &format!("database does not answer: {e}"),
                "the server will not start",
            ),
            Ok(()) => {
                r.ok("database reachable");
                match store.migration_status().await {
                    Ok((applied, known)) => {
                        let missing: Vec<_> =
                            known.iter().filter(|v| !applied.contains(v)).collect();
                        if missing.is_empty() {
                            r.ok(&format!("schema migrated (versions {known:?})"));
                        } else if cfg.database.migrate_on_start {
                            r.warn(
                                &format!("migrations {missing:?} are pending"),
                                "`minilvb serve` applies them at start (database.migrate_on_start)",
                            );
                        } else {
                            r.error(
                                &format!("migrations {missing:?} are pending"),
                                "run `minilvb migrate` before serving",
                            );
                        }
                    }
                    Err(e) => r.error(
                        &format!("cannot read the migration table: {e}"),
                        "run `minilvb migrate`",
                    ),
                }
            }
        },
    }

    println!("samples (signed with the keys above):");
    let now = now_unix().max(0) as u64;
    if !live.push_key.is_empty() {
        let stream = sign::push::stream_name(&live.bizid, "check_user");
        let url = crate::urls::Urls::new(live).push(
            &stream,
            now + live.url_validity_secs,
            live.push_key.expose(),
        );
        println!("  push URL for userid check_user: {url}");
    }
    if !cos.secret_key.is_empty() {
        let s = sign::cos::sign(
            &cos.appid,
            &cos.bucket,
            &cos.secret_id,
            cos.secret_key.expose(),
            now,
            cos.validity_secs,
        );
        match sign::cos::verify(cos.secret_key.expose(), &s, now) {
            Ok(()) => println!("  COS signature: {s}"),
            Err(e) => r.error(
                &format!("the COS signature does not verify: {e}"),
                uploads_fail,
            ),
        }
    }
    if im.sdkappid != 0 && !im.secret_key.is_empty() {
        let sig = sign::usersig::gen(
            im.secret_key.expose(),
            "check_user",
            im.sdkappid,
            now as i64,
            im.expire_secs,
        );
        match sign::usersig::verify(im.secret_key.expose(), &sig, now as i64) {
            Ok(_) => println!("  UserSig for check_user: {sig}"),
            Err(e) => r.error(
                &format!("the UserSig does not verify: {e}"),
                "the app cannot log in to IM",
            ),
        }
    }
    println!("{} error(s), {} warning(s)", r.errors, r.warnings);
    r.errors == 0
}
