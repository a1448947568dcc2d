//! JSON schemas of the audit log's wire types for the hub's OpenAPI document (feature
//! `openapi`): [`Entry`](crate::Entry) and [`Checkpoint`](crate::Checkpoint) derive
//! `utoipa::ToSchema`; the two types written as one string are described here.

use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};
use utoipa::openapi::RefOr;
use utoipa::{PartialSchema, ToSchema};

use crate::{Actor, EntryHash};

impl PartialSchema for Actor {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .description(Some(
                "Who did it: user:<id>, site:<id>, hub, system, or unverified (a message whose signature did not verify)",
            ))
            .pattern(Some("^(user:.+|site:.+|hub|system|unverified)$"))
            .examples(["user:alice"])
            .into()
    }
}
impl ToSchema for Actor {}

impl PartialSchema for EntryHash {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .description(Some("A SHA-256 hash of the chain: 64 lowercase hex digits"))
            .pattern(Some("^[0-9a-f]{64}$"))
            .examples(["5f0c3a4bd2e1f6a7b8c9d0e1f2a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5"])
            .into()
    }
}
impl ToSchema for EntryHash {}
