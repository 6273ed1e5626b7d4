//! Objects in an S3 bucket, under a key prefix.

use async_trait::async_trait;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{
    ChecksumAlgorithm, CompletedMultipartUpload, CompletedPart, Delete, ObjectIdentifier,
};
use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};

use super::error::{build_error, store_error};
use crate::ports::{ObjectStore, StoreError};

/// Bodies larger than this are sent as a multipart upload.
const MULTIPART_THRESHOLD: usize = 16 * 1024 * 1024;
/// Size of each part of a multipart upload (the last one may be smaller).
const PART_SIZE: usize = 8 * 1024 * 1024;
/// S3's limit on parts per upload.
const MAX_PARTS: usize = 10_000;
/// Parts uploaded at once: enough to fill a Lambda's bandwidth, few enough to bound the
/// request buffers the SDK holds.
const PARTS_IN_FLIGHT: usize = 4;
/// S3's limit on keys per DeleteObjects request.
const DELETE_BATCH: usize = 1000;

/// An [`ObjectStore`] on one S3 bucket; every key is stored under `prefix`.
#[derive(Debug, Clone)]
pub struct S3ObjectStore {
    client: aws_sdk_s3::Client,
    bucket: String,
    prefix: String,
    /// A custom S3 endpoint (moto, LocalStack, a VPC endpoint by URL) that warehouses write
    /// exports to, path-style; `None`: the bucket's AWS virtual-hosted URL.
    export_endpoint: Option<String>,
}

impl S3ObjectStore {
    /// A store in `bucket` under `prefix` (`""` for the bucket root). A missing trailing `/`
    /// is added, so `retl` and `retl/` name the same folder.
    pub fn new(
        client: aws_sdk_s3::Client,
        bucket: impl Into<String>,
        prefix: impl Into<String>,
    ) -> Self {
        let mut prefix = prefix.into();
        if !prefix.is_empty() && !prefix.ends_with('/') {
            prefix.push('/');
        }
        S3ObjectStore {
            client,
            bucket: bucket.into(),
            prefix,
            export_endpoint: None,
        }
    }

    /// The same store, with warehouses writing exports to `endpoint` (the endpoint the
    /// client itself was configured with, when it was) instead of AWS's URL of the bucket.
    pub fn with_export_endpoint(mut self, endpoint: Option<&str>) -> Self {
        self.export_endpoint = endpoint.map(|e| e.trim_end_matches('/').to_string());
        self
    }

    fn full_key(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    fn get_failed(
        &self,
        key: &str,
        err: aws_sdk_s3::error::SdkError<
            aws_sdk_s3::operation::get_object::GetObjectError,
            aws_sdk_s3::config::http::HttpResponse,
        >,
    ) -> StoreError {
        if err.as_service_error().is_some_and(|e| e.is_no_such_key()) {
            StoreError::NotFound(format!("object {key}"))
        } else {
            store_error(&format!("reading {}", self.location(key)), err)
        }
    }

    async fn read_body(&self, key: &str, body: ByteStream) -> Result<Bytes, StoreError> {
        // A body cut off mid-way is a network failure: reading again may succeed.
        body.collect()
            .await
            .map(|b| b.into_bytes())
            .map_err(|e| StoreError::Unavailable(format!("reading {}: {e}", self.location(key))))
    }

    /// Uploads `body` in parts; on failure the upload is aborted so no parts linger (and cost).
    async fn put_multipart(&self, key: &str, body: Bytes) -> Result<(), StoreError> {
        let what = format!("uploading {}", self.location(key));
        if body.len().div_ceil(PART_SIZE) > MAX_PARTS {
            return Err(StoreError::Other(format!(
                "{what}: {} bytes need more than {MAX_PARTS} parts",
                body.len()
            )));
        }
        let full = self.full_key(key);
        let created = self
            .client
            .create_multipart_upload()
            .bucket(&self.bucket)
            .key(&full)
            .checksum_algorithm(ChecksumAlgorithm::Crc32)
            .send()
            .await
            .map_err(|e| store_error(&what, e))?;
        let upload_id = created
            .upload_id()
            .ok_or_else(|| StoreError::Other(format!("{what}: S3 returned no upload id")))?
            .to_string();
        let done = match self.upload_parts(&full, &upload_id, &what, body).await {
            Ok(parts) => self
                .client
                .complete_multipart_upload()
                .bucket(&self.bucket)
                .key(&full)
                .upload_id(&upload_id)
                .multipart_upload(
                    CompletedMultipartUpload::builder()
                        .set_parts(Some(parts))
                        .build(),
                )
                .send()
                .await
                .map(|_| ())
                .map_err(|e| store_error(&what, e)),
            Err(e) => Err(e),
        };
        if done.is_err() {
            // Best effort: the original failure is what the caller needs to see.
            let _ = self
                .client
                .abort_multipart_upload()
                .bucket(&self.bucket)
                .key(&full)
                .upload_id(&upload_id)
                .send()
                .await;
        }
        done
    }

    async fn upload_parts(
        &self,
        full: &str,
        upload_id: &str,
        what: &str,
        body: Bytes,
    ) -> Result<Vec<CompletedPart>, StoreError> {
        let chunks: Vec<Bytes> = (0..body.len())
            .step_by(PART_SIZE)
            .map(|start| body.slice(start..(start + PART_SIZE).min(body.len())))
            .collect();
        futures::stream::iter(chunks.into_iter().zip(1i32..))
            .map(|(chunk, number)| async move {
                let out = self
                    .client
                    .upload_part()
                    .bucket(&self.bucket)
                    .key(full)
                    .upload_id(upload_id)
                    .part_number(number)
                    .checksum_algorithm(ChecksumAlgorithm::Crc32)
                    .body(ByteStream::from(chunk))
                    .send()
                    .await
                    .map_err(|e| store_error(what, e))?;
                // An upload created with a checksum algorithm must list each part's checksum.
                Ok::<_, StoreError>(
                    CompletedPart::builder()
                        .part_number(number)
                        .set_e_tag(out.e_tag().map(str::to_string))
                        .set_checksum_crc32(out.checksum_crc32().map(str::to_string))
                        .build(),
                )
            })
            .buffered(PARTS_IN_FLIGHT)
            .try_collect()
            .await
    }
}

#[async_trait]
impl ObjectStore for S3ObjectStore {
    /// Bodies over 16 MiB go up as 8 MiB parts, a few at a time. The parts are slices of
    /// `body`, so nothing is copied.
    async fn put(&self, key: &str, body: Bytes) -> Result<(), StoreError> {
        if body.len() > MULTIPART_THRESHOLD {
            return self.put_multipart(key, body).await;
        }
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(self.full_key(key))
            .body(ByteStream::from(body))
            .send()
            .await
            .map_err(|e| store_error(&format!("writing {}", self.location(key)), e))?;
        Ok(())
    }

