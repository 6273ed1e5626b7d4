//! `retl verify`: a destination changed behind retl's back (a record deleted, one added, one
//! edited) is reported as missing, extra and stale; `--repair` makes the key set say so, and
//! the next mirror run puts the destination back to the model.

use retl_tests::fixtures::{people, people_project, set_model};
use serde_json::{json, Value};

#[tokio::test]
async fn verify_finds_missing_extra_and_stale_records_and_repair_lets_a_run_fix_them() {
    let (p, pg) = people_project("verify", "mirror", &[], "").await;
    let model = [(1, "Alice"), (2, "Bob"), (3, "Carol"), (4, "Dave")];
    set_model(&p, &model);
    assert_eq!(p.retl_json(&["run", "people"]).0, 0);
    let (code, v) = p.retl_json(&["verify", "people"]);
    assert_eq!((code, v["matches"].clone()), (0, json!(true)), "{v}");

    pg.exec(
        "DELETE FROM people WHERE id = 2;
         INSERT INTO people VALUES (99, 'Stray');
         UPDATE people SET name = 'Caroline' WHERE id = 3;",
    )
    .await;
    let (code, v) = p.retl_json(&["verify", "people"]);
    assert_eq!(code, 1, "differences exit 1: {v}");
    let r = &v["report"];
    assert_eq!(
        (r["missing"].clone(), r["extra"].clone(), r["stale"].clone()),
        (json!(1), json!(1), json!(1)),
        "{v}"
    );
    let mut sample: Vec<Value> = r["sample"].as_array().unwrap().clone();
    sample.sort_by_key(|s| s.to_string());
    assert_eq!(
        json!(sample),
        json!([["extra", "99"], ["missing", "2"], ["stale", "3"]]),
        "{v}"
    );
    let text = p.retl(&["verify", "people"]).stdout;
    assert!(
        text.contains("1 record: missing from the destination (keys 2)"),
        "{text}"
    );

    // A normal run does not see the drift: it compares with the key set.
    let (_, v) = p.retl_json(&["run", "people"]);
    assert_eq!(
        v["creates"].as_u64().unwrap() + v["updates"].as_u64().unwrap(),
        0,
        "{v}"
    );

    let (code, v) = p.retl_json(&["verify", "people", "--repair"]);
    assert_eq!(
        (code, v["report"]["repaired"].clone()),
        (0, json!(true)),
        "{v}"
    );
    let (code, v) = p.retl_json(&["run", "people"]);
    assert_eq!(code, 0, "{v}");
    assert_eq!(
        (
            v["creates"].clone(),
            v["updates"].clone(),
            v["deletes"].clone()
        ),
        (json!(1), json!(1), json!(1)),
        "{v}"
    );
    assert_eq!(
        people(&pg).await,
        json!([
            {"id": 1, "name": "Alice"}, {"id": 2, "name": "Bob"},
            {"id": 3, "name": "Carol"}, {"id": 4, "name": "Dave"}
        ])
    );
    let (code, v) = p.retl_json(&["verify", "people"]);
    assert_eq!((code, v["matches"].clone()), (0, json!(true)), "{v}");
}
