//! `GET /crm/v3/objects/{objectType}`: a page of records.
//! Contract: <https://developers.hubspot.com/docs/api-reference/latest/crm/objects/objects/get-objects>
//! (query `limit`, `after`, `properties` (comma-separated), `archived`; answer
//! `{results: [SimplePublicObject], paging: {next: {after, link}}}`, `paging` only when more
//! records follow). `limit` defaults to 10 and is at most 100 (HubSpot's SDK page size,
//! HubSpot/hubspot-api-ruby `GetAllHelper::MAX_PAGE_SIZE`).
//!
//! Choices: `after` is the last record id of the previous page (HubSpot's cursor is
//! opaque); a `limit` above 100 or a malformed `after` is a 400 `VALIDATION_ERROR`.

use std::sync::Arc;

use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use super::errors::validation;
use super::schema::unknown_object;
use super::state::HsState;
use super::store::{canonical, render};

/// Most records per page.
const MAX_LIMIT: usize = 100;

/// `GET /crm/v3/objects/{objectType}`.
pub(crate) async fn list(
    State(s): State<Arc<HsState>>,
    Path(object_type): Path<String>,
    RawQuery(query): RawQuery,
) -> Response {
    let pairs: Vec<(String, String)> =
        serde_urlencoded::from_str(query.as_deref().unwrap_or("")).unwrap_or_default();
    let get = |name: &'static str| {
        pairs
            .iter()
            .filter(move |(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    let limit = match get("limit").next_back().map(str::parse::<usize>) {
        None => 10,
        Some(Ok(n)) if (1..=MAX_LIMIT).contains(&n) => n,
        Some(_) => return validation(&format!("limit must be between 1 and {MAX_LIMIT}")),
    };
    let after = match get("after").next_back().map(str::parse::<u64>) {
        None => 0,
        Some(Ok(n)) => n,
        Some(Err(_)) => return validation("Invalid paging cursor: after"),
    };
    let archived = get("archived").next_back() == Some("true");
    let props: Vec<String> = get("properties")
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(str::to_string)
        .collect();
    let filter = (!props.is_empty()).then_some(props.as_slice());
    let object = canonical(&object_type);
    let store = s.store();
    if !store.knows(&object) {
        return unknown_object(&object_type);
    }
    // One more than the page tells whether another page follows.
    let records = store.page(&object, archived, after, limit + 1);
    let more = records.len() > limit;
    let page = &records[..records.len().min(limit)];
    let results: Vec<Value> = page.iter().map(|r| render(r, filter)).collect();
    let mut body = json!({ "results": results });
    if more {
        if let Some(last) = page.last() {
            let cursor = last.id.to_string();
            body["paging"] = json!({"next": {
                "after": cursor,
                "link": format!("?after={cursor}"),
            }});
        }
    }
    (StatusCode::OK, Json(body)).into_response()
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};

    use crate::{HubSpotConfig, HubSpotFake};

    async fn get(fake: &HubSpotFake, path_and_query: &str) -> (u16, Value) {
        let resp = reqwest::Client::new()
            .get(format!("{}{path_and_query}", fake.base_url()))
            .bearer_auth(HubSpotConfig::default().token)
            .send()
            .await
            .expect("send");
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    #[tokio::test]
    async fn lists_pages_with_cursors_and_chosen_properties() {
        let fake = HubSpotFake::start(HubSpotConfig::default()).await.unwrap();
        for i in 0..5 {
            fake.insert(
                "contacts",
                json!({"email": format!("{i}@x.io"), "firstname": "N"}),
            );
        }
        let (status, page) = get(&fake, "/crm/v3/objects/contacts?limit=2&properties=email").await;
        assert_eq!(status, 200);
        assert_eq!(page["results"].as_array().unwrap().len(), 2);
        assert!(page["results"][0]["properties"].get("firstname").is_none());
        assert_eq!(page["results"][0]["properties"]["email"], "0@x.io");
        let after = page["paging"]["next"]["after"]
            .as_str()
            .unwrap()
            .to_string();
        let (_, last) = get(
            &fake,
            &format!("/crm/v3/objects/contacts?limit=3&after={after}"),
        )
        .await;
        assert_eq!(last["results"].as_array().unwrap().len(), 3);
        assert!(last.get("paging").is_none(), "no page follows");
        assert_eq!(
            get(&fake, "/crm/v3/objects/contacts?limit=101").await.0,
            400
        );
        let (status, body) = get(&fake, "/crm/v3/objects/nothing").await;
        assert_eq!(status, 400);
        assert_eq!(body["message"], "Unable to infer object type from: nothing");
    }

    #[tokio::test]
    async fn describes_properties() {
        let fake = HubSpotFake::start(HubSpotConfig::default()).await.unwrap();
        fake.add_unique_property("p_cars", "vin");
        fake.add_property("p_cars", "price", "number");
        let (status, body) = get(&fake, "/crm/v3/properties/p_cars").await;
        assert_eq!(status, 200);
        let by_name = |n: &str| {
            body["results"]
                .as_array()
                .unwrap()
                .iter()
                .find(|p| p["name"] == n)
                .cloned()
                .unwrap()
        };
        assert_eq!(by_name("vin")["hasUniqueValue"], true);
        assert_eq!(by_name("price")["type"], "number");
        let (_, contacts) = get(&fake, "/crm/v3/properties/contacts").await;
        let email = contacts["results"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == "email")
            .cloned()
            .unwrap();
        assert_eq!(email["hasUniqueValue"], false);
        let id = contacts["results"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == "hs_object_id")
            .cloned()
            .unwrap();
        assert_eq!(id["modificationMetadata"]["readOnlyValue"], true);
        assert_eq!(get(&fake, "/crm/v3/properties/nothing").await.0, 400);
    }
}
