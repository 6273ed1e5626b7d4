//! Salesforce fake: OAuth flows, session expiry, sObject Collections, Bulk API 2.0.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use retl_fakes::{
    ClientCredentials, JwtClient, RateLimit, RecordFault, SalesforceConfig, SalesforceFake,
};
use serde_json::{json, Value};

use crate::common::client;

const PRIVATE: &[u8] = include_bytes!("../fixtures/jwt_private.pem");
const OTHER_PRIVATE: &[u8] = include_bytes!("../fixtures/other_private.pem");
const PUBLIC: &str = include_str!("../fixtures/jwt_public.pem");
const AUD: &str = "https://login.salesforce.com";
const V: &str = "v60.0";

async fn fake() -> SalesforceFake {
    SalesforceFake::start(SalesforceConfig {
        jwt: Some(JwtClient {
            client_id: "consumer-key".into(),
            username: "etl@example.com".into(),
            public_key_pem: PUBLIC.into(),
        }),
        client_credentials: Some(ClientCredentials {
            client_id: "cc-id".into(),
            client_secret: "cc-secret".into(),
        }),
        ..SalesforceConfig::default()
    })
    .await
    .expect("start")
}

fn assertion(key: &[u8], iss: &str, sub: &str, aud: &str, exp_in: i64) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let claims = json!({"iss": iss, "sub": sub, "aud": aud, "exp": now + exp_in});
    encode(
        &Header::new(Algorithm::RS256),
        &claims,
        &EncodingKey::from_rsa_pem(key).unwrap(),
    )
    .unwrap()
}

async fn token_call(fake: &SalesforceFake, form: &[(&str, &str)]) -> (u16, Value) {
    let resp = client()
        .post(fake.token_url())
        .form(form)
        .send()
        .await
        .unwrap();
    (resp.status().as_u16(), resp.json().await.unwrap())
}

async fn jwt_token(fake: &SalesforceFake, assertion: &str) -> (u16, Value) {
    let grant = "urn:ietf:params:oauth:grant-type:jwt-bearer";
    token_call(fake, &[("grant_type", grant), ("assertion", assertion)]).await
}