    async fn get(&self, key: &str) -> Result<Bytes, StoreError> {
        let out = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(self.full_key(key))
            .send()
            .await
            .map_err(|e| self.get_failed(key, e))?;
        self.read_body(key, out.body).await
    }

    /// A zero-length read returns no bytes without asking S3, which has no empty range.
    async fn get_range(&self, key: &str, offset: u64, len: u64) -> Result<Bytes, StoreError> {
        if len == 0 {
            return Ok(Bytes::new());
        }
        let last = offset.checked_add(len - 1).ok_or_else(|| {
            StoreError::Other(format!("range {offset}+{len} of object {key} overflows"))
        })?;
        let out = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(self.full_key(key))
            .range(format!("bytes={offset}-{last}"))
            .send()
            .await
            .map_err(|e| self.get_failed(key, e))?;
        let bytes = self.read_body(key, out.body).await?;
        // S3 silently shortens a range that runs past the end; the file store fails instead.
        if bytes.len() as u64 != len {
            return Err(StoreError::Other(format!(
                "object {key} has {} bytes at offset {offset}, not the {len} asked",
                bytes.len()
            )));
        }
        Ok(bytes)
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        let what = format!("listing {}", self.location(prefix));
        let mut pages = self
            .client
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix(self.full_key(prefix))
            .into_paginator()
            .send();
        let mut keys = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| store_error(&what, e))?;
            keys.extend(
                page.contents()
                    .iter()
                    .filter_map(|o| o.key()?.strip_prefix(&self.prefix))
                    .map(str::to_string),
            );
        }
        keys.sort();
        Ok(keys)
    }

    async fn delete_prefix(&self, prefix: &str) -> Result<(), StoreError> {
        let what = format!("deleting {}", self.location(prefix));
        let keys = self.list(prefix).await?;
        for batch in keys.chunks(DELETE_BATCH) {
            let objects = batch
                .iter()
                .map(|k| ObjectIdentifier::builder().key(self.full_key(k)).build())
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| build_error(&what, e))?;
            let delete = Delete::builder()
                .set_objects(Some(objects))
                .quiet(true)
                .build()
                .map_err(|e| build_error(&what, e))?;
            let out = self
                .client
                .delete_objects()
                .bucket(&self.bucket)
                .delete(delete)
                .send()
                .await
                .map_err(|e| store_error(&what, e))?;
            // DeleteObjects answers 200 even when some keys failed; they are listed instead.
            if let Some(failed) = out.errors().first() {
                let code = failed.code().unwrap_or("unknown");
                let message = format!(
                    "{what}: {} keys failed, first {}: {code} {}",
                    out.errors().len(),
                    failed.key().unwrap_or("?"),
                    failed.message().unwrap_or("")
                );
                return Err(match code {
                    "SlowDown" | "InternalError" | "ServiceUnavailable" => {
                        StoreError::Unavailable(message)
                    }
                    _ => StoreError::Other(message),
                });
            }
        }
        Ok(())
    }

    fn location(&self, key: &str) -> String {
        format!("s3://{}/{}", self.bucket, self.full_key(key))
    }

    fn export_url(&self, key: &str) -> Option<String> {
        let full = self.full_key(key);
        Some(match &self.export_endpoint {
            Some(endpoint) => format!("{endpoint}/{}/{full}", self.bucket),
            None => {
                let region = self
                    .client
                    .config()
                    .region()
                    .map_or_else(|| "us-east-1".to_string(), |r| r.to_string());
                format!("https://{}.s3.{region}.amazonaws.com/{full}", self.bucket)
            }
        })
    }

    fn link(&self, key: &str) -> String {
        let region = self
            .client
            .config()
            .region()
            .map_or_else(|| "us-east-1".to_string(), |r| r.to_string());
        let query: String = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("region", &region)
            .append_pair("prefix", &self.full_key(key))
            .finish();
        format!(
            "https://console.aws.amazon.com/s3/object/{}?{query}",
            self.bucket
        )
    }
}
