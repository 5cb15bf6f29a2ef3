//! One process serves a SQLite file: a second store on the same file is refused with an error
//! that says why, until the first one closes.

use herald_store::Store;

#[tokio::test]
async fn a_second_store_on_the_same_file_is_refused_until_the_first_closes() {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite://{}/herald.db", dir.path().display());
    let first = herald_store_sqlite::open(&url).await.expect("open");
    let refused = herald_store_sqlite::open(&url).await.err().expect("a second store is refused");
    // The error and its causes, as the server reports them.
    let message = std::iter::successors(Some(&refused as &dyn std::error::Error), |e| e.source())
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(": ");
    assert!(message.contains("in use by another Herald process"), "{message}");
    assert!(message.contains("herald.db"), "names the file: {message}");
    // The first store still works.
    assert!(first.event_range().await.is_ok());
    first.close().await;
    let again = herald_store_sqlite::open(&url).await.expect("free once the first closed");
    again.close().await;
}
