//! Push and play URLs of a stream, from the configured hosts and app name.

use crate::config::LiveConfig;
use crate::sign;

/// Hotlink protection of a stream until `expiry`: `(txSecret, txTime)`.
fn signature(stream: &str, expiry: u64, key: &str) -> (String, String) {
    let tx_time = sign::push::tx_time(expiry);
    (sign::push::tx_secret(key, stream, &tx_time), tx_time)
}

pub struct Urls<'a> {
    cfg: &'a LiveConfig,
}

impl<'a> Urls<'a> {
    pub fn new(cfg: &'a LiveConfig) -> Self {
        Urls { cfg }
    }

    /// `rtmp://{push_host}/{app}/{stream}?[bizid=..&]txSecret=..&txTime=..[&{push_params}]`
    /// (no `bizid` for a self-hosted media server).
    pub fn push(&self, stream: &str, expiry: u64, key: &str) -> String {
        let (secret, tx_time) = signature(stream, expiry, key);
        let mut url = format!(
            "rtmp://{}/{}/{}?{}txSecret={}&txTime={}",
            self.cfg.push_host(),
            self.cfg.app_name,
            stream,
            self.bizid_param(),
            secret,
            tx_time
        );
        if !self.cfg.push_params.is_empty() {
            url.push('&');
            url.push_str(&self.cfg.push_params);
        }
        url
    }

    /// `bizid=..&`, or nothing without a bizid.
    fn bizid_param(&self) -> String {
        if self.cfg.bizid.is_empty() {
            String::new()
        } else {
            format!("bizid={}&", self.cfg.bizid)
        }
    }

    /// A play URL signed for hotlink protection: `{base}?txSecret=..&txTime=..[&bizid=..]`.
    pub fn signed_play(&self, base: &str, stream: &str, expiry: u64, key: &str) -> String {
        let (secret, tx_time) = signature(stream, expiry, key);
        let mut url = format!("{base}?txSecret={secret}&txTime={tx_time}");
        if !self.cfg.bizid.is_empty() {
            url.push_str("&bizid=");
            url.push_str(&self.cfg.bizid);
        }
        url
    }

    /// A live room's `playurl`: HTTP-FLV or RTMP, as `live.live_playurl` says.
    pub fn live_play(&self, stream: &str) -> String {
        if self.cfg.plays_flv() {
            self.flv(stream)
        } else {
            self.rtmp(stream)
        }
    }

    pub fn rtmp(&self, stream: &str) -> String {
        format!(
            "rtmp://{}/{}/{}",
            self.cfg.play_host(),
            self.cfg.app_name,
            stream
        )
    }

    pub fn flv(&self, stream: &str) -> String {
        format!(
            "{}/{}/{}.flv",
            self.cfg.http_play_base(),
            self.cfg.app_name,
            stream
        )
    }

    pub fn hls(&self, stream: &str) -> String {
        format!(
            "{}/{}/{}.m3u8",
            self.cfg.http_play_base(),
            self.cfg.app_name,
            stream
        )
    }
}
