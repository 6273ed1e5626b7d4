//! Errors a user can act on (the fault campaign's findings): a destination that is out of
//! connections is a transient failure, not a sync that "does not fit"; a failed run prints
//! what failed and no plan.

use retl_tests::fixtures::{people_sync, project_yaml, set_model};
use retl_tests::{Pg, Project};

#[tokio::test]
async fn too_many_connections_is_transient() {
    let pg = Pg::new("too_many_conns").await;
    pg.exec("CREATE TABLE people (id integer PRIMARY KEY, name text NOT NULL)")
        .await;
    // A role allowed no connection: PostgreSQL answers 53300 (too_many_connections).
    pg.exec(
        "DO $$ BEGIN CREATE ROLE retl_no_slots LOGIN CONNECTION LIMIT 0;
         EXCEPTION WHEN duplicate_object THEN NULL; END $$;",
    )
    .await;
    let url = pg.url.replacen("postgres@", "retl_no_slots@", 1);
    assert_ne!(url, pg.url, "the test URL names its user: {}", pg.url);
    let p = Project::new();
    p.write(
        "retl.yaml",
        &format!(
            "connections:\n  warehouse: {{ type: sqlite, path: warehouse.db }}\n  \
             app_db: {{ type: postgres, url: \"{url}\" }}\n"
        ),
    );
    p.write("syncs/people.yaml", &people_sync(&pg, "upsert", ""));
    set_model(&p, &[(1, "Alice")]);
    let out = p.retl(&["run", "people"]);
    let all = format!("{}{}", out.stdout, out.stderr);
    assert_eq!(out.code, 1, "a transient failure exits 1: {all}");
    assert!(all.contains("53300"), "the server's code is shown: {all}");
    assert!(
        !all.contains("does not fit the sync"),
        "nothing is wrong with the sync: {all}"
    );
    assert!(
        !all.contains("No changes"),
        "a failed run prints no plan: {all}"
    );
}

#[tokio::test]
async fn a_failed_plan_says_what_failed_and_nothing_else() {
    let pg = Pg::new("failed_plan_text").await;
    pg.exec("CREATE TABLE people (id integer PRIMARY KEY, name text NOT NULL)")
        .await;
    let p = Project::new();
    p.write("retl.yaml", &project_yaml(&pg));
    // The mapping reads a column the model does not return.
    p.write(
        "syncs/people.yaml",
        &people_sync(&pg, "upsert", "").replace("name: name }", "name: full_name }"),
    );
    set_model(&p, &[(1, "Alice")]);
    for cmd in ["plan", "run"] {
        let out = p.retl(&[cmd, "people"]);
        let all = format!("{}{}", out.stdout, out.stderr);
        assert_ne!(out.code, 0, "{all}");
        assert!(
            all.contains("full_name"),
            "{cmd}: names the missing column: {all}"
        );
        for noise in ["No changes", "Applied:", "Plan: +", "-0."] {
            assert!(!all.contains(noise), "{cmd} printed `{noise}`: {all}");
        }
    }
}
