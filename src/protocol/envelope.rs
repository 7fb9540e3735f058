//! The `{"returnValue","returnMsg","returnData"}` envelope, written by hand so that list
//! items that were serialized once (and cached) are spliced in without re-encoding.

use super::error::ApiError;
use actix_web::http::StatusCode;
use actix_web::HttpResponse;

pub const OK_MSG: &str = "return successfully!";

/// A success body: `returnData` as already-encoded JSON.
pub fn ok_raw(data_json: &str) -> HttpResponse {
    let mut body = String::with_capacity(data_json.len() + 64);
    body.push_str("{\"returnValue\":0,\"returnMsg\":\"");
    body.push_str(OK_MSG);
    body.push_str("\",\"returnData\":");
    body.push_str(data_json);
    body.push('}');
    json_response(StatusCode::OK, body)
}

/// An error body, its fields in the same order as a success's.
pub fn error_body(err: &ApiError) -> String {
    let msg = serde_json::to_string(&err.msg).unwrap_or_else(|_| "\"\"".into());
    format!(
        "{{\"returnValue\":{},\"returnMsg\":{msg},\"returnData\":{{}}}}",
        err.code.value()
    )
}

pub fn error_response(status: StatusCode, err: &ApiError) -> HttpResponse {
    json_response(status, error_body(err))
}

pub fn error(err: &ApiError) -> HttpResponse {
    error_response(StatusCode::OK, err)
}

fn json_response(status: StatusCode, body: String) -> HttpResponse {
    HttpResponse::build(status)
        .content_type("application/json")
        .body(body)
}
