//! The contract of [`ObjectStore`]: blobs by key, whole and by range, listed sorted under a
//! prefix, deleted by prefix. Every backend runs every function here.

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use retl_shared::ports::{ObjectStore, StoreError};

/// Put, replace, get, ranges (empty, past the end), missing objects, listing and deleting
/// under a prefix (twice: deleting nothing is fine).
pub async fn puts_gets_ranges_lists_and_deletes(s: &dyn ObjectStore) {
    s.put("runs/r1/a.bin", Bytes::from_static(b"hello world"))
        .await
        .unwrap();
    s.put("runs/r1/b.bin", Bytes::from_static(b"x"))
        .await
        .unwrap();
    s.put("runs/r2/c.bin", Bytes::from_static(b"y"))
        .await
        .unwrap();

    assert_eq!(
        s.get("runs/r1/a.bin").await.unwrap(),
        Bytes::from_static(b"hello world")
    );
    assert_eq!(
        s.get_range("runs/r1/a.bin", 6, 5).await.unwrap(),
        Bytes::from_static(b"world")
    );
    assert_eq!(
        s.get_range("runs/r1/a.bin", 0, 0).await.unwrap(),
        Bytes::new()
    );
    let past_end = s.get_range("runs/r1/a.bin", 6, 10).await;
    assert!(
        matches!(past_end, Err(StoreError::Other(_))),
        "{past_end:?}"
    );
    let missing = s.get("runs/r1/nope").await;
    assert!(
        matches!(missing, Err(StoreError::NotFound(_))),
        "{missing:?}"
    );
    let missing = s.get_range("runs/r1/nope", 0, 1).await;
    assert!(
        matches!(missing, Err(StoreError::NotFound(_))),
        "{missing:?}"
    );

    s.put("runs/r1/b.bin", Bytes::from_static(b"replaced"))
        .await
        .unwrap();
    assert_eq!(
        s.get("runs/r1/b.bin").await.unwrap(),
        Bytes::from_static(b"replaced")
    );
    s.put("runs/r1/empty.bin", Bytes::new()).await.unwrap();
    assert_eq!(s.get("runs/r1/empty.bin").await.unwrap(), Bytes::new());
    assert_eq!(
        s.list("runs/r1/").await.unwrap(),
        ["runs/r1/a.bin", "runs/r1/b.bin", "runs/r1/empty.bin"]
    );
    assert_eq!(s.list("runs/").await.unwrap().len(), 4);
    assert!(s.list("nothing/").await.unwrap().is_empty());

    s.delete_prefix("runs/r1/").await.unwrap();
    assert!(s.list("runs/r1/").await.unwrap().is_empty());
    assert_eq!(s.list("runs/").await.unwrap(), ["runs/r2/c.bin"]);
    assert!(matches!(
        s.get("runs/r1/a.bin").await,
        Err(StoreError::NotFound(_))
    ));
    s.delete_prefix("runs/r1/").await.unwrap();
}

/// A prefix is a string prefix of the key, not only a folder: `runs/r1` lists `runs/r1/…`
/// and `runs/r10/…`, and deleting `runs/r1/` leaves `runs/r10/`.
pub async fn prefixes_are_string_prefixes(s: &dyn ObjectStore) {
    for k in ["p/r1/a", "p/r10/b", "p/r2/c"] {
        s.put(k, Bytes::from(k.to_string())).await.unwrap();
    }
    assert_eq!(s.list("p/r1").await.unwrap(), ["p/r1/a", "p/r10/b"]);
    s.delete_prefix("p/r1/").await.unwrap();
    assert_eq!(s.list("p/").await.unwrap(), ["p/r10/b", "p/r2/c"]);
}

/// More keys than one listing page (S3: 1000) are all listed, sorted, and all deleted;
/// keys outside the prefix stay.
pub async fn lists_and_deletes_more_than_one_page(s: &dyn ObjectStore) {
    let keys: Vec<String> = (0..1205).map(|i| format!("many/{i:05}.txt")).collect();
    futures::stream::iter(keys.iter())
        .map(|k| s.put(k, Bytes::from(k.clone())))
        .buffer_unordered(16)
        .try_collect::<Vec<()>>()
        .await
        .unwrap();
    s.put("other/keep.txt", Bytes::from_static(b"k"))
        .await
        .unwrap();
    assert_eq!(
        s.list("many/").await.unwrap(),
        keys,
        "every key, sorted, across pages"
    );
    s.delete_prefix("many/").await.unwrap();
    assert!(s.list("many/").await.unwrap().is_empty());
    assert_eq!(s.list("other/").await.unwrap(), ["other/keep.txt"]);
}

/// A body larger than any single request (S3 uploads it in 8 MiB parts) comes back whole,
/// and a range across a part boundary is exact.
pub async fn keeps_large_bodies_whole(s: &dyn ObjectStore) {
    let mib = 1024 * 1024;
    let body: Vec<u8> = (0..20 * mib + 123).map(|i| (i % 251) as u8).collect();
    s.put("big/blob", Bytes::from(body.clone())).await.unwrap();
    assert!(
        s.get("big/blob").await.unwrap() == body,
        "the body comes back whole"
    );
    let across = s
        .get_range("big/blob", (8 * mib - 5) as u64, 10)
        .await
        .unwrap();
    assert_eq!(
        across,
        Bytes::copy_from_slice(&body[8 * mib - 5..8 * mib + 5])
    );
}

/// Every function above, in order.
pub async fn all(s: &dyn ObjectStore) {
    puts_gets_ranges_lists_and_deletes(s).await;
    prefixes_are_string_prefixes(s).await;
    lists_and_deletes_more_than_one_page(s).await;
    keeps_large_bodies_whole(s).await;
}
