//! The Meta custom audience destination against the Meta protocol fake: identifiers arrive
//! normalised and SHA-256 hashed (expected hashes computed here from hand-normalised values),
//! the audience equals the model after mirror runs, every supported mode, the 10,000-row
//! limit, throttling answered as HTTP 400 with a code, server errors, timeouts, slow answers,
//! invalid entries rejected into a record log that shows only hashed values.
// Scenario tests read top to bottom; the 80-line bound is for the code they test.
#![allow(clippy::too_many_lines)]

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use retl_fakes::{FaultPlan, MetaConfig, MetaFake, MetaThrottle, RateLimit, Rule};
use retl_tests::Project;
use sha2::{Digest, Sha256};

const TOKEN: &str = "meta-test-token";
const AUDIENCE: &str = "23850000000000042";

async fn fake() -> MetaFake {
    MetaFake::start(MetaConfig {
        access_token: TOKEN.into(),
        audiences: vec![AUDIENCE.into()],
        ..MetaConfig::default()
    })
    .await
    .expect("the Meta fake starts")
}

fn sha(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

/// One model row, with the form Meta's normalisation rules give each value (written by
/// hand from the rules, not computed by retl's code).
#[derive(Clone)]
struct Person {
    id: i64,
    email: &'static str,
    phone: Option<&'static str>,
    first: Option<&'static str>,
    last: Option<&'static str>,
    zip: Option<&'static str>,
    country: Option<&'static str>,
    gender: Option<&'static str>,
    year: Option<i64>,
    /// (schema key, normalised value) for every non-null value.
    normal: &'static [(&'static str, &'static str)],
}

fn people() -> Vec<Person> {
    vec![
        Person {
            id: 1,
            email: " Alice.Smith@Example.COM ",
            phone: Some("+1 (650) 555-0101"),
            first: Some("Alice"),
            last: Some("Smith-Jones"),
            zip: Some("94103-1234"),
            country: Some("US"),
            gender: Some("Female"),
            year: Some(1985),
            normal: &[
                ("EMAIL", "alice.smith@example.com"),
                ("PHONE", "16505550101"),
                ("FN", "alice"),
                ("LN", "smithjones"),
                ("ZIP", "94103"),
                ("COUNTRY", "us"),
                ("GEN", "f"),
                ("DOBY", "1985"),
            ],
        },
        Person {
            id: 2,
            email: "bob@example.org",
            phone: Some("0044 20 7946 0958"),
            first: Some("Bob"),
            last: Some("O'Brien"),
            zip: Some("SW1A 1AA"),
            country: Some("gb"),
            gender: Some("M"),
            year: Some(1990),
            normal: &[
                ("EMAIL", "bob@example.org"),
                ("PHONE", "442079460958"),
                ("FN", "bob"),
                ("LN", "obrien"),
                ("ZIP", "sw1a1aa"),
                ("COUNTRY", "gb"),
                ("GEN", "m"),
                ("DOBY", "1990"),
            ],
        },
        Person {
            id: 3,
            email: "Zoe@Example.net",
            phone: None,
            first: Some("Zoë"),
            last: Some("Müller"),
            zip: None,
            country: Some("DE"),
            gender: None,
            year: None,
            normal: &[
                ("EMAIL", "zoe@example.net"),
                ("FN", "zoë"),
                ("LN", "müller"),
                ("COUNTRY", "de"),
            ],
        },
        Person {
            id: 4,
            email: "dave@example.com",
            phone: Some("+1 212 555 0199"),
            first: Some("Dave"),
            last: Some("Lee"),
            zip: Some("10001"),
            country: Some("US"),
            gender: Some("male"),
            year: Some(1979),
            normal: &[
                ("EMAIL", "dave@example.com"),
                ("PHONE", "12125550199"),
                ("FN", "dave"),
                ("LN", "lee"),
                ("ZIP", "10001"),
                ("COUNTRY", "us"),
                ("GEN", "m"),
                ("DOBY", "1979"),
            ],
        },
        Person {
            id: 5,
            email: "eve@example.com",
            phone: Some("+33 1 23 45 67 89"),
            first: Some("Ève"),
            last: None,
            zip: None,
            country: Some("fr"),
            gender: Some("F"),
            year: Some(2001),
            normal: &[
                ("EMAIL", "eve@example.com"),
                ("PHONE", "33123456789"),
                ("FN", "ève"),
                ("COUNTRY", "fr"),
                ("GEN", "f"),
                ("DOBY", "2001"),
            ],
        },
    ]
}

fn pick(ids: &[i64]) -> Vec<Person> {
    people()
        .into_iter()
        .filter(|p| ids.contains(&p.id))
        .collect()
}

/// The audience the model should give: key -> hashed identifiers.
fn expected(model: &[Person]) -> BTreeMap<String, BTreeSet<String>> {
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for p in model {
        for (key, value) in p.normal {
            out.entry(key.to_string()).or_default().insert(sha(value));
        }
    }
    out
}

const MAPPING: &str = "{ EMAIL: email, PHONE: phone, FN: first_name, LN: last_name, ZIP: zip, \
                       COUNTRY: country, GEN: gender, DOBY: birth_year }";

fn sql_text(v: Option<&str>) -> String {
    v.map_or("NULL".into(), |s| format!("'{}'", s.replace('\'', "''")))
}

/// Replaces table `table` with `model`.
fn set_table(p: &Project, table: &str, model: &[Person]) {
    let mut sql = format!(
        "DROP TABLE IF EXISTS {table}; CREATE TABLE {table} (id INTEGER, email TEXT, phone TEXT, \
         first_name TEXT, last_name TEXT, zip TEXT, country TEXT, gender TEXT, birth_year INTEGER);"
    );
    for m in model {
        sql.push_str(&format!(
            "INSERT INTO {table} VALUES ({}, {}, {}, {}, {}, {}, {}, {}, {});",
            m.id,
            sql_text(Some(m.email)),
            sql_text(m.phone),
            sql_text(m.first),
            sql_text(m.last),
            sql_text(m.zip),
            sql_text(m.country),
            sql_text(m.gender),
            m.year.map_or("NULL".into(), |y| y.to_string()),
        ));
    }
    p.warehouse(&sql);
}

fn set_model(p: &Project, model: &[Person]) {
    set_table(p, "model", model);
}

fn project(fake: &MetaFake, delivery: &str) -> Project {
    let mut p = Project::new();
    p.env("META_TOKEN", TOKEN);
    p.write(
        "retl.yaml",
        &format!(
            "connections:\n  warehouse: {{ type: sqlite, path: warehouse.db }}\n  \
             meta: {{ type: meta_audience, access_token_env: META_TOKEN, base_url: \"{}\", \
             api_version: v21.0, delivery: {{ {delivery} }} }}\n",
            fake.base_url()
        ),
    );
    p
}

/// Writes sync `name` reading `table`, keyed by `key` (a model column).
fn write_sync(
    p: &Project,
    name: &str,
    table: &str,
    mode: &str,
    key: &str,
    mapping: &str,
    extra: &str,
) {
    p.write(
        &format!("syncs/{name}.yaml"),
        &format!(
            "name: {name}\nsource: {{ connection: warehouse, sql: \"select * from {table}\" }}\n\
             primary_key: {key}\ndestination: {{ connection: meta, object: \"{AUDIENCE}\" }}\n\
             mapping: {mapping}\nmode: {mode}\n{extra}"
        ),
    );
}

/// A project with the sync `audience` (model table, keyed by email).
fn audience_project(fake: &MetaFake, mode: &str, delivery: &str) -> Project {
    let p = project(fake, delivery);
    write_sync(&p, "audience", "model", mode, "email", MAPPING, "");
    p
}

/// Requests with `method` answered 200, and the rows each carried.
fn uploads(fake: &MetaFake, method: &str) -> Vec<usize> {
    fake.requests()
        .iter()
        .filter(|r| r.method == method && r.status == 200)
        .map(|r| r.records_in_batch.unwrap_or(0))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn mirror_keeps_the_audience_equal_to_the_model_with_hashed_normalised_identifiers() {
    let fake = fake().await;
    let p = audience_project(&fake, "mirror", "");
    let model = pick(&[1, 2, 3, 4]);
    set_model(&p, &model);
    let (code, v) = p.run_json(&["run", "audience"]).await;
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["creates"], 4, "{v}");
    assert_eq!(fake.audience(AUDIENCE), expected(&model));
    assert_eq!(fake.people(AUDIENCE).len(), 4);
    let sessions = fake.sessions(AUDIENCE);
    assert_eq!(sessions.len(), 1);
    assert_eq!(sessions[0].batch_seqs, vec![1]);
    assert!(sessions[0].last_batch_received);
    assert_eq!(sessions[0].estimated_num_total, Some(4));
    assert_eq!(sessions[0].num_invalid_entries, 0);

    // Bob leaves, Alice changes her last name, Eve arrives.
    let mut model = pick(&[1, 3, 4, 5]);
    model[0].last = Some("Smith");
    model[0].normal = &[
        ("EMAIL", "alice.smith@example.com"),
        ("PHONE", "16505550101"),
        ("FN", "alice"),
        ("LN", "smith"),
        ("ZIP", "94103"),
        ("COUNTRY", "us"),
        ("GEN", "f"),
        ("DOBY", "1985"),
    ];
    set_model(&p, &model);
    let (code, v) = p.run_json(&["run", "audience"]).await;
    assert_eq!(code, 0, "{v}");
    assert_eq!(
        (
            v["creates"].as_u64(),
            v["updates"].as_u64(),
            v["deletes"].as_u64()
        ),
        (Some(1), Some(1), Some(1)),
        "{v}"
    );
    assert_eq!(
        fake.audience(AUDIENCE),
        expected(&model),
        "the audience is exactly the model: Bob's identifiers are gone, Alice's old last name too"
    );
    assert_eq!(uploads(&fake, "POST"), vec![4, 2]);
    assert_eq!(uploads(&fake, "DELETE"), vec![1]);

    let before = fake.requests().len();
    let (code, v) = p.run_json(&["run", "audience"]).await;
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["unchanged"], 4, "{v}");
    assert_eq!(
        fake.requests().len(),
        before,
        "a run without changes sends nothing"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn upsert_adds_and_updates_but_never_removes() {
    let fake = fake().await;
    let p = audience_project(&fake, "upsert", "");
    set_model(&p, &pick(&[1, 2]));
    let (code, v) = p.run_json(&["run", "audience"]).await;
    assert_eq!((code, v["creates"].as_u64()), (0, Some(2)), "{v}");
    set_model(&p, &pick(&[1, 3]));
    let (code, v) = p.run_json(&["run", "audience"]).await;
    assert_eq!(code, 0, "{v}");
    assert_eq!(
        (v["creates"].as_u64(), v["deletes"].as_u64()),
        (Some(1), Some(0)),
        "{v}"
    );
    assert_eq!(fake.audience(AUDIENCE), expected(&pick(&[1, 2, 3])));
    assert!(uploads(&fake, "DELETE").is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn append_adds_new_people_only() {
    let fake = fake().await;
    let p = audience_project(&fake, "append", "");
    set_model(&p, &pick(&[1, 2]));
    let (code, v) = p.run_json(&["run", "audience"]).await;
    assert_eq!((code, v["creates"].as_u64()), (0, Some(2)), "{v}");
    let mut model = pick(&[1, 2, 4]);
    model[0].first = Some("Alicia");
    set_model(&p, &model);
    let (code, v) = p.run_json(&["run", "audience"]).await;
    assert_eq!(code, 0, "{v}");
    assert_eq!(
        (v["creates"].as_u64(), v["skipped"].as_u64()),
        (Some(1), Some(1)),
        "{v}"
    );
    assert_eq!(
        fake.audience(AUDIENCE),
        expected(&pick(&[1, 2, 4])),
        "Alice was not re-sent"
    );
    assert_eq!(uploads(&fake, "POST"), vec![2, 1]);
}

#[tokio::test(flavor = "multi_thread")]
async fn delete_only_removes_people_who_left_the_model() {
    let fake = fake().await;
    let p = audience_project(&fake, "upsert", "");
    set_model(&p, &pick(&[1, 2, 3, 4]));
    assert_eq!(p.run_json(&["run", "audience"]).await.0, 0);
    write_sync(&p, "audience", "model", "delete_only", "email", MAPPING, "");
    set_model(&p, &pick(&[1, 2, 4, 5]));
    let (code, v) = p.run_json(&["run", "audience"]).await;
    assert_eq!(code, 0, "{v}");
    assert_eq!(
        (v["deletes"].as_u64(), v["creates"].as_u64()),
        (Some(1), Some(0)),
        "{v}"
    );
    assert_eq!(fake.audience(AUDIENCE), expected(&pick(&[1, 2, 4])));
    assert_eq!(uploads(&fake, "DELETE"), vec![1]);
}

#[tokio::test(flavor = "multi_thread")]
async fn delete_mode_removes_the_people_the_model_lists() {
    let fake = fake().await;
    let p = audience_project(&fake, "upsert", "");
    set_model(&p, &pick(&[1, 2, 3, 4]));
    assert_eq!(p.run_json(&["run", "audience"]).await.0, 0);
    // Opt-out requests, by email only (a delete carries only the key fields).
    write_sync(
        &p,
        "optouts",
        "optout",
        "delete",
        "email",
        "{ EMAIL: email }",
        "",
    );
    set_table(&p, "optout", &pick(&[2, 4]));
    let (code, v) = p.run_json(&["run", "optouts"]).await;
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["deletes"], 2, "{v}");
    assert_eq!(
        fake.audience(AUDIENCE),
        expected(&pick(&[1, 3])),
        "every identifier of the removed people is gone"
    );
    let (code, v) = p.run_json(&["run", "optouts"]).await;
    assert_eq!((code, v["unchanged"].as_u64()), (0, Some(2)), "{v}");
    assert_eq!(uploads(&fake, "DELETE"), vec![2]);
}

/// `n` people with only an email.
fn emails(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("Person{i}@Example.com")).collect()
}

fn set_emails(p: &Project, list: &[String]) {
    let mut sql = String::from(
        "DROP TABLE IF EXISTS bulk; CREATE TABLE bulk (id INTEGER, email TEXT); BEGIN;",
    );
    for (i, e) in list.iter().enumerate() {
        sql.push_str(&format!("INSERT INTO bulk VALUES ({i}, '{e}');"));
    }
    sql.push_str("COMMIT;");
    p.warehouse(&sql);
}

#[tokio::test(flavor = "multi_thread")]
async fn uploads_carry_at_most_ten_thousand_rows() {
    let fake = fake().await;
    let p = project(&fake, "");
    write_sync(
        &p,
        "bulk",
        "bulk",
        "mirror",
        "email",
        "{ EMAIL: email }",
        "safety: { delete_threshold_pct: 100 }\n",
    );
    let all = emails(20_001);
    set_emails(&p, &all);
    let (code, v) = p.run_json(&["run", "bulk"]).await;
    assert_eq!((code, v["creates"].as_u64()), (0, Some(20_001)), "{v}");
    let mut posts = uploads(&fake, "POST");
    posts.sort_unstable();
    assert_eq!(posts, vec![1, 10_000, 10_000]);

    set_emails(&p, &all[..1_000]);
    let (code, v) = p.run_json(&["run", "bulk"]).await;
    assert_eq!((code, v["deletes"].as_u64()), (0, Some(19_001)), "{v}");
    let mut deletes = uploads(&fake, "DELETE");
    deletes.sort_unstable();
    assert_eq!(deletes, vec![9_001, 10_000]);
    let want: BTreeSet<String> = all[..1_000]
        .iter()
        .map(|e| sha(&e.to_lowercase()))
        .collect();
    assert_eq!(fake.members(AUDIENCE, "EMAIL"), want);
}

#[tokio::test(flavor = "multi_thread")]
async fn throttling_codes_are_waited_out_honouring_retry_after() {
    let fake = fake().await;
    // No budget, so each throttled answer says `Retry-After: 1`.
    fake.faults().set_rate_limit(None);
    let p = audience_project(&fake, "upsert", "");
    let model = pick(&[1, 2, 3]);
    set_model(&p, &model);
    fake.faults().burst_429(1);
    fake.set_throttle(MetaThrottle::custom_audience_buc());
    let t = Instant::now();
    let (code, v) = p.run_json(&["run", "audience"]).await;
    assert_eq!((code, v["creates"].as_u64()), (0, Some(3)), "{v}");
    assert!(
        t.elapsed() >= Duration::from_secs(1),
        "waited {:?}",
        t.elapsed()
    );
    // Codes 17 and 613 too, each run adding one person.
    let throttles = [
        MetaThrottle::user_request_limit(),
        MetaThrottle::ad_account(),
    ];
    for (throttle, next) in throttles.into_iter().zip([4, 5]) {
        fake.set_throttle(throttle);
        fake.faults().burst_429(1);
        let ids: Vec<i64> = (1..=next).collect();
        set_model(&p, &pick(&ids));
        let (code, v) = p.run_json(&["run", "audience"]).await;
        assert_eq!(code, 0, "{v}");
        assert_eq!(
            (v["creates"].as_u64(), v["failed"].as_u64()),
            (Some(1), Some(0)),
            "{v}"
        );
    }
    let statuses: Vec<u16> = fake.requests().iter().map(|r| r.status).collect();
    assert_eq!(statuses, vec![400, 200, 400, 200, 400, 200]);
    assert_eq!(fake.faults().stats().rate_limited, 3);
    assert_eq!(fake.audience(AUDIENCE), expected(&pick(&[1, 2, 3, 4, 5])));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rate_limited_run_waits_for_the_budget_and_delivers_everything() {
    let fake = fake().await;
    fake.faults()
        .set_rate_limit(Some(RateLimit::sliding(2, Duration::from_secs(2))));
    // Two attempts only: a retry before the window frees a slot would fail the records.
    let p = project(&fake, "batch_size: 10, concurrency: 1, max_attempts: 2");
    write_sync(
        &p,
        "bulk",
        "bulk",
        "upsert",
        "email",
        "{ EMAIL: email }",
        "",
    );
    let all = emails(50);
    set_emails(&p, &all);
    let (code, v) = p.run_json(&["run", "bulk"]).await;
    assert_eq!(code, 0, "{v}");
    assert_eq!(
        (v["creates"].as_u64(), v["failed"].as_u64()),
        (Some(50), Some(0)),
        "{v}"
    );
    assert!(fake.faults().stats().rate_limited >= 1);
    assert_eq!(uploads(&fake, "POST"), vec![10; 5]);
    assert_eq!(fake.members(AUDIENCE, "EMAIL").len(), 50);
}

#[tokio::test(flavor = "multi_thread")]
async fn thirty_percent_server_errors_are_retried_until_everything_is_delivered() {
    let fake = fake().await;
    fake.faults().set_plan(FaultPlan {
        error_ratio: 0.3,
        error_seed: 7,
        ..FaultPlan::default()
    });
    let p = project(&fake, "batch_size: 50");
    write_sync(
        &p,
        "bulk",
        "bulk",
        "upsert",
        "email",
        "{ EMAIL: email }",
        "",
    );
    let all = emails(600);
    set_emails(&p, &all);
    let (code, v) = p.run_json(&["run", "bulk"]).await;
    assert_eq!(code, 0, "{v}");
    assert_eq!(
        (v["creates"].as_u64(), v["failed"].as_u64()),
        (Some(600), Some(0)),
        "{v}"
    );
    assert!(fake.faults().stats().server_errors > 0);
    let want: BTreeSet<String> = all.iter().map(|e| sha(&e.to_lowercase())).collect();
    assert_eq!(fake.members(AUDIENCE, "EMAIL"), want, "nothing lost");
    assert_eq!(fake.people(AUDIENCE).len(), 600, "nothing duplicated");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_request_that_hangs_times_out_and_is_sent_again() {
    let fake = fake().await;
    fake.faults().timeout_next(1);
    let p = audience_project(&fake, "upsert", "timeout_seconds: 1");
    let model = pick(&[1, 2]);
    set_model(&p, &model);
    let t = Instant::now();
    let (code, v) = p.run_json(&["run", "audience"]).await;
    assert_eq!((code, v["creates"].as_u64()), (0, Some(2)), "{v}");
    assert_eq!(fake.faults().stats().timeouts, 1);
    assert!(t.elapsed() < Duration::from_secs(30));
    assert_eq!(fake.audience(AUDIENCE), expected(&model));
}

#[tokio::test(flavor = "multi_thread")]
async fn slow_answers_are_waited_for() {
    let fake = fake().await;
    fake.faults().set_slow(Duration::from_millis(700));
    let p = audience_project(&fake, "mirror", "batch_size: 2");
    let model = pick(&[1, 2, 3, 4, 5]);
    set_model(&p, &model);
    let (code, v) = p.run_json(&["run", "audience"]).await;
    assert_eq!((code, v["creates"].as_u64()), (0, Some(5)), "{v}");
    assert_eq!(fake.audience(AUDIENCE), expected(&model));
}

/// A project keyed by EXTERN_ID (the CRM id), which Meta takes unhashed.
fn crm_project(fake: &MetaFake, delivery: &str) -> Project {
    let p = project(fake, delivery);
    write_sync(
        &p,
        "crm",
        "model",
        "upsert",
        "id",
        "{ EXTERN_ID: id, EMAIL: email, PHONE: phone }",
        "",
    );
    p
}

#[tokio::test(flavor = "multi_thread")]
async fn an_invalid_entry_is_rejected_the_log_shows_only_hashes_and_it_is_resent_until_fixed() {
    let fake = fake().await;
    let blocked = sha("bob@example.org");
    fake.add_rule(Rule::custom("EMAIL", move |v| {
        v.as_str() != Some(blocked.as_str())
    }));
    let p = crm_project(&fake, "");
    let model = pick(&[1, 2, 4]);
    set_model(&p, &model);
    let (code, v) = p.run_json(&["run", "crm"]).await;
    assert_eq!(code, 1, "{v}");
    assert_eq!(v["status"], "partially_failed");
    assert_eq!(
        (v["creates"].as_u64(), v["rejected"].as_u64()),
        (Some(2), Some(1)),
        "{v}"
    );
    assert_eq!(uploads(&fake, "POST"), vec![3], "one upload for the three");
    let externs: BTreeSet<String> = ["1", "4"].iter().map(|s| s.to_string()).collect();
    assert_eq!(
        fake.members(AUDIENCE, "EXTERN_ID"),
        externs,
        "EXTERN_ID is sent unhashed"
    );

    let run_id = v["run_id"].as_str().unwrap().to_string();
    let (_, errors) = p.run_json(&["errors", &run_id]).await;
    let errors = errors["errors"].clone();
    assert_eq!(errors.as_array().map(Vec::len), Some(1), "{errors}");
    let e = &errors[0];
    assert_eq!(
        (e["key"].as_str(), e["code"].as_str()),
        (Some("2"), Some("invalid_entry"))
    );
    assert!(e["message"].as_str().unwrap().contains("EMAIL"), "{e}");
    assert_eq!(e["values"]["EMAIL"], sha("bob@example.org"));
    assert_eq!(e["values"]["PHONE"], sha("442079460958"));
    assert_eq!(e["values"]["EXTERN_ID"], "2");
    let text = p.run(&["errors", &run_id]).await.stdout;
    for clear in ["bob@example.org", "0044 20 7946 0958", "442079460958"] {
        assert!(!text.contains(clear), "`{clear}` shown in clear:\n{text}");
        assert!(!errors.to_string().contains(clear), "{errors}");
    }
    assert!(text.contains(&sha("bob@example.org")), "{text}");

    // Only Bob is sent again, and refused again while Meta refuses his email.
    fake.clear_requests();
    let (_, v) = p.run_json(&["run", "crm"]).await;
    assert_eq!(
        (v["rejected"].as_u64(), v["unchanged"].as_u64()),
        (Some(1), Some(2)),
        "{v}"
    );
    assert_eq!(uploads(&fake, "POST"), vec![1]);

    let mut fixed = model.clone();
    fixed[1].email = "robert@example.org";
    set_model(&p, &fixed);
    let (code, v) = p.run_json(&["run", "crm"]).await;
    assert_eq!((code, v["creates"].as_u64()), (0, Some(1)), "{v}");
    assert!(fake
        .members(AUDIENCE, "EMAIL")
        .contains(&sha("robert@example.org")));
    assert_eq!(fake.members(AUDIENCE, "EXTERN_ID").len(), 3);
}

#[tokio::test(flavor = "multi_thread")]
async fn invalid_entries_meta_does_not_sample_are_found_by_splitting_the_batch() {
    let fake = fake().await;
    // Twelve refused ids, more than the ten samples Meta names.
    fake.add_rule(Rule::custom("EXTERN_ID", |v| {
        v.as_str()
            .and_then(|s| s.parse::<u32>().ok())
            .is_none_or(|n| n % 5 != 0)
    }));
    let p = project(&fake, "");
    write_sync(
        &p,
        "bulk",
        "bulk",
        "upsert",
        "id",
        "{ EXTERN_ID: id, EMAIL: email }",
        "",
    );
    let all = emails(60);
    set_emails(&p, &all);
    let (code, v) = p.run_json(&["run", "bulk"]).await;
    assert_eq!(code, 1, "{v}");
    assert_eq!(
        (v["creates"].as_u64(), v["rejected"].as_u64()),
        (Some(48), Some(12)),
        "{v}"
    );
    let (_, errors) = p.run_json(&["errors", v["run_id"].as_str().unwrap()]).await;
    let errors = errors["errors"].clone();
    let mut keys: Vec<u32> = errors
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            assert_eq!(e["code"], "invalid_entry", "{e}");
            e["key"].as_str().unwrap().parse().unwrap()
        })
        .collect();
    keys.sort_unstable();
    assert_eq!(keys, (0..60).filter(|n| n % 5 == 0).collect::<Vec<_>>());
    assert_eq!(fake.members(AUDIENCE, "EXTERN_ID").len(), 48);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_value_that_normalises_to_nothing_is_rejected_without_being_sent() {
    let fake = fake().await;
    let p = crm_project(&fake, "");
    let mut model = pick(&[1, 2]);
    model[1].phone = Some("n/a");
    set_model(&p, &model);
    let (code, v) = p.run_json(&["run", "crm"]).await;
    assert_eq!(code, 1, "{v}");
    assert_eq!(
        (v["creates"].as_u64(), v["rejected"].as_u64()),
        (Some(1), Some(1)),
        "{v}"
    );
    assert_eq!(
        uploads(&fake, "POST"),
        vec![1],
        "the bad record never left retl"
    );
    let (_, errors) = p.run_json(&["errors", v["run_id"].as_str().unwrap()]).await;
    let errors = errors["errors"].clone();
    let e = &errors[0];
    assert_eq!(
        (e["key"].as_str(), e["code"].as_str()),
        (Some("2"), Some("invalid_value"))
    );
    let message = e["message"].as_str().unwrap();
    assert!(
        message.contains("PHONE") && message.contains("empty"),
        "{message}"
    );
    assert_eq!(e["values"]["PHONE"], "<redacted>");
    assert_eq!(e["values"]["EMAIL"], sha("bob@example.org"));
}

#[tokio::test(flavor = "multi_thread")]
async fn an_invalid_token_stops_the_delivery() {
    let fake = fake().await;
    let mut p = audience_project(&fake, "upsert", "batch_size: 1, concurrency: 1");
    p.env("META_TOKEN", "expired-token");
    set_model(&p, &pick(&[1, 2, 3]));
    let (code, v) = p.run_json(&["run", "audience"]).await;
    assert_eq!(code, 1, "{v}");
    assert_eq!(v["status"], "failed", "{v}");
    let error = v["error"].as_str().unwrap_or_default();
    assert!(error.contains("(#190)"), "{v}");
    assert!(!error.contains("expired-token"), "{v}");
    assert_eq!(
        fake.requests().len(),
        1,
        "delivery stopped after the first refusal"
    );
    assert!(fake.audience(AUDIENCE).is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_key_that_cannot_identify_a_person_is_refused_before_anything_is_sent() {
    let fake = fake().await;
    let p = project(&fake, "");
    write_sync(
        &p,
        "names",
        "model",
        "mirror",
        "first_name",
        "{ EMAIL: email, FN: first_name }",
        "",
    );
    set_model(&p, &pick(&[1, 2]));
    let out = p.run(&["run", "names"]).await;
    assert_ne!(out.code, 0);
    let all = format!("{}{}", out.stdout, out.stderr);
    assert!(all.contains("does not identify a person"), "{all}");
    assert!(all.contains("EMAIL, PHONE, MADID or EXTERN_ID"), "{all}");
    assert!(fake.requests().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_sync_keyed_on_email_shows_only_the_hashed_key_in_the_record_log() {
    let fake = fake().await;
    let blocked = sha("bob@example.org");
    fake.add_rule(Rule::custom("EMAIL", move |v| {
        v.as_str() != Some(blocked.as_str())
    }));
    let p = project(&fake, "");
    write_sync(
        &p,
        "by_email",
        "model",
        "mirror",
        "email",
        "{ EMAIL: email, PHONE: phone }",
        "",
    );
    set_model(&p, &pick(&[1, 2, 4]));
    let (code, v) = p.run_json(&["run", "by_email"]).await;
    assert_eq!(code, 1, "{v}");
    assert_eq!(v["rejected"], 1, "{v}");
    let (_, errors) = p.run_json(&["errors", v["run_id"].as_str().unwrap()]).await;
    let errors = errors["errors"].clone();
    assert_eq!(errors[0]["key"], sha("bob@example.org"), "{errors}");
    assert!(!errors.to_string().contains("bob@example.org"), "{errors}");
}
