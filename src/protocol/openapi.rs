//! The protocol as an OpenAPI 3.1 document (`GET /openapi.json`), built with utoipa from
//! the types the server answers with (`#[derive(ToSchema)]`) and from `schema`, the field
//! table the request parser is held to. Nothing here is written by hand twice.

use super::request::Action;
use super::schema::{self, Field, Kind};
use super::types;
use super::Code;
use crate::config::LimitsConfig;
use utoipa::openapi::path::{OperationBuilder, ParameterBuilder, ParameterIn};
use utoipa::openapi::request_body::RequestBodyBuilder;
use utoipa::openapi::schema::{
    AnyOfBuilder, ArrayBuilder, ObjectBuilder, OneOfBuilder, Schema, Type,
};
use utoipa::openapi::{
    ComponentsBuilder, ContentBuilder, HttpMethod, InfoBuilder, OpenApi, OpenApiBuilder, PathItem,
    PathsBuilder, Ref, RefOr, Required, ResponseBuilder,
};

/// A composed schema as a field's schema.
trait IntoSchema {
    fn into_schema(self) -> RefOr<Schema>;
}

impl IntoSchema for utoipa::openapi::schema::AnyOf {
    fn into_schema(self) -> RefOr<Schema> {
        RefOr::T(Schema::AnyOf(self))
    }
}

fn string() -> ObjectBuilder {
    ObjectBuilder::new().schema_type(Type::String)
}

fn object() -> ObjectBuilder {
    ObjectBuilder::new().schema_type(Type::Object)
}

fn digits() -> ObjectBuilder {
    string().pattern(Some("^-?[0-9]{1,19}$"))
}

/// The schema of one field as the parser reads it: numbers may come as strings.
fn field_schema(f: &Field) -> RefOr<Schema> {
    let described =
        |b: ObjectBuilder| -> RefOr<Schema> { b.description(Some(f.doc)).build().into() };
    match f.kind {
        Kind::Str(max) => AnyOfBuilder::new()
            .item(described(string().max_length(Some(max))))
            .item(described(ObjectBuilder::new().schema_type(Type::Integer)))
            .description(Some(format!("{} (at most {max} bytes)", f.doc)))
            .build()
            .into_schema(),
        Kind::Int => AnyOfBuilder::new()
            .item(described(ObjectBuilder::new().schema_type(Type::Integer)))
            .item(described(digits()))
            .description(Some(f.doc))
            .build()
            .into_schema(),
        Kind::Choice(values) => AnyOfBuilder::new()
            .item(described(
                ObjectBuilder::new()
                    .schema_type(Type::Integer)
                    .enum_values(Some(values.iter().copied())),
            ))
            .item(described(
                string().enum_values(Some(values.iter().map(|v| v.to_string()))),
            ))
            .description(Some(f.doc))
            .build()
            .into_schema(),
        Kind::UserInfo => RefOr::Ref(Ref::from_schema_name("UserInfo")),
        Kind::JsonObject => AnyOfBuilder::new()
            .item(described(object()))
            .item(described(string()))
            .description(Some(f.doc))
            .build()
            .into_schema(),
    }
}

fn codes_text(codes: &[Code]) -> String {
    let names: Vec<String> = codes.iter().map(|c| c.value().to_string()).collect();
    names.join(", ")
}

/// One Action's body: `Action` (its name), its fields, and the optional `token`.
fn request_schema(action: Action, l: &LimitsConfig) -> Schema {
    let mut b = object()
        .title(Some(action.name()))
        .description(Some(format!(
            "{}. Answers returnValue 0, or one of: {}.",
            schema::summary(action),
            codes_text(&schema::codes(action))
        )))
        .property(
            "Action",
            string().enum_values(Some([action.name()])).build(),
        )
        .required("Action")
        .property(
            "token",
            string()
                .max_length(Some(schema::MAX_TOKEN))
                .description(Some(
                    "the bearer token, when not sent as Authorization: Bearer",
                ))
                .build(),
        );
    for f in schema::fields(action, l) {
        b = b.property(f.name, field_schema(&f));
        if f.required {
            b = b.required(f.name);
        }
    }
    b.build().into()
}

