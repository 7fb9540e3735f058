//! The file a self-hosted media server (nginx-rtmp `record_done`, SRS `on_dvr`) says it
//! recorded. Its name becomes a recording's id and the last segment of its play URL, so it
//! must be a plain file name of a known media type: anything else (a directory, `..`, a bare
//! extension whose id would be the live room's own key `""`) is refused.

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

/// What nginx-rtmp (flv) and SRS (flv, mp4; m3u8/ts for HLS) write.
const EXTENSIONS: [&str; 4] = ["flv", "mp4", "m3u8", "ts"];
/// Bytes before the extension: the id is at most this long, as a stored fileid must be.
pub const MAX_STEM: usize = 128;
/// Bound on the reported path, before it is even looked at (or logged).
pub const MAX_PATH: usize = 1024;

/// A path segment keeps only RFC 3986's unreserved characters as they are.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedFile {
    name: String,
    id: String,
    hls: bool,
}

impl RecordedFile {
    /// Checks the last segment of `path`. The error completes "field 'path' …".
    pub fn parse(path: &str) -> Result<RecordedFile, String> {
        if path.is_empty() {
            return Err("is missing or empty".into());
        }
        if path.len() > MAX_PATH {
            return Err(format!("is longer than {MAX_PATH} bytes"));
        }
        let name = path.rsplit(['/', '\\']).next().unwrap_or(path);
        if name.is_empty() {
            return Err("names a directory, not a file".into());
        }
        if name.chars().any(char::is_control) {
            return Err("has control characters in its file name".into());
        }
        if name.starts_with('.') {
            return Err(format!(
                "must name a file, not '{name}' (a name starting with '.')"
            ));
        }
        let expected = || {
            format!(
                "expected {}",
                EXTENSIONS.map(|e| format!(".{e}")).join(", ")
            )
        };
        let Some((stem, ext)) = name.rsplit_once('.') else {
            return Err(format!("names a file without extension; {}", expected()));
        };
        let ext = ext.to_ascii_lowercase();
        if !EXTENSIONS.contains(&ext.as_str()) {
            return Err(format!("names a '.{ext}' file; {}", expected()));
        }
        if stem.len() > MAX_STEM {
            return Err(format!(
                "names a file longer than {MAX_STEM} bytes before its extension"
            ));
        }
        // The id leaves out the extension, so the flv/mp4 and the m3u8 of one broadcast
        // fill one recording.
        let id = stem
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        Ok(RecordedFile {
            name: name.to_string(),
            id,
            hls: ext == "m3u8",
        })
    }

    /// The recording's id: the name without its extension, characters outside
    /// `[A-Za-z0-9_-]` replaced by `_`. Never empty.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// An HLS playlist (fills `hls_play_url`), else a file for `playurl`.
    pub fn is_hls(&self) -> bool {
        self.hls
    }

    /// `{base}/{name}`, the name percent-encoded as one path segment.
    pub fn url(&self, base: &str) -> String {
        format!(
            "{}/{}",
            base.trim_end_matches('/'),
            utf8_percent_encode(&self.name, SEGMENT)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_names_of_known_types() {
        let f = RecordedFile::parse("/var/rec/2519_vj-1796000000.flv").unwrap();
        assert_eq!(f.id(), "2519_vj-1796000000");
        assert!(!f.is_hls());
        assert_eq!(
            f.url("http://h/rec/"),
            "http://h/rec/2519_vj-1796000000.flv"
        );
        let f = RecordedFile::parse("./objs/live/x.1.M3U8").unwrap();
        assert_eq!((f.id(), f.is_hls()), ("x_1", true));
        for ok in ["a.mp4", "a.ts", "C:\\rec\\a.flv"] {
            assert!(RecordedFile::parse(ok).is_ok(), "{ok}");
        }
        let stem = "a".repeat(MAX_STEM);
        assert_eq!(
            RecordedFile::parse(&format!("/r/{stem}.flv")).unwrap().id(),
            stem
        );
    }

    #[test]
    fn names_are_one_escaped_segment() {
        let f = RecordedFile::parse("/r/a b?x=1#.flv").unwrap();
        assert_eq!(f.id(), "a_b_x_1_");
        assert_eq!(f.url("http://h"), "http://h/a%20b%3Fx%3D1%23.flv");
        let f = RecordedFile::parse("/r/caf\u{e9}%2F~.mp4").unwrap();
        assert_eq!(f.url("http://h"), "http://h/caf%C3%A9%252F~.mp4");
    }

    #[test]
    fn everything_else_is_refused() {
        let long = format!("/r/{}.flv", "a".repeat(MAX_STEM + 1));
        let huge = "/".repeat(MAX_PATH + 1);
        for bad in [
            "",
            "/var/rec/",
            "/var/rec/.flv",
            "/var/rec/..",
            "/var/rec/.",
            "..",
            "/var/rec/.hidden.flv",
            "/var/rec/noext",
            "/var/rec/x.txt",
            "/var/rec/x.flv.part",
            "/var/rec/a\nb.flv",
            &long,
            &huge,
        ] {
            assert!(RecordedFile::parse(bad).is_err(), "{bad:?}");
        }
    }
}
