//! `--full-resync` lists the destination again: mirror then deletes records that appeared in
//! the destination after the first run (seed 000: mirror keeps an exact copy), while a normal
//! run compares with what retl last delivered and leaves them; `delete_scope: synced` never
//! deletes what retl did not write.

use retl_tests::fixtures::{people, people_project, set_model};
use serde_json::json;

#[tokio::test]
async fn a_full_resync_finds_and_deletes_strays_in_mirror() {
    let (p, pg) = people_project("full_resync_strays", "mirror", &[], "").await;
    set_model(&p, &[(1, "Alice"), (2, "Bob")]);
    let (code, v) = p.retl_json(&["run", "people"]);
    assert_eq!(code, 0, "{v}");
    pg.exec("INSERT INTO people VALUES (99, 'Stray')").await;

    let (_, v) = p.retl_json(&["run", "people"]);
    assert_eq!(
        v["deletes"], 0,
        "a normal run compares with the key set: {v}"
    );
    let (code, v) = p.retl_json(&["run", "people", "--full-resync"]);
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["deletes"], 1, "{v}");
    assert_eq!(
        people(&pg).await,
        json!([{"id": 1, "name": "Alice"}, {"id": 2, "name": "Bob"}])
    );
}

#[tokio::test]
async fn a_full_resync_with_scope_synced_keeps_strays() {
    let (p, pg) =
        people_project("full_resync_scope", "mirror", &[], "delete_scope: synced\n").await;
    set_model(&p, &[(1, "Alice"), (3, "Carol"), (4, "Dave")]);
    assert_eq!(p.retl_json(&["run", "people"]).0, 0);
    pg.exec("INSERT INTO people VALUES (99, 'Stray')").await;
    set_model(&p, &[(2, "Bob"), (3, "Carol"), (4, "Dave")]);
    let (code, v) = p.retl_json(&["run", "people", "--full-resync"]);
    assert_eq!(code, 0, "{v}");
    assert_eq!(
        v["deletes"], 1,
        "Alice, whom retl wrote, goes; the stray stays: {v}"
    );
    assert_eq!(
        people(&pg).await,
        json!([
            {"id": 2, "name": "Bob"},
            {"id": 3, "name": "Carol"},
            {"id": 4, "name": "Dave"},
            {"id": 99, "name": "Stray"}
        ])
    );
}