/// `returnData` of each answer, by schema name.
fn answers() -> Vec<&'static str> {
    vec![
        "PushAddr",
        "PusherList",
        "PusherInfo",
        "MemberList",
        "CosSign",
        "TokenSet",
        "LinkMicAddr",
        "SignedPlayUrl",
        "MixAnswer",
        "VodSignature",
        "ModerationOutcome",
    ]
}

fn envelope() -> Schema {
    let mut data = AnyOfBuilder::new().description(Some(
        "The answer: an Action's result, or {} (every error, and Actions without a result)",
    ));
    data = data.item(object().max_properties(Some(0)).build());
    for name in answers() {
        data = data.item(Ref::from_schema_name(name));
    }
    let codes: Vec<i32> = [
        Code::Ok,
        Code::TooManyRequests,
        Code::Verification,
        Code::Storage,
        Code::UpdateFailed,
        Code::InvalidParam,
        Code::BadUserName,
        Code::BadPassword,
        Code::UserExists,
        Code::NoSuchUser,
        Code::WrongPassword,
    ]
    .iter()
    .map(|c| c.value())
    .collect();
    object()
        .description(Some(
            "Every answer of POST /interface.php, success or failure",
        ))
        .property(
            "returnValue",
            ObjectBuilder::new()
                .schema_type(Type::Integer)
                .enum_values(Some(codes))
                .description(Some(
                    "0 success, 429 throttled, 498 verification, 500 storage or not configured, \
                     601 update target missing, 602 invalid parameter, 610-612 Register, \
                     620-621 Login",
                ))
                .build(),
        )
        .required("returnValue")
        .property("returnMsg", string().build())
        .required("returnMsg")
        .property("returnData", Schema::AnyOf(data.build()))
        .required("returnData")
        .build()
        .into()
}

fn json_content(schema: impl Into<RefOr<Schema>>) -> utoipa::openapi::Content {
    ContentBuilder::new().schema(Some(schema)).build()
}

fn envelope_response(description: &str) -> utoipa::openapi::Response {
    ResponseBuilder::new()
        .description(description)
        .content(
            "application/json",
            json_content(Ref::from_schema_name("Envelope")),
        )
        .build()
}

fn interface_operation(l: &LimitsConfig) -> utoipa::openapi::path::Operation {
    let mut bodies = OneOfBuilder::new().description(Some(
        "One of the Actions, named by its `Action` field. The apps also send bodies as \
         text/plain; the server reads any content type as JSON.",
    ));
    for action in Action::all() {
        bodies = bodies.item(Ref::from_schema_name(format!("Action{}", action.name())));
    }
    OperationBuilder::new()
        .operation_id(Some("interface"))
        .summary(Some("Every Action of the protocol"))
        .description(Some(format!(
            "A JSON object with `Action`. Always HTTP 200 with the envelope (errors too: \
             returnValue names the problem and returnMsg the field), except a body over \
             {} bytes (413) or too slow (408).",
            l.max_body_bytes
        )))
        .request_body(Some(
            RequestBodyBuilder::new()
                .content(
                    "application/json",
                    json_content(Schema::OneOf(bodies.build())),
                )
                .required(Some(Required::True))
                .build(),
        ))
        .response("200", envelope_response("The envelope"))
        .response("408", envelope_response("The body did not arrive in time"))
        .response("413", envelope_response("The body is too large"))
        .build()
}

fn simple_get(id: &str, summary: &str, schema: impl Into<RefOr<Schema>>) -> PathItem {
    PathItem::new(
        HttpMethod::Get,
        OperationBuilder::new()
            .operation_id(Some(id))
            .summary(Some(summary))
            .response(
                "200",
                ResponseBuilder::new()
                    .description(summary)
                    .content("application/json", json_content(schema))
                    .build(),
            )
            .build(),
    )
}

