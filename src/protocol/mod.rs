//! The wire protocol: envelope, error codes, typed requests and answers.

pub mod envelope;
pub mod error;
pub mod fields;
pub mod openapi;
pub mod request;
pub mod schema;
pub mod types;

pub use error::{ApiError, Code};
pub use request::Request;
