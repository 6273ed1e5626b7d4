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

/// A project whose mapping reads `full_name`, a column the model does not return.
async fn mapping_to_a_missing_column(test: &str) -> (Project, Pg) {
    let pg = Pg::new(test).await;
    pg.exec("CREATE TABLE people (id integer PRIMARY KEY, name text NOT NULL)")
        .await;
    let p = Project::new();
    p.write("retl.yaml", &project_yaml(&pg));
    p.write(
        "syncs/people.yaml",
        &people_sync(&pg, "upsert", "").replace("name: name }", "name: full_name }"),
    );
    set_model(&p, &[(1, "Alice")]);
    (p, pg)
}

#[tokio::test]
async fn a_failed_plan_says_what_failed_and_nothing_else() {
    let (p, _pg) = mapping_to_a_missing_column("failed_plan_text").await;
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

/// What a damaged local state says: the file, that it is damaged, and what to do; never the
/// SQLite driver's words alone. A command stopped by it exits 1 (README: failed).
fn assert_names_the_damaged_state(p: &Project, out: &retl_tests::RetlOutput) {
    let all = format!("{}{}", out.stdout, out.stderr);
    assert_eq!(out.code, 1, "{all}");
    let file = p.path().join(".retl/state.db");
    assert!(
        all.contains(&format!(
            "the local state file {} is damaged",
            file.display()
        )),
        "{all}"
    );
    assert!(
        all.contains(&format!("mv {0} {0}.damaged", file.display())),
        "{all}"
    );
    for driver in ["Conversion error", "Invalid column type"] {
        assert!(
            !all.contains(driver) || all.contains("is damaged"),
            "{driver}: {all}"
        );
    }
    assert_eq!(all.matches("is damaged").count(), 1, "said once: {all}");
}

fn state_project() -> Project {
    let p = Project::new();
    p.write(
        "retl.yaml",
        "connections:\n  warehouse: { type: sqlite, path: warehouse.db }\n",
    );
    p
}

#[test]
fn a_state_file_of_garbage_names_the_file_and_the_fix() {
    let p = state_project();
    std::fs::create_dir_all(p.path().join(".retl")).unwrap();
    std::fs::write(p.path().join(".retl/state.db"), vec![0xAB; 8192]).unwrap();
    let out = p.retl(&["runs"]);
    assert_names_the_damaged_state(&p, &out);
}

#[test]
fn a_column_of_the_wrong_type_names_the_file_and_the_fix() {
    let p = state_project();
    assert_eq!(p.retl(&["runs"]).code, 0, "creates the state");
    let db = rusqlite::Connection::open(p.path().join(".retl/state.db")).unwrap();
    db.execute_batch("INSERT INTO runs (run_id, sync, body) VALUES ('r1', 'people', 42)")
        .unwrap();
    drop(db);
    let out = p.retl(&["runs"]);
    assert_names_the_damaged_state(&p, &out);
}

#[test]
fn a_truncated_state_file_names_the_file_and_the_fix() {
    let p = state_project();
    assert_eq!(p.retl(&["runs"]).code, 0, "creates the state");
    let path = p.path().join(".retl/state.db");
    let db = rusqlite::Connection::open(&path).unwrap();
    let body = "x".repeat(300);
    for i in 0..2000 {
        db.execute(
            "INSERT INTO runs (run_id, sync, body) VALUES (?1, 'people', ?2)",
            rusqlite::params![format!("r{i:05}"), body],
        )
        .unwrap();
    }
    db.pragma_update(None, "journal_mode", "DELETE").unwrap();
    drop(db);
    let len = std::fs::metadata(&path).unwrap().len();
    let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    f.set_len(len / 2).unwrap();
    drop(f);
    let out = p.retl(&["runs"]);
    assert_names_the_damaged_state(&p, &out);
}

#[tokio::test]
async fn preview_reports_a_mapping_to_a_column_the_model_lacks() {
    let (p, _pg) = mapping_to_a_missing_column("preview_missing_col").await;
    let out = p.retl(&["preview", "people"]);
    let all = format!("{}{}", out.stdout, out.stderr);
    assert_eq!(out.code, 2, "as plan reports it: {all}");
    assert!(
        all.contains("the model does not return column `full_name` (mapped to `name`)"),
        "{all}"
    );
    assert!(!all.contains("null"), "no sample of nulls: {all}");
}

#[tokio::test]
async fn an_approval_notice_is_printed_once() {
    let pg = Pg::new("approval_once").await;
    pg.exec("CREATE TABLE people (id integer PRIMARY KEY, name text NOT NULL)")
        .await;
    let p = Project::new();
    p.write("retl.yaml", &project_yaml(&pg));
    p.write("syncs/people.yaml", &people_sync(&pg, "mirror", ""));
    set_model(&p, &[(1, "A"), (2, "B"), (3, "C"), (4, "D")]);
    assert_eq!(p.retl(&["run", "people"]).code, 0);
    set_model(&p, &[(1, "A")]);
    let out = p.retl(&["run", "people"]);
    let all = format!("{}{}", out.stdout, out.stderr);
    assert_eq!(out.code, 3, "{all}");
    assert_eq!(all.matches("retl approve").count(), 1, "{all}");
    assert_eq!(all.matches("retl reject").count(), 1, "{all}");
}

#[tokio::test]
async fn no_ansi_colours_when_not_a_terminal() {
    let pg = Pg::new("no_ansi").await;
    pg.exec("CREATE TABLE people (id integer PRIMARY KEY, name text NOT NULL)")
        .await;
    let p = Project::new();
    p.write("retl.yaml", &project_yaml(&pg));
    p.write("syncs/people.yaml", &people_sync(&pg, "mirror", ""));
    set_model(&p, &[(1, "A"), (2, "B")]);
    for args in [
        &["-vv", "run", "people"][..],
        &["plan", "people", "--show-deletes"],
        &["preview", "people"],
        &["runs"],
        &["validate"],
        &["run", "nobody"],
        &["--help"],
    ] {
        let out = p.retl(args);
        for (name, text) in [("stdout", &out.stdout), ("stderr", &out.stderr)] {
            assert!(
                !text.contains('\u{1b}'),
                "{args:?} wrote an escape sequence to {name}: {text:?}"
            );
        }
    }
}
