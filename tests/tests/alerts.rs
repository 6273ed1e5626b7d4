//! Alert rules on the local host: a run that rejects more records than `alerts:` allows
//! prints one alert line on stderr and posts it to a Slack-compatible webhook (a local HTTP
//! receiver), retried through the request framework, carrying no record value.

use retl_tests::fixtures::webhook_append_project;
use retl_tests::http::{Scripted, WebhookReceiver};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejections_over_the_threshold_are_printed_and_posted_without_record_values() {
    let destination = WebhookReceiver::start().await;
    destination.reject(&["1", "2"]);
    let slack = WebhookReceiver::start().await;
    // The chat service is briefly down: the post is retried.
    slack.script(&[Scripted::Status(503, None)]);
    let mut p = webhook_append_project(&destination.url, "batch_size: 10", 4);
    p.warehouse("UPDATE model SET name = 'private-value-' || id;");
    p.write(
        "syncs/people.yaml",
        "name: people\nsource: { connection: warehouse, sql: \"select id, name from model\" }\n\
         primary_key: id\ndestination: { connection: hook, object: people }\n\
         mapping: { id: id, name: name }\nmode: append\n\
         alerts: { rejected_over_pct: 25, runtime_over_minutes: 60, slack_webhook_url_env: TEAM_SLACK_URL }\n",
    );
    p.env("TEAM_SLACK_URL", &slack.url);

    let out = p.run(&["run", "people", "--json"]).await;
    assert_eq!(
        out.code, 1,
        "partially failed: {}{}",
        out.stdout, out.stderr
    );
    let run = out.json();
    assert_eq!(run["rejected"], 2, "{run}");
    let run_id = run["run_id"].as_str().expect("a run id");
    let line = format!(
        "alert: sync people run {run_id}: rejected_records: 2 of 4 rows rejected (50%, more than 25%); `retl errors {run_id}` lists them"
    );
    let alerts: Vec<&str> = out
        .stderr
        .lines()
        .filter(|l| l.starts_with("alert:"))
        .collect();
    assert_eq!(
        alerts,
        [line.as_str()],
        "one line, the rule that fired:\n{}",
        out.stderr
    );

    let posts = slack.received();
    assert_eq!(
        posts.iter().map(|r| r.status).collect::<Vec<_>>(),
        [503, 200],
        "retried once: {posts:?}"
    );
    let body = &posts[1].body;
    assert_eq!(body["text"], line.as_str(), "{body}");
    let sent = body.to_string();
    for private in ["private-value-", "TEAM_SLACK_URL", slack.url.as_str()] {
        assert!(
            !sent.contains(private),
            "the post carries {private}: {sent}"
        );
    }

    // A clean run sets off nothing: no line, no post.
    destination.clear_rejections();
    p.warehouse("INSERT INTO model VALUES (10, 'private-value-10');");
    let out = p.run(&["run", "people"]).await;
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    assert!(!out.stderr.contains("alert:"), "{}", out.stderr);
    assert_eq!(slack.received().len(), 2);
}
