//! The `registry!` macro: from one line per connector it makes [`crate::config::ConnectionConfig`]
//! (the `type:`-tagged union of every connector's config struct, with its JSON Schema) and the
//! lookups the engine and validation use. Descriptions in the schema are the config structs'
//! own doc comments.

use schemars::{json_schema, JsonSchema, Schema, SchemaGenerator};

/// The schema of one connector's config with its `type` tag added.
pub(crate) fn tagged_schema<T: JsonSchema>(generator: &mut SchemaGenerator, ty: &str) -> Schema {
    let mut schema = T::json_schema(generator);
    let object = schema.ensure_object();
    let properties = object
        .entry("properties")
        .or_insert_with(|| serde_json::Value::Object(Default::default()));
    if let Some(p) = properties.as_object_mut() {
        p.insert(
            "type".into(),
            serde_json::json!({"type": "string", "const": ty, "description": "The connector."}),
        );
    }
    let required = object
        .entry("required")
        .or_insert_with(|| serde_json::Value::Array(Vec::new()));
    if let Some(r) = required.as_array_mut() {
        r.insert(0, serde_json::Value::String("type".into()));
    }
    schema
}

/// The schema of the union of `variants`.
pub(crate) fn one_of(variants: Vec<Schema>) -> Schema {
    json_schema!({
        "description": "One connection. `type` selects the connector.",
        "oneOf": variants,
    })
}

/// Builds [`crate::config::ConnectionConfig`] from `"type" => Variant(ConfigStruct),` lines.
macro_rules! registry {
    ($($ty:literal => $variant:ident($config:ty)),* $(,)?) => {
        /// One connection of `retl.yaml`; `type` selects the connector.
        #[derive(Debug, Clone, serde::Deserialize, serde::Serialize)]
        #[serde(tag = "type")]
        pub enum ConnectionConfig {
            $(
                #[doc = concat!("`type: ", $ty, "`")]
                #[serde(rename = $ty)]
                $variant($config),
            )*
        }

        impl ConnectionConfig {
            /// Every connector's `type`, in registry order.
            pub const TYPES: &'static [&'static str] = &[$($ty),*];

            /// The `type` as written in YAML.
            pub fn type_name(&self) -> &'static str {
                match self {
                    $(ConnectionConfig::$variant(_) => $ty,)*
                }
            }

            /// The connector behind the connection.
            pub fn connector(&self) -> &dyn Connector {
                match self {
                    $(ConnectionConfig::$variant(c) => c,)*
                }
            }

            /// The connector as a source, if it can run model SQL.
            pub fn as_source(&self) -> Option<&dyn SourceConnector> {
                self.connector().source()
            }

            /// The connector as a destination, if it can be written to.
            pub fn as_destination(&self) -> Option<&dyn DestinationConnector> {
                self.connector().destination()
            }
        }

        impl schemars::JsonSchema for ConnectionConfig {
            fn schema_name() -> std::borrow::Cow<'static, str> {
                "ConnectionConfig".into()
            }

            fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
                registry::one_of(vec![
                    $(registry::tagged_schema::<$config>(generator, $ty),)*
                ])
            }
        }
    };
}

pub(crate) use registry;
