//! Reading fields out of a request object with exact, field-naming error messages.
//! Numbers may arrive as JSON numbers or numeric strings; `null` is the same as absent.

use super::error::ApiError;
use serde_json::{Map, Value};

pub struct Fields<'a> {
    map: &'a Map<String, Value>,
}

impl<'a> Fields<'a> {
    pub fn new(map: &'a Map<String, Value>) -> Self {
        Fields { map }
    }

    fn get(&self, name: &str) -> Option<&'a Value> {
        match self.map.get(name) {
            None | Some(Value::Null) => None,
            Some(v) => Some(v),
        }
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
            Some(Value::String(s)) => s.clone(),
            Some(Value::Number(n)) if n.is_i64() || n.is_u64() => n.to_string(),
            Some(_) => return Err(ApiError::param(format!("field '{name}' must be a string"))),
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
        match self.get(name) {
            None => Ok(None),
            Some(Value::Number(n)) => n.as_i64().map(Some).ok_or_else(bad),
            Some(Value::String(s)) => {
                let t = s.trim();
                if t.is_empty() || t.len() > 20 {
                    return Err(bad());
                }
                t.parse::<i64>().map(Some).map_err(|_| bad())
            }
            Some(_) => Err(bad()),
        }
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

    pub fn opt_object(&self, name: &str) -> Result<Option<Fields<'a>>, ApiError> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::Object(m)) => Ok(Some(Fields::new(m))),
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
