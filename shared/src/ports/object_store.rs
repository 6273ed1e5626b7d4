use async_trait::async_trait;
use bytes::Bytes;

use super::StoreError;

/// Blobs: extract parts, plans, deletion previews and record logs.
/// Local: files under the state folder. AWS: an S3 bucket.
#[async_trait]
pub trait ObjectStore: Send + Sync {
    /// Writes (or replaces) an object.
    async fn put(&self, key: &str, body: Bytes) -> Result<(), StoreError>;
    /// Reads a whole object.
    async fn get(&self, key: &str) -> Result<Bytes, StoreError>;
    /// Reads `len` bytes at `offset`.
    async fn get_range(&self, key: &str, offset: u64, len: u64) -> Result<Bytes, StoreError>;
    /// Keys under a prefix, sorted.
    async fn list(&self, prefix: &str) -> Result<Vec<String>, StoreError>;
    /// Deletes every object under a prefix.
    async fn delete_prefix(&self, prefix: &str) -> Result<(), StoreError>;
    /// Where a key lives, for messages (a path or an s3:// URL).
    fn location(&self, key: &str) -> String;
    /// Where a person opens the object (S3: the console page of the object, behind the
    /// console's sign-in); [`ObjectStore::location`] where there is no such page.
    fn link(&self, key: &str) -> String {
        self.location(key)
    }
    /// The URL a warehouse writes the object at `key` by (see
    /// [`crate::ports::Source::export`]); `None` for a store no warehouse reaches (local
    /// files).
    fn export_url(&self, _key: &str) -> Option<String> {
        None
    }
}
