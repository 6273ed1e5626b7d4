//! The Amazon SQS destination against moto: event forwarding with SendMessageBatch (10
//! entries per request), FIFO groups and deduplication ids, per-entry failures.

use retl_tests::fixtures::set_model;
use retl_tests::moto::Moto;
use retl_tests::Project;
use serde_json::Value;

async fn queue(moto: &Moto, name: &str) -> (aws_sdk_sqs::Client, String) {
    let client = aws_sdk_sqs::Client::new(&moto.sdk_config().await);
    let mut req = client.create_queue().queue_name(name);
    if name.ends_with(".fifo") {
        req = req.attributes(aws_sdk_sqs::types::QueueAttributeName::FifoQueue, "true");
    }
    let url = req
        .send()
        .await
        .expect("create queue")
        .queue_url()
        .unwrap()
        .to_string();
    (client, url)
}

async fn drain(client: &aws_sdk_sqs::Client, url: &str) -> Vec<(Value, Option<String>)> {
    let mut out = Vec::new();
    loop {
        let got = client
            .receive_message()
            .queue_url(url)
            .max_number_of_messages(10)
            .message_system_attribute_names(
                aws_sdk_sqs::types::MessageSystemAttributeName::MessageGroupId,
            )
            .send()
            .await
            .expect("receive");
        let msgs = got.messages();
        if msgs.is_empty() {
            return out;
        }
        for m in msgs {
            let body: Value = serde_json::from_str(m.body().unwrap()).unwrap();
            let group = m
                .attributes()
                .and_then(|a| {
                    a.get(&aws_sdk_sqs::types::MessageSystemAttributeName::MessageGroupId)
                })
                .cloned();
            out.push((body, group));
            client
                .delete_message()
                .queue_url(url)
                .receipt_handle(m.receipt_handle().unwrap())
                .send()
                .await
                .expect("delete");
        }
    }
}

fn project(moto: &Moto, url: &str, mode: &str) -> Project {
    let mut p = Project::new();
    for (k, v) in [
        ("AWS_ENDPOINT_URL", moto.endpoint.as_str()),
        ("AWS_REGION", "us-east-1"),
        ("AWS_ACCESS_KEY_ID", "test"),
        ("AWS_SECRET_ACCESS_KEY", "test"),
    ] {
        p.env(k, v);
    }
    p.write(
        "retl.yaml",
        &format!("connections:\n  warehouse: {{ type: sqlite, path: warehouse.db }}\n  events: {{ type: sqs, queue_url: \"{url}\" }}\n"),
    );
    p.write(
        "syncs/signups.yaml",
        &format!(
            "name: signups\nsource: {{ connection: warehouse, sql: \"select id, name from model\" }}\n\
             primary_key: id\ndestination: {{ connection: events, object: signups }}\n\
             mapping: {{ id: id, name: name }}\nmode: {mode}\n"
        ),
    );
    p
}

#[tokio::test(flavor = "multi_thread")]
async fn append_forwards_each_new_record_once_in_batches_of_ten() {
    let moto = Moto::start();
    let (client, url) = queue(&moto, "signups").await;
    let p = project(&moto, &url, "append");
    let rows: Vec<(i64, String)> = (1..=25).map(|i| (i, format!("user {i}"))).collect();
    let refs: Vec<(i64, &str)> = rows.iter().map(|(i, n)| (*i, n.as_str())).collect();
    set_model(&p, &refs);
    let (code, v) = p.run_json(&["run", "signups"]).await;
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["creates"], 25, "{v}");
    let msgs = drain(&client, &url).await;
    assert_eq!(msgs.len(), 25);
    let mut keys: Vec<i64> = msgs
        .iter()
        .map(|(b, _)| b["key"].as_str().unwrap().parse().unwrap())
        .collect();
    keys.sort();
    assert_eq!(
        keys,
        (1..=25).collect::<Vec<_>>(),
        "every record exactly once"
    );
    assert!(msgs
        .iter()
        .all(|(b, _)| b["op"] == "create" && b["sync"] == "signups"));
    let first = msgs.iter().find(|(b, _)| b["key"] == "7").unwrap();
    assert_eq!(first.0["fields"]["name"], "user 7");

    // A second run forwards only the new record.
    let mut more = refs.clone();
    more.push((26, "user 26"));
    set_model(&p, &more);
    let (_, v) = p.run_json(&["run", "signups"]).await;
    assert_eq!(v["creates"], 1, "{v}");
    let msgs = drain(&client, &url).await;
    assert_eq!(msgs.len(), 1);
    assert_eq!(msgs[0].0["key"], "26");
}

#[tokio::test(flavor = "multi_thread")]
async fn fifo_queues_get_a_group_per_key_and_mirror_sends_deletes() {
    let moto = Moto::start();
    let (client, url) = queue(&moto, "changes.fifo").await;
    let p = project(&moto, &url, "mirror");
    set_model(&p, &[(1, "a"), (2, "b")]);
    let (code, v) = p.run_json(&["run", "signups"]).await;
    assert_eq!(code, 0, "{v}");
    let msgs = drain(&client, &url).await;
    assert_eq!(msgs.len(), 2);
    for (body, group) in &msgs {
        assert_eq!(
            group.as_deref(),
            body["key"].as_str(),
            "the group is the record key"
        );
        assert_eq!(body["op"], "upsert");
    }
    set_model(&p, &[(1, "a")]);
    let (_, v) = p.run_json(&["run", "signups"]).await;
    assert_eq!(v["deletes"], 1, "{v}");
    let msgs = drain(&client, &url).await;
    assert_eq!(msgs.len(), 1);
    assert_eq!(msgs[0].0["op"], "delete");
    assert_eq!(msgs[0].0["key"], "2");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_missing_queue_fails_before_anything_is_sent() {
    let moto = Moto::start();
    let p = project(
        &moto,
        &format!("{}/123456789012/nope", moto.endpoint),
        "append",
    );
    set_model(&p, &[(1, "a")]);
    let (code, v) = p.run_json(&["run", "signups"]).await;
    assert_eq!(code, 2, "{v}");
    assert!(
        v["error"].as_str().unwrap().contains("is not reachable"),
        "{v}"
    );
}
