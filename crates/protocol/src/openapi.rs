//! JSON schemas of the wire types for the hub's OpenAPI document (feature `openapi`): the
//! structs and enums derive `utoipa::ToSchema`; the types written as one string (ids, keys,
//! signatures, rule names) are described here as the string they serialize to.

use utoipa::openapi::schema::{ObjectBuilder, OneOfBuilder, Schema, Type};
use utoipa::openapi::RefOr;
use utoipa::{PartialSchema, ToSchema};

use crate::ids::MAX_NAME_ID_LEN;
use crate::message::MAX_RULE_NAME_CHARS;
use crate::{
    CohortCountResult, DemographicsResult, JobId, KeyId, Nonce, Payload, ProjectId, PublicKey,
    RuleName, SiteId, SurvivalResult, UserId,
};

/// A string schema: `pattern` (anchored) and one example.
fn string(description: &str, pattern: &str, example: &str) -> RefOr<Schema> {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .description(Some(description))
        .pattern(Some(pattern))
        .examples([example])
        .into()
}

fn name_id(what: &str, example: &str) -> RefOr<Schema> {
    string(
        &format!(
            "{what}: 1 to {MAX_NAME_ID_LEN} characters of A-Z a-z 0-9 . _ - @ +, starting with a letter or digit"
        ),
        &format!("^[A-Za-z0-9][A-Za-z0-9._@+-]{{0,{}}}$", MAX_NAME_ID_LEN - 1),
        example,
    )
}

fn hex(what: &str, digits: usize, example: &str) -> RefOr<Schema> {
    string(
        &format!("{what}: {digits} lowercase hex digits"),
        &format!("^[0-9a-f]{{{digits}}}$"),
        example,
    )
}

macro_rules! schema {
    ($ty:ty, $body:expr) => {
        impl PartialSchema for $ty {
            fn schema() -> RefOr<Schema> {
                $body
            }
        }
        impl ToSchema for $ty {}
    };
}

schema!(SiteId, name_id("A site id", "h1"));
schema!(ProjectId, name_id("A project id", "p1"));
schema!(UserId, name_id("A user id (login name)", "alice"));
schema!(
    JobId,
    hex(
        "A job id (128 random bits)",
        32,
        "3f2a9c0e5b7d41e8a6c4f0b2d9e81a57"
    )
);
schema!(
    Nonce,
    hex(
        "A message nonce (128 random bits)",
        32,
        "9b1e4d7c2a5f48e0b3d6c9f2a1e47b08"
    )
);
schema!(
    KeyId,
    hex(
        "A signing key's id (the first 128 bits of its SHA-256 fingerprint)",
        32,
        "5d0c8e2b7f1a49c3e6b0d4f8a2c71e95"
    )
);
schema!(
    PublicKey,
    hex(
        "An Ed25519 public key",
        64,
        "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"
    )
);
schema!(
    crate::envelope::SignatureHex,
    hex("An Ed25519 signature", 128, &"0a".repeat(64))
);
schema!(
    RuleName,
    string(
        &format!(
            "An inclusion rule's name, exactly as in the job's definition: at most {MAX_RULE_NAME_CHARS} characters without control characters"
        ),
        &format!("^[^\\x00-\\x1f\\x7f-\\x9f]{{0,{MAX_RULE_NAME_CHARS}}}$"),
        "Age >= 18"
    )
);

/// `schema` (an object) with the internal tag `type: tag` among its fields.
fn tagged(tag: &str, schema: RefOr<Schema>) -> RefOr<Schema> {
    let RefOr::T(Schema::Object(mut o)) = schema else {
        return schema;
    };
    o.properties.insert(
        "type".into(),
        ObjectBuilder::new()
            .schema_type(Type::String)
            .enum_values(Some([tag]))
            .into(),
    );
    o.required.insert(0, "type".into());
    RefOr::T(Schema::Object(o))
}

impl PartialSchema for Payload {
    fn schema() -> RefOr<Schema> {
        OneOfBuilder::new()
            .description(Some(
                "A released aggregate: the answer to a cohort_count, demographics or survival query, tagged by `type`.",
            ))
            .item(tagged("cohort_count", CohortCountResult::schema()))
            .item(tagged("demographics", DemographicsResult::schema()))
            .item(tagged("survival", SurvivalResult::schema()))
            .into()
    }
}

impl ToSchema for Payload {
    fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        <CohortCountResult as ToSchema>::schemas(schemas);
        <DemographicsResult as ToSchema>::schemas(schemas);
        <SurvivalResult as ToSchema>::schemas(schemas);
    }
}