async fn rest(
    fake: &SalesforceFake,
    token: &str,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> (u16, reqwest::header::HeaderMap, Value) {
    let mut req = client()
        .request(
            method,
            format!("{}/services/data/{V}{path}", fake.base_url()),
        )
        .bearer_auth(token);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let text = resp.text().await.unwrap();
    (
        status,
        headers,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

fn contact(ext: &str, last: Option<&str>) -> Value {
    let mut v = json!({"attributes": {"type": "Contact"}, "Ext__c": ext});
    if let Some(l) = last {
        v["LastName"] = json!(l);
    }
    v
}

#[tokio::test]
async fn jwt_bearer_flow_issues_a_usable_token() {
    let fake = fake().await;
    let (status, body) = jwt_token(
        &fake,
        &assertion(PRIVATE, "consumer-key", "etl@example.com", AUD, 120),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["instance_url"], fake.base_url());
    assert!(body["id"]
        .as_str()
        .unwrap()
        .starts_with("https://login.salesforce.com/id/"));
    assert!(body.get("expires_in").is_none() && body.get("refresh_token").is_none());
    let token = body["access_token"].as_str().unwrap();
    let (status, headers, _) = rest(
        &fake,
        token,
        reqwest::Method::POST,
        "/composite/sobjects",
        Some(json!({"records": []})),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(headers["sforce-limit-info"], "api-usage=1/100000");
    assert_eq!(fake.tokens_issued(), 1);
}

#[tokio::test]
async fn jwt_bearer_flow_rejects_bad_assertions() {
    let fake = fake().await;
    let cases = [
        (
            assertion(OTHER_PRIVATE, "consumer-key", "etl@example.com", AUD, 120),
            "invalid_grant",
            "invalid assertion",
        ),
        (
            assertion(PRIVATE, "someone-else", "etl@example.com", AUD, 120),
            "invalid_client_id",
            "client identifier invalid",
        ),
        (
            assertion(PRIVATE, "consumer-key", "etl@example.com", AUD, -5),
            "invalid_grant",
            "expired authorization code",
        ),
        (
            assertion(
                PRIVATE,
                "consumer-key",
                "etl@example.com",
                "https://evil.example",
                120,
            ),
            "invalid_grant",
            "audience is invalid",
        ),
        (
            assertion(PRIVATE, "consumer-key", "other@example.com", AUD, 120),
            "invalid_grant",
            "invalid assertion",
        ),
        (
            assertion(PRIVATE, "consumer-key", "etl@example.com", AUD, 3600),
            "invalid_grant",
            "invalid assertion",
        ),
        (
            "not-a-jwt".to_string(),
            "invalid_grant",
            "invalid assertion",
        ),
    ];
    for (jwt, error, description) in cases {
        let (status, body) = jwt_token(&fake, &jwt).await;
        assert_eq!(status, 400);
        assert_eq!(
            (
                body["error"].as_str().unwrap(),
                body["error_description"].as_str().unwrap()
            ),
            (error, description)
        );
    }
    let (status, body) = token_call(&fake, &[("grant_type", "password")]).await;
    assert_eq!(
        (status, body["error"].as_str().unwrap()),
        (400, "unsupported_grant_type")
    );
}

#[tokio::test]
async fn client_credentials_flow_in_body_or_basic_header() {
    let fake = fake().await;
    let form = [
        ("grant_type", "client_credentials"),
        ("client_id", "cc-id"),
        ("client_secret", "cc-secret"),
    ];
    let (status, body) = token_call(&fake, &form).await;
    assert_eq!(status, 200);
    assert_eq!(body["token_format"], "opaque");
    let resp = client()
        .post(fake.token_url())
        .basic_auth("cc-id", Some("cc-secret"))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let bad = [
        ("grant_type", "client_credentials"),
        ("client_id", "cc-id"),
        ("client_secret", "wrong"),
    ];
    let (status, body) = token_call(&fake, &bad).await;
    assert_eq!(
        (status, body["error"].as_str().unwrap()),
        (400, "invalid_client")
    );
}

#[tokio::test]
async fn expired_session_gets_invalid_session_id_until_refreshed() {
    let fake = fake().await;
    fake.set_token_ttl(Duration::from_secs(1));
    let token = fake.issue_token();
    let body = Some(json!({"records": []}));
    assert_eq!(
        rest(
            &fake,
            &token,
            reqwest::Method::POST,
            "/composite/sobjects",
            body.clone()
        )
        .await
        .0,
        200
    );
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (status, _, err) = rest(
        &fake,
        &token,
        reqwest::Method::POST,
        "/composite/sobjects",
        body.clone(),
    )
    .await;
    assert_eq!(status, 401);
    assert_eq!(
        err,
        json!([{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}])
    );
    fake.set_token_ttl(Duration::from_secs(3600));
    let fresh = fake.issue_token();
    assert_eq!(
        rest(
            &fake,
            &fresh,
            reqwest::Method::POST,
            "/composite/sobjects",
            body.clone()
        )
        .await
        .0,
        200
    );
    fake.expire_tokens();
    assert_eq!(
        rest(
            &fake,
            &fresh,
            reqwest::Method::POST,
            "/composite/sobjects",
            body
        )
        .await
        .0,
        401
    );
}

#[tokio::test]
async fn collections_create_update_upsert_delete() {
    let fake = fake().await;
    let token = fake.issue_token();
    let records = json!({"records": [
        {"attributes": {"type": "Account"}, "Name": "Acme"},
        {"attributes": {"type": "Account"}, "Name": "Globex", "Id": "001000000000001AAA"},
    ]});
    let (status, _, created) = rest(
        &fake,
        &token,
        reqwest::Method::POST,
        "/composite/sobjects",
        Some(records),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(created[0]["success"], true);
    let acme = created[0]["id"].as_str().unwrap().to_string();
    assert!(acme.starts_with("001") && acme.len() == 18);
    assert_eq!(created[1]["errors"][0]["statusCode"], "INVALID_FIELD");
    assert_eq!(created[1]["id"], Value::Null);

    let update = json!({"records": [
        {"attributes": {"type": "Account"}, "id": acme, "Name": "Acme 2"},
        {"attributes": {"type": "Account"}, "id": "001000000000999AAA", "Name": "ghost"},
    ]});
    let (_, _, updated) = rest(
        &fake,
        &token,
        reqwest::Method::PATCH,
        "/composite/sobjects",
        Some(update),
    )
    .await;
    assert_eq!(
        updated[0],
        json!({"id": acme, "success": true, "errors": []})
    );
    assert_eq!(updated[1]["errors"][0]["statusCode"], "NOT_FOUND");
    assert_eq!(fake.get("Account", "Id", &acme).unwrap()["Name"], "Acme 2");

    let upsert = json!({"records": [contact("e1", Some("One")), contact("e2", Some("Two"))]});
    let path = "/composite/sobjects/Contact/Ext__c";
    let (_, _, first) = rest(
        &fake,
        &token,
        reqwest::Method::PATCH,
        path,
        Some(upsert.clone()),
    )
    .await;
    assert_eq!(
        (first[0]["created"].clone(), first[1]["created"].clone()),
        (json!(true), json!(true))
    );
    let (_, _, second) = rest(&fake, &token, reqwest::Method::PATCH, path, Some(upsert)).await;
    assert_eq!(second[0]["created"], false);
    assert_eq!(second[0]["id"], first[0]["id"]);
    assert_eq!(fake.records("Contact").len(), 2);

    let c1 = first[0]["id"].as_str().unwrap().to_string();
    let query = format!("/composite/sobjects?ids={acme},{c1},bad-id&allOrNone=false");
    let (_, _, deleted) = rest(&fake, &token, reqwest::Method::DELETE, &query, None).await;
    assert_eq!(deleted[0]["success"], true);
    assert_eq!(deleted[1]["success"], true);
    assert_eq!(deleted[2]["errors"][0]["statusCode"], "MALFORMED_ID");
    assert_eq!(fake.deleted_ids().len(), 2);
    let (_, _, again) = rest(
        &fake,
        &token,
        reqwest::Method::DELETE,
        &format!("/composite/sobjects?ids={acme}"),
        None,
    )
    .await;
    assert_eq!(again[0]["errors"][0]["statusCode"], "ENTITY_IS_DELETED");
    let log = fake.requests();
    assert_eq!(log.last().unwrap().records_in_batch, Some(1));
}

#[tokio::test]
async fn collections_reject_more_than_200_records() {
    let fake = fake().await;
    let token = fake.issue_token();
    let records: Vec<Value> = (0..201)
        .map(|i| contact(&format!("e{i}"), Some("L")))
        .collect();
    let (status, _, body) = rest(
        &fake,
        &token,
        reqwest::Method::POST,
        "/composite/sobjects",
        Some(json!({"records": records})),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(body[0]["errorCode"], "EXCEEDED_ID_LIMIT");
    let ids = vec!["003000000000001AAA"; 201].join(",");
    let (status, _, _) = rest(
        &fake,
        &token,
        reqwest::Method::DELETE,
        &format!("/composite/sobjects?ids={ids}"),
        None,
    )
    .await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn all_or_none_rolls_back_every_record() {
    let fake = fake().await;
    fake.add_required_field("Contact", "LastName");
    let token = fake.issue_token();
    let path = "/composite/sobjects/Contact/Ext__c";
    let records = json!([
        contact("a", Some("A")),
        contact("b", None),
        contact("c", Some("C"))
    ]);
    let (_, _, body) = rest(
        &fake,
        &token,
        reqwest::Method::PATCH,
        path,
        Some(json!({"allOrNone": true, "records": records})),
    )
    .await;
    assert_eq!(body[1]["errors"][0]["statusCode"], "REQUIRED_FIELD_MISSING");
    assert_eq!(body[1]["errors"][0]["fields"], json!(["LastName"]));
    for i in [0, 2] {
        assert_eq!(body[i]["success"], false);
        assert_eq!(
            body[i]["errors"][0]["statusCode"],
            "ALL_OR_NONE_OPERATION_ROLLED_BACK"
        );
    }
    assert!(fake.records("Contact").is_empty());
    let (_, _, body) = rest(
        &fake,
        &token,
        reqwest::Method::PATCH,
        path,
        Some(json!({"allOrNone": false, "records": records})),
    )
    .await;
    assert_eq!(
        (body[0]["success"].clone(), body[1]["success"].clone()),
        (json!(true), json!(false))
    );
    assert_eq!(fake.records("Contact").len(), 2);
}

#[tokio::test]
async fn injected_and_rule_errors_per_record() {
    let fake = fake().await;
    fake.add_unique_field("Contact", "Email");
    fake.inject(RecordFault::unable_to_lock_row(
        "Contact", "Ext__c", "locked", 2,
    ));
    fake.add_rule("Contact", retl_fakes::Rule::contains("Email", "@"));
    let token = fake.issue_token();
    let path = "/composite/sobjects/Contact/Ext__c";
    let mut locked = contact("locked", Some("L"));
    locked["Email"] = json!("l@x.io");
    for attempt in 1..=3 {
        let (_, _, body) = rest(
            &fake,
            &token,
            reqwest::Method::PATCH,
            path,
            Some(json!({"records": [locked.clone()]})),
        )
        .await;
        let ok = body[0]["success"].as_bool().unwrap();
        assert_eq!(ok, attempt == 3, "attempt {attempt}: {body}");
        if !ok {
            assert_eq!(body[0]["errors"][0]["statusCode"], "UNABLE_TO_LOCK_ROW");
        }
    }
    let mut dup = contact("other", Some("O"));
    dup["Email"] = json!("l@x.io");
    let mut bad = contact("bad", Some("B"));
    bad["Email"] = json!("nope");
    let (_, _, body) = rest(
        &fake,
        &token,
        reqwest::Method::PATCH,
        path,
        Some(json!({"records": [dup, bad]})),
    )
    .await;
    assert_eq!(body[0]["errors"][0]["statusCode"], "DUPLICATE_VALUE");
    assert_eq!(
        body[1]["errors"][0]["statusCode"],
        "FIELD_CUSTOM_VALIDATION_EXCEPTION"
    );
    assert_eq!(body[1]["errors"][0]["fields"], json!(["Email"]));
}

#[tokio::test]
async fn request_limit_exceeded_is_403() {
    let fake = fake().await;
    fake.faults()
        .set_rate_limit(Some(RateLimit::sliding(1, Duration::from_secs(3600))));
    let token = fake.issue_token();
    let body = Some(json!({"records": []}));
    assert_eq!(
        rest(
            &fake,
            &token,
            reqwest::Method::POST,
            "/composite/sobjects",
            body.clone()
        )
        .await
        .0,
        200
    );
    let (status, headers, err) = rest(
        &fake,
        &token,
        reqwest::Method::POST,
        "/composite/sobjects",
        body,
    )
    .await;
    assert_eq!(status, 403);
    assert_eq!(err[0]["errorCode"], "REQUEST_LIMIT_EXCEEDED");
    assert_eq!(headers["sforce-limit-info"], "api-usage=1/1");
    assert!(headers.contains_key("retry-after"));
    let (status, _) = token_call(
        &fake,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", "cc-id"),
            ("client_secret", "cc-secret"),
        ],
    )
    .await;
    assert_eq!(status, 200, "the login endpoint is not throttled");
}

async fn bulk_job(fake: &SalesforceFake, token: &str, spec: Value, csv: &str) -> String {
    let (status, _, job) = rest(
        fake,
        token,
        reqwest::Method::POST,
        "/jobs/ingest",
        Some(spec),
    )
    .await;
    assert_eq!(status, 200, "{job}");
    assert_eq!(job["state"], "Open");
    let id = job["id"].as_str().unwrap().to_string();
    let resp = client()
        .put(format!(
            "{}/{}",
            fake.base_url(),
            job["contentUrl"].as_str().unwrap()
        ))
        .bearer_auth(token)
        .header("content-type", "text/csv")
        .body(csv.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    id
}

async fn csv_of(fake: &SalesforceFake, token: &str, id: &str, resource: &str) -> String {
    let resp = client()
        .get(format!(
            "{}/services/data/{V}/jobs/ingest/{id}/{resource}/",
            fake.base_url()
        ))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    resp.text().await.unwrap()
}

#[tokio::test]
async fn bulk_upsert_job_reports_results_and_writes_the_store() {
    let fake = fake().await;
    fake.add_required_field("Contact", "LastName");
    let token = fake.issue_token();
    let spec = json!({"object": "Contact", "operation": "upsert", "externalIdFieldName": "Ext__c", "contentType": "CSV", "lineEnding": "LF"});
    let id = bulk_job(
        &fake,
        &token,
        spec,
        "Ext__c,LastName\nb1,One\nb2,\nb3,Three\n",
    )
    .await;
    let path = format!("/jobs/ingest/{id}");
    let (status, _, closed) = rest(
        &fake,
        &token,
        reqwest::Method::PATCH,
        &path,
        Some(json!({"state": "UploadComplete"})),
    )
    .await;
    assert_eq!(
        (status, closed["state"].as_str().unwrap()),
        (200, "UploadComplete")
    );
    let (_, _, info) = rest(&fake, &token, reqwest::Method::GET, &path, None).await;
    assert_eq!(info["state"], "JobComplete");
    assert_eq!(info["numberRecordsProcessed"], 3);
    assert_eq!(info["numberRecordsFailed"], 1);
    let ok = csv_of(&fake, &token, &id, "successfulResults").await;
    let mut lines = ok.lines();
    assert_eq!(
        lines.next(),
        Some("\"sf__Id\",\"sf__Created\",\"Ext__c\",\"LastName\"")
    );
    assert!(lines.next().unwrap().ends_with("\"true\",\"b1\",\"One\""));
    let failed = csv_of(&fake, &token, &id, "failedResults").await;
    assert!(failed.starts_with("\"sf__Id\",\"sf__Error\",\"Ext__c\",\"LastName\"\n"));
    assert!(failed
        .contains("REQUIRED_FIELD_MISSING:Required fields are missing: [LastName]:LastName --"));
    let unprocessed = csv_of(&fake, &token, &id, "unprocessedrecords").await;
    assert_eq!(unprocessed, "\"Ext__c\",\"LastName\"\n");
    assert_eq!(fake.records("Contact").len(), 2);
    assert_eq!(
        fake.get("Contact", "Ext__c", "b3").unwrap()["LastName"],
        "Three"
    );
}

#[tokio::test]
async fn bulk_processing_delay_size_limit_and_delete() {
    let fake = fake().await;
    let token = fake.issue_token();
    let seeded = fake.insert("Account", json!({"Name": "Old"}));
    fake.set_bulk_processing_delay(Duration::from_secs(1));
    let spec = json!({"object": "Account", "operation": "delete"});
    let id = bulk_job(&fake, &token, spec, &format!("Id\n{seeded}\n")).await;
    let path = format!("/jobs/ingest/{id}");
    rest(
        &fake,
        &token,
        reqwest::Method::PATCH,
        &path,
        Some(json!({"state": "UploadComplete"})),
    )
    .await;
    let (_, _, info) = rest(&fake, &token, reqwest::Method::GET, &path, None).await;
    assert_eq!(info["state"], "InProgress");
    let (status, _, _) = rest(
        &fake,
        &token,
        reqwest::Method::GET,
        &format!("{path}/successfulResults"),
        None,
    )
    .await;
    assert_eq!(status, 409);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (_, _, info) = rest(&fake, &token, reqwest::Method::GET, &path, None).await;
    assert_eq!(info["state"], "JobComplete");
    assert!(fake.records("Account").is_empty());
    assert_eq!(fake.deleted_ids(), vec![seeded]);

    fake.set_bulk_max_upload_bytes(8);
    let (_, _, job) = rest(
        &fake,
        &token,
        reqwest::Method::POST,
        "/jobs/ingest",
        Some(json!({"object": "Account", "operation": "insert"})),
    )
    .await;
    let resp = client()
        .put(format!(
            "{}/{}",
            fake.base_url(),
            job["contentUrl"].as_str().unwrap()
        ))
        .bearer_auth(&token)
        .body("Name\nToo long for the limit\n")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);

    let (status, _, err) = rest(
        &fake,
        &token,
        reqwest::Method::POST,
        "/jobs/ingest",
        Some(json!({"object": "Contact", "operation": "upsert"})),
    )
    .await;
    assert_eq!(
        (status, err[0]["errorCode"].as_str().unwrap()),
        (400, "INVALIDJOB")
    );
}

async fn soql(
    fake: &SalesforceFake,
    token: &str,
    q: &str,
    batch_size: Option<u32>,
) -> (u16, Value) {
    let mut req = client()
        .get(format!("{}/services/data/{V}/query", fake.base_url()))
        .query(&[("q", q)])
        .bearer_auth(token);
    if let Some(n) = batch_size {
        req = req.header("Sforce-Query-Options", format!("batchSize={n}"));
    }
    let resp = req.send().await.unwrap();
    (resp.status().as_u16(), resp.json().await.unwrap())
}

#[tokio::test]
async fn soql_query_filters_with_in_lists_and_pages_through_next_records_url() {
    let fake = fake().await;
    let token = fake.issue_token();
    for i in 0..450 {
        fake.insert(
            "Contact",
            json!({"Ext__c": format!("e{i}"), "LastName": format!("L{i}")}),
        );
    }
    fake.insert("Contact", json!({"Ext__c": "O'Brien", "LastName": "Q"}));
    let (status, body) = soql(
        &fake,
        &token,
        r"SELECT Id, ext__c, LastName, Email FROM Contact WHERE Ext__c IN ('e1', 'E2', 'missing', 'O\'Brien')",
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["totalSize"], 3);
    assert_eq!(body["done"], true);
    let first = &body["records"][0];
    assert_eq!(first["attributes"]["type"], "Contact");
    assert!(first["attributes"]["url"]
        .as_str()
        .unwrap()
        .starts_with("/services/data/v60.0/sobjects/Contact/003"));
    assert_eq!(
        first["Ext__c"], "e1",
        "stored spelling of the field: {first}"
    );
    assert_eq!(first["Email"], Value::Null);
    let names: Vec<&str> = body["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["LastName"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["L1", "L2", "Q"], "text compares case-insensitively");
    assert_eq!(fake.requests().last().unwrap().records_in_batch, Some(4));

    // Every record, 200 per page as asked, continued through nextRecordsUrl.
    let (_, page) = soql(&fake, &token, "SELECT Ext__c FROM Contact", Some(200)).await;
    assert_eq!(page["totalSize"], 451);
    assert_eq!(page["done"], false);
    let mut seen = page["records"].as_array().unwrap().len();
    let mut next = page["nextRecordsUrl"].as_str().map(str::to_string);
    let mut pages = 1;
    while let Some(url) = next {
        assert!(url.starts_with("/services/data/v60.0/query/"), "{url}");
        let resp = client()
            .get(format!("{}{url}", fake.base_url()))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        let body: Value = resp.json().await.unwrap();
        seen += body["records"].as_array().unwrap().len();
        next = body["nextRecordsUrl"].as_str().map(str::to_string);
        pages += 1;
    }
    assert_eq!((seen, pages), (451, 3));

    fake.insert("Contact", json!({"LastName": "No external id"}));
    let (_, body) = soql(
        &fake,
        &token,
        "SELECT Id FROM Contact WHERE Ext__c != null",
        None,
    )
    .await;
    assert_eq!(body["totalSize"], 451);
    let (status, body) = soql(&fake, &token, "SELECT Id FROM Contact LIMIT 2", None).await;
    assert_eq!((status, body["totalSize"].clone()), (200, json!(2)));
    let (status, body) = soql(&fake, &token, "SELECT Id FROM Contact WHERE", None).await;
    assert_eq!(status, 400);
    assert_eq!(body[0]["errorCode"], "MALFORMED_QUERY");
}

#[tokio::test]
async fn soql_query_knows_only_the_configured_sobjects() {
    let fake = SalesforceFake::start(SalesforceConfig {
        sobjects: Some(vec!["Contact".into()]),
        ..SalesforceConfig::default()
    })
    .await
    .unwrap();
    let token = fake.issue_token();
    let (status, _) = soql(&fake, &token, "SELECT Id FROM contact", None).await;
    assert_eq!(status, 200);
    let (status, body) = soql(&fake, &token, "SELECT Id FROM Nope__c", None).await;
    assert_eq!(status, 400);
    assert_eq!(body[0]["errorCode"], "INVALID_TYPE");
    let (status, _) = soql(&fake, "not-a-token", "SELECT Id FROM Contact", None).await;
    assert_eq!(status, 401);
}