fn callback(id: &str, summary: &str, content_type: &str) -> PathItem {
    let reply = object()
        .property(
            "code",
            ObjectBuilder::new().schema_type(Type::Integer).build(),
        )
        .property("message", string().build())
        .build();
    let mut op = OperationBuilder::new()
        .operation_id(Some(id))
        .summary(Some(summary))
        .request_body(Some(
            RequestBodyBuilder::new()
                .content(content_type, json_content(object().build()))
                .build(),
        ));
    for (status, what) in [
        ("200", "Accepted (nginx-rtmp and SRS: admitted)"),
        ("400", "Malformed"),
        (
            "403",
            "Not signed, not from a trusted address, or a refused publish",
        ),
        ("500", "Storage failed: the media server retries"),
    ] {
        op = op.response(
            status,
            ResponseBuilder::new()
                .description(what)
                .content("application/json", json_content(reply.clone()))
                .build(),
        );
    }
    PathItem::new(HttpMethod::Post, op.build())
}

/// The WebSocket channel's events, as schemas (OpenAPI has no WebSocket operations: the
/// upgrade is described, the frames are components).
fn ws_events() -> Vec<(&'static str, Schema)> {
    let event = |name: &str| string().enum_values(Some([name.to_string()])).build();
    let int = || ObjectBuilder::new().schema_type(Type::Integer).build();
    let members = ArrayBuilder::new()
        .items(Ref::from_schema_name("MemberInfo"))
        .build();
    vec![
        (
            "WsSnapshot",
            object()
                .description(Some("First frame: the room now"))
                .property("event", event("snapshot"))
                .property("status", string().build())
                .property("viewercount", int())
                .property("likecount", int())
                .property("members", members.clone())
                .required("event")
                .build()
                .into(),
        ),
        (
            "WsMembers",
            object()
                .description(Some("Members who entered or left (coalesced)"))
                .property(
                    "event",
                    string()
                        .enum_values(Some(["member_enter", "member_quit"]))
                        .build(),
                )
                .property("members", members)
                .property(
                    "truncated",
                    ObjectBuilder::new().schema_type(Type::Boolean).build(),
                )
                .required("event")
                .build()
                .into(),
        ),
        (
            "WsCount",
            object()
                .description(Some("Counters, at most one per ws.coalesce_ms"))
                .property("event", event("count"))
                .property("viewercount", int())
                .property("likecount", int())
                .required("event")
                .build()
                .into(),
        ),
        (
            "WsStatus",
            object()
                .description(Some("The broadcast went online or offline"))
                .property("event", event("status"))
                .property("status", string().build())
                .required("event")
                .build()
                .into(),
        ),
        (
            "WsClosed",
            object()
                .description(Some("A new broadcast replaced this one; the socket closes"))
                .property("event", event("closed"))
                .required("event")
                .build()
                .into(),
        ),
        (
            "WsClientFrame",
            object()
                .description(Some(
                    "What a client may send: {\"type\":\"like\"} or {\"type\":\"ping\"}",
                ))
                .property("type", string().enum_values(Some(["like", "ping"])).build())
                .property("token", string().build())
                .required("type")
                .build()
                .into(),
        ),
    ]
}

