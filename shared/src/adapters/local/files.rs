use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use bytes::Bytes;

use crate::ports::{ObjectStore, StoreError};

/// Objects as files under a root folder; keys are relative paths with `/`.
#[derive(Debug, Clone)]
pub struct FileObjectStore {
    root: PathBuf,
}

impl FileObjectStore {
    /// A store rooted at `root` (created on first write).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        FileObjectStore { root: root.into() }
    }

    fn path(&self, key: &str) -> Result<PathBuf, StoreError> {
        if key.split('/').any(|p| p == ".." || p.is_empty()) {
            return Err(StoreError::Other(format!("invalid object key `{key}`")));
        }
        Ok(self.root.join(key))
    }
}

fn walk(dir: &Path, root: &Path, out: &mut Vec<String>) -> std::io::Result<()> {
    if !dir.is_dir() {
        return Ok(());
    }
    for entry in std::fs::read_dir(dir)? {
        let p = entry?.path();
        if p.is_dir() {
            walk(&p, root, out)?;
        } else if let Ok(rel) = p.strip_prefix(root) {
            if p.extension().is_some_and(|e| e == "tmp") {
                continue;
            }
            out.push(rel.to_string_lossy().replace('\\', "/"));
        }
    }
    Ok(())
}

#[async_trait]
impl ObjectStore for FileObjectStore {
    async fn put(&self, key: &str, body: Bytes) -> Result<(), StoreError> {
        let path = self.path(key)?;
        tokio::task::spawn_blocking(move || -> std::io::Result<()> {
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent)?;
            }
            // Write then rename, so a reader never sees half an object.
            let tmp = path.with_extension(format!(
                "{}tmp",
                path.extension()
                    .map(|e| format!("{}.", e.to_string_lossy()))
                    .unwrap_or_default()
            ));
            std::fs::write(&tmp, &body)?;
            std::fs::rename(&tmp, &path)
        })
        .await
        .map_err(|e| StoreError::Other(e.to_string()))??;
        Ok(())
    }

    async fn get(&self, key: &str) -> Result<Bytes, StoreError> {
        let path = self.path(key)?;
        match tokio::fs::read(&path).await {
            Ok(b) => Ok(Bytes::from(b)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                Err(StoreError::NotFound(format!("object {key}")))
            }
            Err(e) => Err(e.into()),
        }
    }

    async fn get_range(&self, key: &str, offset: u64, len: u64) -> Result<Bytes, StoreError> {
        let path = self.path(key)?;
        let key = key.to_string();
        tokio::task::spawn_blocking(move || -> Result<Bytes, StoreError> {
            let mut f = std::fs::File::open(&path).map_err(|e| match e.kind() {
                std::io::ErrorKind::NotFound => StoreError::NotFound(format!("object {key}")),
                _ => e.into(),
            })?;
            f.seek(SeekFrom::Start(offset))?;
            let mut buf = vec![0u8; len as usize];
            f.read_exact(&mut buf)?;
            Ok(Bytes::from(buf))
        })
        .await
        .map_err(|e| StoreError::Other(e.to_string()))?
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        let root = self.root.clone();
        let prefix = prefix.to_string();
        tokio::task::spawn_blocking(move || -> Result<Vec<String>, StoreError> {
            // Walk only the deepest folder the prefix names.
            let dir_part = match prefix.rfind('/') {
                Some(i) => &prefix[..i],
                None => "",
            };
            let mut out = Vec::new();
            walk(&root.join(dir_part), &root, &mut out)?;
            out.retain(|k| k.starts_with(&prefix));
            out.sort();
            Ok(out)
        })
        .await
        .map_err(|e| StoreError::Other(e.to_string()))?
    }

    async fn delete_prefix(&self, prefix: &str) -> Result<(), StoreError> {
        let mut folders = std::collections::BTreeSet::new();
        for key in self.list(prefix).await? {
            let p = self.path(&key)?;
            match tokio::fs::remove_file(&p).await {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e.into()),
            }
            if let Some(parent) = p.parent() {
                folders.insert(parent.to_path_buf());
            }
        }
        // Folders left empty go too (S3 has none to leave): a state folder that keeps a run
        // folder per run for ever slows every listing. Deepest first; a folder still holding
        // something ends its branch. The top folders (`extract/`, `plan/`, ...) stay, so that
        // a writer creating a run folder in one never finds it gone.
        let below_top = |dir: &Path| {
            dir.strip_prefix(&self.root)
                .is_ok_and(|rel| rel.components().count() >= 2)
        };
        for folder in folders.into_iter().rev() {
            let mut dir = folder.as_path();
            while below_top(dir) {
                if tokio::fs::remove_dir(dir).await.is_err() {
                    break;
                }
                match dir.parent() {
                    Some(p) => dir = p,
                    None => break,
                }
            }
        }
        Ok(())
    }

    fn location(&self, key: &str) -> String {
        self.root.join(key).display().to_string()
    }
}
