//! `GET /crm/v3/properties/{objectType}`: an object's property definitions.
//! Contract: <https://developers.hubspot.com/docs/api-reference/legacy/crm/properties/get-properties>
//! (`results[]` of `{name, label, type, fieldType, groupName, hasUniqueValue, hidden,
//! calculated, modificationMetadata: {archivable, readOnlyDefinition, readOnlyValue,
//! readOnlyOptions}}`). An unknown object type gets 400 "Unable to infer object type from:
//! X" (observed, HubSpot/hubspot-api-php#128 and #233).
//!
//! Choices: the defaults below are a small subset of HubSpot's default properties; contacts'
//! `email` is usable as `idProperty` but, as in HubSpot, not flagged `hasUniqueValue`.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use super::errors::validation;
use super::state::HsState;
use super::store::{canonical, PropDef};

fn def(kind: &str, field_type: &str) -> PropDef {
    PropDef {
        kind: kind.into(),
        field_type: field_type.into(),
        read_only: false,
    }
}

fn system(kind: &str, field_type: &str) -> PropDef {
    PropDef {
        read_only: true,
        ..def(kind, field_type)
    }
}

/// HubSpot-defined properties of the standard objects the fake knows.
pub(crate) fn defaults() -> Vec<(&'static str, Vec<(&'static str, PropDef)>)> {
    let common = || {
        vec![
            ("hs_object_id", system("number", "number")),
            ("createdate", system("datetime", "date")),
            ("lastmodifieddate", system("datetime", "date")),
        ]
    };
    let with_common = |mut v: Vec<(&'static str, PropDef)>| {
        v.extend(common());
        v
    };
    vec![
        (
            "contacts",
            with_common(vec![
                ("email", def("string", "text")),
                ("firstname", def("string", "text")),
                ("lastname", def("string", "text")),
                ("phone", def("string", "phonenumber")),
                ("company", def("string", "text")),
                ("website", def("string", "text")),
                ("jobtitle", def("string", "text")),
                ("city", def("string", "text")),
                ("lifecyclestage", def("enumeration", "radio")),
            ]),
        ),
        (
            "companies",
            with_common(vec![
                ("name", def("string", "text")),
                ("domain", def("string", "text")),
                ("industry", def("enumeration", "select")),
                ("numberofemployees", def("number", "number")),
                ("annualrevenue", def("number", "number")),
                ("city", def("string", "text")),
            ]),
        ),
        (
            "deals",
            with_common(vec![
                ("dealname", def("string", "text")),
                ("amount", def("number", "number")),
                ("dealstage", def("enumeration", "radio")),
                ("pipeline", def("enumeration", "select")),
                ("closedate", def("datetime", "date")),
            ]),
        ),
        (
            "tickets",
            with_common(vec![
                ("subject", def("string", "text")),
                ("content", def("string", "textarea")),
                ("hs_pipeline", def("enumeration", "select")),
                ("hs_pipeline_stage", def("enumeration", "select")),
            ]),
        ),
    ]
}

/// The body answered for an object type that does not exist.
pub(crate) fn unknown_object(object_type: &str) -> Response {
    validation(&format!("Unable to infer object type from: {object_type}"))
}

/// `GET /crm/v3/properties/{objectType}`.
pub(crate) async fn properties(
    State(s): State<Arc<HsState>>,
    Path(object_type): Path<String>,
) -> Response {
    let object = canonical(&object_type);
    let store = s.store();
    if !store.knows(&object) {
        return unknown_object(&object_type);
    }
    let results: Vec<Value> = store
        .properties(&object)
        .into_iter()
        .enumerate()
        .map(|(i, (name, d))| {
            // Contacts' email is HubSpot's dedupe key, not a "unique value" property.
            let unique =
                store.is_unique(&object, &name) && !(object == "contacts" && name == "email");
            json!({
                "name": name,
                "label": name,
                "type": d.kind,
                "fieldType": d.field_type,
                "groupName": if d.read_only { "system" } else { "information" },
                "displayOrder": i,
                "hasUniqueValue": unique,
                "hidden": false,
                "calculated": false,
                "formField": !d.read_only,
                "modificationMetadata": {
                    "archivable": !d.read_only,
                    "readOnlyDefinition": d.read_only,
                    "readOnlyValue": d.read_only,
                    "readOnlyOptions": false,
                },
            })
        })
        .collect();
    (StatusCode::OK, Json(json!({ "results": results }))).into_response()
}
