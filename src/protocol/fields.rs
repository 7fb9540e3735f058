//! Reading fields out of a request object with exact, field-naming error messages.
//! Numbers may arrive as JSON numbers or numeric strings; `null` is the same as absent.

use super::error::ApiError;
use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;
use std::borrow::Cow;

/// A JSON object's members, borrowed from the body. Each value stays raw JSON text until a
/// field is asked for, so a request allocates only for the fields it keeps.
pub struct Fields<'a> {
    members: Vec<(Cow<'a, str>, &'a RawValue)>,
}

/// Why a body could not be read as an object.
pub enum ObjectError {
    /// Not JSON at all (line, column).
    Syntax(usize, usize),
    /// JSON, but not an object.
    NotObject,
}

impl<'a> Fields<'a> {
    /// Reads a JSON object from `text`.
    pub fn parse(text: &'a [u8]) -> Result<Fields<'a>, ObjectError> {
        serde_json::from_slice(text).map_err(|e| match e.classify() {
            serde_json::error::Category::Data => ObjectError::NotObject,
            _ => ObjectError::Syntax(e.line(), e.column()),
        })
    }

    /// The raw value of a member; `null` is the same as absent, and of repeated names the
    /// last one counts (as in a JSON map).
    fn get(&self, name: &str) -> Option<&'a str> {
        let (_, v) = self.members.iter().rev().find(|(k, _)| k == name)?;
        let v = v.get();
        (v != "null").then_some(v)
    }

    /// A string member, decoded; `None` when the member is not a string.
    pub fn str(&self, name: &str) -> Option<Cow<'a, str>> {
        self.get(name).and_then(decode_str)
    }

    pub fn has(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// A required, non-empty string of at most `max` bytes.
    pub fn string(&self, name: &str, max: usize) -> Result<String, ApiError> {
        match self.opt_string(name, max)? {
            None => Err(ApiError::param(format!("missing required field '{name}'"))),
            Some(s) if s.is_empty() => {
                Err(ApiError::param(format!("field '{name}' must not be empty")))
            }
            Some(s) => Ok(s),
        }
    }

    /// An optional string of at most `max` bytes. Legacy clients send numeric ids as JSON
    /// numbers, so an integer is read as its decimal text.
    pub fn opt_string(&self, name: &str, max: usize) -> Result<Option<String>, ApiError> {
        let s = match self.get(name) {
            None => return Ok(None),
            Some(v) => match decode_str(v) {
                Some(s) => s.into_owned(),
                None => match decode_int(v) {
                    Some(n) => n,
                    None => {
                        return Err(ApiError::param(format!("field '{name}' must be a string")))
                    }
                },
            },
        };
        if s.len() > max {
            return Err(ApiError::param(format!(
                "field '{name}' is too long: {} bytes, at most {max} allowed",
                s.len()
            )));
        }
        Ok(Some(s))
    }

    /// An optional integer: a JSON integer or a string of decimal digits.
    pub fn opt_int(&self, name: &str) -> Result<Option<i64>, ApiError> {
        let bad = || ApiError::param(format!("field '{name}' must be an integer"));
        let Some(v) = self.get(name) else {
            return Ok(None);
        };
        if let Some(s) = decode_str(v) {
            let t = s.trim();
            if t.is_empty() || t.len() > 20 {
                return Err(bad());
            }
            return t.parse::<i64>().map(Some).map_err(|_| bad());
        }
        // A JSON integer that fits; floats and exponents are not integers here.
        if is_json_integer(v) {
            return v.parse::<i64>().map(Some).map_err(|_| bad());
        }
        Err(bad())
    }

    pub fn int(&self, name: &str) -> Result<i64, ApiError> {
        self.opt_int(name)?
            .ok_or_else(|| ApiError::param(format!("missing required field '{name}'")))
    }

    /// A required integer that must be one of `allowed`.
    pub fn choice(&self, name: &str, allowed: &[i64]) -> Result<i64, ApiError> {
        let v = self.int(name)?;
        check_choice(name, v, allowed)
    }

    pub fn opt_choice(&self, name: &str, allowed: &[i64]) -> Result<Option<i64>, ApiError> {
        match self.opt_int(name)? {
            None => Ok(None),
            Some(v) => check_choice(name, v, allowed).map(Some),
        }
    }

    /// A required JSON object, as its JSON text: given as an object, or as a string that
    /// holds one (clients send either).
    pub fn object_text(&self, name: &str) -> Result<String, ApiError> {
        let bad = || ApiError::param(format!("field '{name}' must be a JSON object"));
        let text = match self.get(name) {
            None => return Err(ApiError::param(format!("missing required field '{name}'"))),
            Some(v) if v.starts_with('{') => v.to_string(),
            Some(v) => decode_str(v).ok_or_else(bad)?.into_owned(),
        };
        match serde_json::from_str::<&RawValue>(&text) {
            Ok(raw) if raw.get().starts_with('{') => Ok(raw.get().to_string()),
            _ => Err(bad()),
        }
    }

    pub fn opt_object(&self, name: &str) -> Result<Option<Fields<'a>>, ApiError> {
        match self.get(name) {
            None => Ok(None),
            Some(v) if v.starts_with('{') => Fields::parse(v.as_bytes())
                .map(Some)
                .map_err(|_| ApiError::param(format!("field '{name}' must be an object"))),
            Some(_) => Err(ApiError::param(format!("field '{name}' must be an object"))),
        }
    }
}

fn check_choice(name: &str, v: i64, allowed: &[i64]) -> Result<i64, ApiError> {
    if allowed.contains(&v) {
        Ok(v)
    } else {
        let list: Vec<String> = allowed.iter().map(|a| a.to_string()).collect();
        Err(ApiError::param(format!(
            "field '{name}' must be one of {}, got {v}",
            list.join(", ")
        )))
    }
}

/// A JSON string's text; borrowed unless it has escapes.
fn decode_str(raw: &str) -> Option<Cow<'_, str>> {
    let inner = raw.strip_prefix('"')?.strip_suffix('"')?;
    if !inner.contains('\\') {
        return Some(Cow::Borrowed(inner));
    }
    serde_json::from_str::<String>(raw).ok().map(Cow::Owned)
}

/// Whether a raw JSON value is written as an integer (no fraction, no exponent); whether it
/// fits is for the parse to say.
fn is_json_integer(raw: &str) -> bool {
    raw.bytes().all(|b| b == b'-' || b.is_ascii_digit())
}

/// A JSON integer (signed or unsigned 64-bit) as decimal text.
fn decode_int(raw: &str) -> Option<String> {
    if !is_json_integer(raw) {
        return None;
    }
    raw.parse::<i64>()
        .map(|n| n.to_string())
        .or_else(|_| raw.parse::<u64>().map(|n| n.to_string()))
        .ok()
}

impl<'de> Deserialize<'de> for Fields<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Members;
        impl<'de> Visitor<'de> for Members {
            type Value = Fields<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<Fields<'de>, M::Error> {
                let mut members = Vec::with_capacity(map.size_hint().unwrap_or(8).min(32));
                while let Some(Key(k)) = map.next_key()? {
                    members.push((k, map.next_value::<&RawValue>()?));
                }
                Ok(Fields { members })
            }
        }
        d.deserialize_map(Members)
    }
}

/// An object key, borrowed from the body unless it has escapes.
struct Key<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct K;
        impl<'de> Visitor<'de> for K {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(v.to_string())))
            }
        }
        d.deserialize_str(K)
    }
}