/// The whole document for a server with these limits.
pub fn document(l: &LimitsConfig) -> OpenApi {
    let mut components = ComponentsBuilder::new()
        .schema("Envelope", envelope())
        .schema_from::<types::PushAddr>()
        .schema_from::<types::PusherList>()
        .schema_from::<types::PusherInfo>()
        .schema_from::<types::UserInfo>()
        .schema_from::<types::MemberList>()
        .schema_from::<types::MemberInfo>()
        .schema_from::<types::CosSign>()
        .schema_from::<types::TokenSet>()
        .schema_from::<types::Im>()
        .schema_from::<types::LinkMicAddr>()
        .schema_from::<types::SignedPlayUrl>()
        .schema_from::<types::MixAnswer>()
        .schema_from::<types::VodSignature>()
        .schema_from::<types::ModerationOutcome>();
    for action in Action::all() {
        components = components.schema(
            format!("Action{}", action.name()),
            request_schema(action, l),
        );
    }
    for (name, s) in ws_events() {
        components = components.schema(name, s);
    }
    let health = object()
        .property("status", string().build())
        .required("status")
        .build();
    let ws = PathItem::new(
        HttpMethod::Get,
        OperationBuilder::new()
            .operation_id(Some("room_ws"))
            .summary(Some("The realtime room channel (WebSocket)"))
            .description(Some(
                "Upgrades to a WebSocket. The server sends WsSnapshot first, then WsMembers, \
                 WsCount, WsStatus and WsClosed frames; a client sends WsClientFrame.",
            ))
            .parameter(
                ParameterBuilder::new()
                    .name("liveuserid")
                    .parameter_in(ParameterIn::Path)
                    .required(Required::True)
                    .schema(Some(string().build())),
            )
            .response(
                "101",
                ResponseBuilder::new()
                    .description("Switching to the WebSocket")
                    .build(),
            )
            .build(),
    );
    let paths = PathsBuilder::new()
        .path(
            "/interface.php",
            PathItem::new(HttpMethod::Post, interface_operation(l)),
        )
        .path(
            "/healthz",
            simple_get("healthz", "Liveness: no work done", health.clone()),
        )
        .path(
            "/readyz",
            PathItem::new(
                HttpMethod::Get,
                OperationBuilder::new()
                    .operation_id(Some("readyz"))
                    .summary(Some(
                        "Readiness: the database answers and snapshots succeed",
                    ))
                    .response(
                        "200",
                        ResponseBuilder::new()
                            .description("Ready")
                            .content("application/json", json_content(health.clone()))
                            .build(),
                    )
                    .response(
                        "503",
                        ResponseBuilder::new()
                            .description("Degraded (still serving from memory)")
                            .content("application/json", json_content(health))
                            .build(),
                    )
                    .build(),
            ),
        )
        .path(
            "/callback/tencent",
            callback(
                "tencent_callback",
                "Tencent LVB events (signed with live.api_key; also /callback/tape_callback.php)",
                "application/json",
            ),
        )
        .path(
            "/callback/nginx-rtmp",
            callback(
                "nginx_rtmp_callback",
                "nginx-rtmp hooks (trusted addresses only)",
                "application/x-www-form-urlencoded",
            ),
        )
        .path(
            "/callback/srs",
            callback(
                "srs_callback",
                "SRS hooks (trusted addresses only)",
                "application/json",
            ),
        )
        .path("/ws/room/{liveuserid}", ws);
    OpenApiBuilder::new()
        .info(
            InfoBuilder::new()
                .title("minilvb")
                .version(env!("CARGO_PKG_VERSION"))
                .description(Some(
                    "The Mini LVB room server protocol: Actions on POST /interface.php, media \
                     server callbacks, and the realtime room channel.",
                ))
                .build(),
        )
        .paths(paths.build())
        .components(Some(components.build()))
        .build()
}

/// The document as JSON.
pub fn json(l: &LimitsConfig) -> String {
    document(l).to_json().unwrap_or_else(|_| "{}".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every schema the document refers to is in it, and every Action has a body.
    #[test]
    fn every_reference_resolves() {
        let doc: serde_json::Value = serde_json::from_str(&json(&LimitsConfig::default())).unwrap();
        assert_eq!(doc["openapi"].as_str().unwrap().get(..3), Some("3.1"));
        let schemas = doc["components"]["schemas"].as_object().unwrap();
        let text = doc.to_string();
        for part in text.split("\"$ref\":\"#/components/schemas/").skip(1) {
            let name = &part[..part.find('"').unwrap()];
            assert!(
                schemas.contains_key(name),
                "{name} is referred to but missing"
            );
        }
        for a in Action::all() {
            assert!(
                schemas.contains_key(&format!("Action{}", a.name())),
                "{}",
                a.name()
            );
        }
    }
}
