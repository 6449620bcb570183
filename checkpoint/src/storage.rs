//! Opening a checkpoint location and reading and writing a job's folder.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock};

use bytes::Bytes;
use futures::TryStreamExt;
use object_store::memory::InMemory;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};

use crate::metadata::CheckpointMetadata;
use crate::{CheckpointError, Result};

/// Credentials and endpoints for remote stores, with Flink's key names
/// (`s3.endpoint`, `s3.access-key`, `s3.secret-key`, `s3.region`,
/// `s3.path.style.access`). Unset values come from the environment
/// (`AWS_*`, `GOOGLE_*`, `AZURE_*`), as the object_store builders read it.
#[derive(Clone, Default)]
pub struct StorageOptions {
    /// `s3.endpoint`: an S3-compatible server (`http://` allowed).
    pub s3_endpoint: Option<String>,
    /// `s3.access-key`.
    pub s3_access_key: Option<String>,
    /// `s3.secret-key`; never printed.
    pub s3_secret_key: Option<String>,
    /// `s3.region`.
    pub s3_region: Option<String>,
    /// `s3.path.style.access`: address buckets by path, not by host name.
    pub s3_path_style: bool,
}

/// How long connecting to a remote store may take.
const STORE_CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);
/// How long one request to a remote store may take.
const STORE_REQUEST_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);
/// How long a request and its retries may take in all.
const STORE_RETRY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(20);

impl std::fmt::Debug for StorageOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StorageOptions")
            .field(
                "s3_endpoint",
                &self.s3_endpoint.as_ref().map(|e| match e.split_once('@') {
                    Some((_, host)) => format!("******@{host}"),
                    None => e.clone(),
                }),
            )
            .field(
                "s3_access_key",
                &self.s3_access_key.as_ref().map(|_| "******"),
            )
            .field(
                "s3_secret_key",
                &self.s3_secret_key.as_ref().map(|_| "******"),
            )
            .field("s3_region", &self.s3_region)
            .field("s3_path_style", &self.s3_path_style)
            .finish()
    }
}

/// The `memory://` stores of this process, by URL, so that a job restarted
/// in the same process finds its checkpoints.
fn memory_stores() -> &'static Mutex<HashMap<String, Arc<InMemory>>> {
    static STORES: OnceLock<Mutex<HashMap<String, Arc<InMemory>>>> = OnceLock::new();
    STORES.get_or_init(Default::default)
}

/// A checkpoint location: an object store and a folder in it.
#[derive(Clone)]
pub struct CheckpointStorage {
    store: Arc<dyn ObjectStore>,
    base: ObjectPath,
    url: String,
    /// The directory, for `file://` locations: emptied folders are removed.
    local: Option<std::path::PathBuf>,
}

impl std::fmt::Debug for CheckpointStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CheckpointStorage({})", self.url)
    }
}

impl CheckpointStorage {
    /// Opens `location`: a plain path or `file://` URL (created if missing),
    /// `memory://<name>`, `s3://bucket/path`, `gs://bucket/path` or
    /// `az://container/path`.
    pub fn open(location: &str, options: &StorageOptions) -> Result<Self> {
        let location = location.trim().trim_end_matches('/');
        let scheme = location.split_once("://").map(|(s, _)| s);
        let config = |what: &str, e: object_store::Error| {
            CheckpointError::Config(crate::without_user_info(&format!(
                "{what} '{location}': {e}"
            )))
        };
        let mut local = None;
        let (store, base): (Arc<dyn ObjectStore>, String) = match scheme {
            None | Some("file") => {
                let dir = location.strip_prefix("file://").unwrap_or(location);
                if dir.is_empty() {
                    return Err(CheckpointError::Config(
                        "the checkpoint directory is empty".into(),
                    ));
                }
                std::fs::create_dir_all(dir).map_err(|e| {
                    CheckpointError::Config(format!(
                        "cannot create the checkpoint directory '{dir}': {e}"
                    ))
                })?;
                let store = object_store::local::LocalFileSystem::new_with_prefix(dir)
                    .map_err(|e| config("cannot open the checkpoint directory", e))?;
                local = Some(std::path::PathBuf::from(dir));
                (Arc::new(store), String::new())
            }
            Some("memory") => {
                let name = &location["memory://".len()..];
                let store = memory_stores()
                    .lock()
                    .map_err(|_| CheckpointError::Config("memory store lock poisoned".into()))?
                    .entry(name.split('/').next().unwrap_or_default().to_string())
                    .or_default()
                    .clone();
                let base = name.split_once('/').map(|(_, p)| p).unwrap_or_default();
                (store, base.to_string())
            }
            Some("s3" | "s3a") => {
                let url = location.replacen("s3a://", "s3://", 1);
                let mut b = object_store::aws::AmazonS3Builder::from_env().with_url(&url);
                // A server that accepts connections and never answers is an
                // error within a minute, not a silent wait of minutes.
                let mut client = object_store::ClientOptions::new()
                    .with_connect_timeout(STORE_CONNECT_TIMEOUT)
                    .with_timeout(STORE_REQUEST_TIMEOUT);
                if let Some(e) = &options.s3_endpoint {
                    client = client.with_allow_http(e.starts_with("http://"));
                    b = b.with_endpoint(e);
                }
                b = b.with_client_options(client).with_retry(object_store::RetryConfig {
                    max_retries: 3,
                    retry_timeout: STORE_RETRY_TIMEOUT,
                    ..Default::default()
                });
                if let Some(k) = &options.s3_access_key {
                    b = b.with_access_key_id(k);
                }
                if let Some(k) = &options.s3_secret_key {
                    b = b.with_secret_access_key(k);
                }
                if let Some(r) = &options.s3_region {
                    b = b.with_region(r);
                }
                if options.s3_path_style || options.s3_endpoint.is_some() {
                    b = b.with_virtual_hosted_style_request(false);
                }

                let store = b.build().map_err(|e| config("cannot open S3 location", e))?;
                (Arc::new(store), path_of(&url))
            }
            Some("gs") => {
                let store = object_store::gcp::GoogleCloudStorageBuilder::from_env()
                    .with_url(location)
                    .build()
                    .map_err(|e| config("cannot open GCS location", e))?;
                (Arc::new(store), path_of(location))
            }
            Some("az" | "abfs" | "abfss") => {
                let store = object_store::azure::MicrosoftAzureBuilder::from_env()
                    .with_url(location)
                    .build()
                    .map_err(|e| config("cannot open Azure location", e))?;
                (Arc::new(store), path_of(location))
            }
            Some(other) => {
                return Err(CheckpointError::Config(format!(
                    "unsupported scheme '{other}://' in '{location}': use a path, file://, memory://, s3://, gs:// or az://"
                )))
            }
        };
        Ok(Self {
            store,
            base: ObjectPath::from(base.as_str()),
            url: location.to_string(),
            local,
        })
    }

    /// Opens a location that must exist already (for reading a snapshot): a
    /// missing local directory is an error, not created.
    pub fn open_existing(location: &str, options: &StorageOptions) -> Result<Self> {
        let trimmed = location.trim();
        let local = match trimmed.split_once("://") {
            None => Some(trimmed),
            Some(("file", rest)) => Some(rest),
            _ => None,
        };
        if let Some(dir) = local.filter(|d| !d.is_empty()) {
            if !std::path::Path::new(dir).is_dir() {
                return Err(CheckpointError::NotFound(format!(
                    "'{location}' does not exist"
                )));
            }
        }
        Self::open(location, options)
    }

    /// The location as given (URLs carry no credentials; those are options).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The folder of job `job_id`.
    pub fn job(&self, job_id: &str) -> JobCheckpoints {
        JobCheckpoints {
            store: self.store.clone(),
            base: self.base.clone().join(job_id),
            url: format!("{}/{job_id}", self.url),
            local: self.local.as_ref().map(|l| l.join(job_id)),
        }
    }
}

/// The path inside the bucket of `scheme://bucket/path`.
fn path_of(url: &str) -> String {
    url.split_once("://")
        .and_then(|(_, rest)| rest.split_once('/'))
        .map(|(_, p)| p.to_string())
        .unwrap_or_default()
}

/// One job's checkpoint folder.
#[derive(Clone)]
pub struct JobCheckpoints {
    store: Arc<dyn ObjectStore>,
    base: ObjectPath,
    url: String,
    local: Option<std::path::PathBuf>,
}

impl std::fmt::Debug for JobCheckpoints {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "JobCheckpoints({})", self.url)
    }
}

/// The folder of checkpoint `id`, relative to the job's folder.
pub fn checkpoint_folder(id: u64) -> String {
    format!("chk-{id}")
}

impl JobCheckpoints {
    /// The folder's URL, for messages.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The URL of checkpoint `id`, as users pass it to `weir run -s`.
    pub fn checkpoint_url(&self, id: u64) -> String {
        format!("{}/{}", self.url, checkpoint_folder(id))
    }

    fn path(&self, relative: &str) -> ObjectPath {
        relative
            .split('/')
            .filter(|p| !p.is_empty())
            .fold(self.base.clone(), |p, part| p.join(part))
    }

    fn err(&self, relative: &str, source: object_store::Error) -> CheckpointError {
        CheckpointError::Store {
            location: format!("{}/{relative}", self.url),
            source,
        }
    }

    /// Writes an object (atomically: readers see all of it or nothing).
    pub async fn put(&self, relative: &str, data: Bytes) -> Result<()> {
        self.store
            .put(&self.path(relative), PutPayload::from(data))
            .await
            .map_err(|e| self.err(relative, e))?;
        Ok(())
    }

    /// Reads an object.
    pub async fn get(&self, relative: &str) -> Result<Bytes> {
        let result = self
            .store
            .get(&self.path(relative))
            .await
            .map_err(|e| self.err(relative, e))?;
        result.bytes().await.map_err(|e| self.err(relative, e))
    }

    /// Uploads a local file; returns its size and checksum.
    pub async fn upload(&self, local: &Path, relative: &str) -> Result<(u64, u64)> {
        let data = tokio::fs::read(local)
            .await
            .map_err(|e| CheckpointError::Io {
                path: local.display().to_string(),
                source: e,
            })?;
        let size = data.len() as u64;
        let checksum = crate::metadata::content_checksum(&data);
        self.put(relative, Bytes::from(data)).await?;
        Ok((size, checksum))
    }

    /// Downloads an object into a local file, checking its size and, when
    /// the metadata has one, its checksum.
    pub async fn download(
        &self,
        relative: &str,
        local: &Path,
        size: u64,
        checksum: Option<u64>,
    ) -> Result<()> {
        let data = self.get(relative).await?;
        if data.len() as u64 != size {
            return Err(CheckpointError::Corrupt {
                location: format!("{}/{relative}", self.url),
                reason: format!("{} bytes, the metadata says {size}", data.len()),
            });
        }
        if checksum.is_some_and(|c| c != crate::metadata::content_checksum(&data)) {
            return Err(CheckpointError::Corrupt {
                location: format!("{}/{relative}", self.url),
                reason: "its bytes do not match the checksum in the metadata".into(),
            });
        }
        if let Some(parent) = local.parent() {
            tokio::fs::create_dir_all(parent)
                .await
                .map_err(|e| CheckpointError::Io {
                    path: parent.display().to_string(),
                    source: e,
                })?;
        }
        tokio::fs::write(local, &data)
            .await
            .map_err(|e| CheckpointError::Io {
                path: local.display().to_string(),
                source: e,
            })
    }

    /// Deletes objects; missing ones are not an error.
    pub async fn delete_all(&self, relatives: &[String]) -> Result<()> {
        for r in relatives {
            match self.store.delete(&self.path(r)).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(self.err(r, e)),
            }
        }
        Ok(())
    }

    /// The objects under `relative`, relative to the job's folder.
    pub async fn list(&self, relative: &str) -> Result<Vec<String>> {
        let prefix = self.path(relative);
        let base = self.base.as_ref().to_string();
        let found: Vec<object_store::ObjectMeta> = self
            .store
            .list(Some(&prefix))
            .try_collect()
            .await
            .map_err(|e| self.err(relative, e))?;
        Ok(found
            .into_iter()
            .map(|m| {
                let full = m.location.as_ref().to_string();
                full.strip_prefix(&base)
                    .unwrap_or(&full)
                    .trim_start_matches('/')
                    .to_string()
            })
            .collect())
    }

    /// Deletes checkpoint `id`'s own folder (not the shared files it uses).
    pub async fn delete_checkpoint(&self, id: u64) -> Result<()> {
        let folder = checkpoint_folder(id);
        // The metadata first: a half-deleted checkpoint must not look complete.
        self.delete_all(&[format!("{folder}/_metadata")]).await?;
        let objects = self.list(&folder).await?;
        self.delete_all(&objects).await?;
        if let Some(dir) = &self.local {
            // A local store leaves the emptied folders behind.
            let _ = tokio::fs::remove_dir_all(dir.join(&folder)).await;
        }
        Ok(())
    }

    /// Deletes the job's whole folder.
    pub async fn delete_job(&self) -> Result<()> {
        let objects = self.list("").await?;
        self.delete_all(&objects).await?;
        if let Some(dir) = &self.local {
            let _ = tokio::fs::remove_dir_all(dir).await;
        }
        Ok(())
    }

    /// The ids of checkpoints that have a metadata file, ascending.
    pub async fn completed_ids(&self) -> Result<Vec<u64>> {
        let mut ids: Vec<u64> = self
            .list("")
            .await?
            .iter()
            .filter_map(|p| {
                let (folder, file) = p.split_once('/')?;
                (file == "_metadata")
                    .then(|| folder.strip_prefix("chk-")?.parse().ok())
                    .flatten()
            })
            .collect();
        ids.sort_unstable();
        Ok(ids)
    }

    /// Reads and checks checkpoint `id`'s metadata.
    pub async fn read_metadata(&self, id: u64) -> Result<CheckpointMetadata> {
        let relative = format!("{}/_metadata", checkpoint_folder(id));
        let bytes = self.get(&relative).await?;
        CheckpointMetadata::decode(&bytes, &self.checkpoint_url(id))
    }

    /// Reads and checks the metadata at the top of this folder (a savepoint).
    pub async fn read_savepoint_metadata(&self) -> Result<CheckpointMetadata> {
        let bytes = match self.store.get(&self.path("_metadata")).await {
            Ok(found) => found.bytes().await.map_err(|e| self.err("_metadata", e))?,
            Err(object_store::Error::NotFound { .. }) => {
                return Err(CheckpointError::NotFound(format!(
                    "'{}' is not a savepoint: it has no _metadata",
                    self.url
                )))
            }
            Err(e) => return Err(self.err("_metadata", e)),
        };
        CheckpointMetadata::decode(&bytes, &self.url)
    }

    /// Writes a savepoint's metadata at the top of this folder: the step
    /// that completes it.
    pub async fn write_savepoint_metadata(&self, metadata: &CheckpointMetadata) -> Result<()> {
        self.put("_metadata", Bytes::from(metadata.encode()?)).await
    }

    /// Writes checkpoint metadata: the step that completes a checkpoint.
    pub async fn write_metadata(&self, metadata: &CheckpointMetadata) -> Result<()> {
        let relative = format!("{}/_metadata", checkpoint_folder(metadata.checkpoint_id));
        self.put(&relative, Bytes::from(metadata.encode()?)).await
    }

    /// Checks that every file a checkpoint lists is there with its size.
    pub async fn verify(&self, metadata: &CheckpointMetadata) -> Result<()> {
        for task in &metadata.tasks {
            let objects = task
                .files
                .iter()
                .map(|f| (&f.object, f.size, f.checksum))
                .chain(
                    task.inflight
                        .iter()
                        .filter_map(|c| c.object.as_ref().map(|o| (o, c.bytes, c.checksum))),
                );
            for (object, size, checksum) in objects {
                let meta = self.store.head(&self.path(object)).await.map_err(|e| {
                    CheckpointError::Corrupt {
                        location: self.checkpoint_url(metadata.checkpoint_id),
                        reason: format!("file '{object}' is unreadable: {e}"),
                    }
                })?;
                if meta.size != size {
                    return Err(CheckpointError::Corrupt {
                        location: self.checkpoint_url(metadata.checkpoint_id),
                        reason: format!(
                            "file '{object}' has {} bytes, the metadata says {size}",
                            meta.size
                        ),
                    });
                }
                // A file damaged without changing its size: read it whole.
                if let Some(expected) = checksum {
                    let data = self
                        .get(object)
                        .await
                        .map_err(|e| CheckpointError::Corrupt {
                            location: self.checkpoint_url(metadata.checkpoint_id),
                            reason: format!("file '{object}' is unreadable: {e}"),
                        })?;
                    if crate::metadata::content_checksum(&data) != expected {
                        return Err(CheckpointError::Corrupt {
                            location: self.checkpoint_url(metadata.checkpoint_id),
                            reason: format!(
                                "file '{object}' does not match its checksum in the metadata"
                            ),
                        });
                    }
                }
            }
        }
        Ok(())
    }

    /// The newest checkpoint whose metadata and files are intact. Damaged
    /// ones are skipped, each with a warning returned alongside.
    pub async fn latest_valid(&self) -> Result<(Option<CheckpointMetadata>, Vec<String>)> {
        let mut warnings = Vec::new();
        for id in self.completed_ids().await?.into_iter().rev() {
            let checked = match self.read_metadata(id).await {
                Ok(m) => self.verify(&m).await.map(|()| m),
                Err(e) => Err(e),
            };
            match checked {
                Ok(m) => return Ok((Some(m), warnings)),
                Err(e) => warnings.push(format!("skipping checkpoint {id}: {e}")),
            }
        }
        Ok((None, warnings))
    }
}

/// Where a stored snapshot is: a checkpoint `<dir>/<job-id>/chk-<n>`, or a
/// savepoint folder `<dir>/<name>` with its `_metadata` at the top.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotPath {
    /// The location of the folder's parent.
    pub dir: String,
    /// The job's folder (checkpoints) or the savepoint's folder.
    pub folder: String,
    /// The checkpoint's number; `None` for a savepoint.
    pub checkpoint: Option<u64>,
}

/// Reads a snapshot path as users give it (`-s`, `execution.savepoint.path`):
/// `…/chk-<n>` is a checkpoint, any other folder a savepoint; a trailing
/// `/_metadata` is allowed.
pub fn parse_snapshot_url(url: &str) -> Result<SnapshotPath> {
    if let Ok((dir, folder, id)) = parse_checkpoint_url(url) {
        return Ok(SnapshotPath {
            dir,
            folder,
            checkpoint: Some(id),
        });
    }
    let trimmed = url
        .trim()
        .trim_end_matches('/')
        .trim_end_matches("/_metadata");
    let (dir, folder) = trimmed
        .rsplit_once('/')
        .filter(|(_, f)| !f.is_empty() && !f.contains("://"))
        .ok_or_else(|| {
            CheckpointError::Config(format!(
                "'{url}' is not a savepoint or checkpoint path: expected <dir>/savepoint-… or <dir>/<job-id>/chk-<n>"
            ))
        })?;
    let dir = if dir.is_empty() || dir.ends_with(':') {
        format!("{dir}/")
    } else {
        dir.to_string()
    };
    Ok(SnapshotPath {
        dir,
        folder: folder.to_string(),
        checkpoint: None,
    })
}

/// Opens a stored snapshot (checkpoint or savepoint) and checks it: its
/// metadata must be intact and every file it lists present at its size.
pub async fn open_snapshot(
    url: &str,
    options: &StorageOptions,
) -> Result<(JobCheckpoints, CheckpointMetadata)> {
    let path = parse_snapshot_url(url)?;
    let storage = CheckpointStorage::open_existing(&path.dir, options).map_err(|e| match e {
        CheckpointError::NotFound(why) => {
            CheckpointError::NotFound(format!("no savepoint or checkpoint at '{url}': {why}"))
        }
        other => other,
    })?;
    let job = storage.job(&path.folder);
    let metadata = match path.checkpoint {
        Some(id) => job.read_metadata(id).await?,
        None => job.read_savepoint_metadata().await?,
    };
    job.verify(&metadata).await?;
    Ok((job, metadata))
}

/// Deletes the savepoint at `url` — its folder and nothing else. A path
/// that is not a savepoint (no savepoint metadata, or a checkpoint) is
/// refused and left alone.
pub async fn dispose_savepoint(url: &str, options: &StorageOptions) -> Result<()> {
    let path = parse_snapshot_url(url)?;
    if path.checkpoint.is_some() {
        return Err(CheckpointError::Config(format!(
            "'{url}' is a checkpoint, not a savepoint: checkpoints are deleted by their job's retention"
        )));
    }
    let storage = CheckpointStorage::open_existing(&path.dir, options)?;
    let job = storage.job(&path.folder);
    let metadata = job.read_savepoint_metadata().await?;
    if metadata.snapshot_type != crate::metadata::SnapshotType::Savepoint {
        return Err(CheckpointError::Config(format!(
            "'{url}' is not a savepoint"
        )));
    }
    job.delete_job().await
}

/// A new savepoint folder's name for job `job_id`, like Flink's
/// `savepoint-<6 hex digits of the job id>-<12 random hex digits>`.
pub fn savepoint_folder_name(job_id: &str) -> String {
    let short: String = job_id.chars().take(6).collect();
    format!(
        "savepoint-{short}-{:012x}",
        random_u64(0) & 0xffff_ffff_ffff
    )
}

/// 64 random bits for names and seeds (not for cryptography): the
/// process's randomly keyed hasher over the clock and `salt`.
pub fn random_u64(salt: u64) -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(salt);
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    h.finish()
}

/// Splits a checkpoint URL (`<dir>/<job-id>/chk-<n>`, optionally with
/// `/_metadata`) into the location, the job id and the checkpoint id.
pub fn parse_checkpoint_url(url: &str) -> Result<(String, String, u64)> {
    let trimmed = url
        .trim()
        .trim_end_matches('/')
        .trim_end_matches("/_metadata");
    let bad = || {
        CheckpointError::Config(format!(
            "'{url}' is not a checkpoint path: expected <dir>/<job-id>/chk-<n>"
        ))
    };
    let (rest, chk) = trimmed.rsplit_once('/').ok_or_else(bad)?;
    let id = chk
        .strip_prefix("chk-")
        .and_then(|n| n.parse().ok())
        .ok_or_else(bad)?;
    let (dir, job) = rest.rsplit_once('/').ok_or_else(bad)?;
    if job.is_empty() {
        return Err(bad());
    }
    let dir = if dir.is_empty() { "/" } else { dir };
    Ok((dir.to_string(), job.to_string(), id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_urls_are_told_apart() {
        assert_eq!(
            parse_snapshot_url("file:///tmp/sp/savepoint-ab12cd-0123456789ab/_metadata").unwrap(),
            SnapshotPath {
                dir: "file:///tmp/sp".into(),
                folder: "savepoint-ab12cd-0123456789ab".into(),
                checkpoint: None
            }
        );
        assert_eq!(
            parse_snapshot_url("/tmp/c/abc/chk-3").unwrap().checkpoint,
            Some(3)
        );
        assert_eq!(parse_snapshot_url("/sp").unwrap().dir, "/");
        assert!(parse_snapshot_url("savepoint").is_err());
        let name = savepoint_folder_name("0123456789abcdef");
        assert!(
            name.starts_with("savepoint-012345-") && name.len() == 29,
            "{name}"
        );
    }

    #[tokio::test]
    async fn dispose_deletes_a_savepoint_and_nothing_else() {
        let storage =
            CheckpointStorage::open("memory://dispose-test/sp", &Default::default()).unwrap();
        let sp = storage.job("savepoint-aaaaaa-000000000001");
        let other = storage.job("savepoint-aaaaaa-000000000002");
        let mut m = crate::metadata::tests_support::sample_metadata();
        m.snapshot_type = crate::metadata::SnapshotType::Savepoint;
        for job in [&sp, &other] {
            job.write_savepoint_metadata(&m).await.unwrap();
            job.put("op1-0/state.snap", Bytes::from_static(b"x"))
                .await
                .unwrap();
        }
        let ckpt = storage.job("job");
        m.snapshot_type = crate::metadata::SnapshotType::Checkpoint;
        ckpt.write_savepoint_metadata(&m).await.unwrap();
        let opts = StorageOptions::default();
        let err = dispose_savepoint("memory://dispose-test/sp/job", &opts)
            .await
            .unwrap_err();
        assert!(err.to_string().contains("not a savepoint"), "{err}");
        dispose_savepoint(
            "memory://dispose-test/sp/savepoint-aaaaaa-000000000001",
            &opts,
        )
        .await
        .unwrap();
        assert!(sp.list("").await.unwrap().is_empty());
        assert_eq!(other.list("").await.unwrap().len(), 2);
        assert_eq!(ckpt.list("").await.unwrap().len(), 1);
        let err = dispose_savepoint(
            "memory://dispose-test/sp/savepoint-aaaaaa-000000000001",
            &opts,
        )
        .await
        .unwrap_err();
        assert!(err.to_string().contains("has no _metadata"), "{err}");
    }

    #[test]
    fn checkpoint_urls_are_split() {
        assert_eq!(
            parse_checkpoint_url("file:///tmp/c/abc/chk-12/_metadata").unwrap(),
            ("file:///tmp/c".to_string(), "abc".to_string(), 12)
        );
        assert_eq!(
            parse_checkpoint_url("s3://b/p/abc/chk-3/").unwrap(),
            ("s3://b/p".to_string(), "abc".to_string(), 3)
        );
        assert!(parse_checkpoint_url("/tmp/c/abc").is_err());
    }

    #[tokio::test]
    async fn latest_valid_skips_damaged_checkpoints() {
        let dir = tempfile::tempdir().unwrap();
        let storage =
            CheckpointStorage::open(dir.path().to_str().unwrap(), &Default::default()).unwrap();
        let job = storage.job("j1");
        for id in 1..=3 {
            job.put(
                &format!("chk-{id}/op1-0/state.snap"),
                Bytes::from(vec![1u8; 10]),
            )
            .await
            .unwrap();
            let meta = CheckpointMetadata {
                checkpoint_id: id,
                job_id: "j1".into(),
                job_name: "n".into(),
                graph: "g".into(),
                trigger_time_ms: 0,
                duration_ms: 0,
                unaligned: false,
                alignment_ms: 0,
                is_final: false,
                state_bytes: 10,
                uploaded_bytes: 10,
                tasks: vec![crate::TaskSnapshot {
                    node: 1,
                    files: vec![crate::FileRef {
                        local: "state.snap".into(),
                        object: format!("chk-{id}/op1-0/state.snap"),
                        size: 10,
                        shared: false,
                        checksum: None,
                    }],
                    ..Default::default()
                }],
                snapshot_type: Default::default(),
                max_parallelism: 128,
                operators: vec![],
            };
            job.write_metadata(&meta).await.unwrap();
        }
        // chk-3: a truncated data file; chk-2: broken metadata.
        std::fs::write(dir.path().join("j1/chk-3/op1-0/state.snap"), [1u8; 4]).unwrap();
        std::fs::write(
            dir.path().join("j1/chk-2/_metadata"),
            b"WEIR-CHECKPOINT 1\n{",
        )
        .unwrap();
        let (found, warnings) = job.latest_valid().await.unwrap();
        assert_eq!(found.unwrap().checkpoint_id, 1);
        assert_eq!(warnings.len(), 2, "{warnings:?}");
        assert!(warnings[0].contains("checkpoint 3"), "{warnings:?}");
        assert!(warnings[1].contains("checkpoint 2"), "{warnings:?}");
        assert_eq!(job.completed_ids().await.unwrap(), vec![1, 2, 3]);
        job.delete_checkpoint(3).await.unwrap();
        assert_eq!(job.completed_ids().await.unwrap(), vec![1, 2]);
    }

    #[tokio::test]
    async fn memory_stores_are_shared_by_name() {
        let a = CheckpointStorage::open("memory://t1/x", &Default::default()).unwrap();
        a.job("j")
            .put("f", Bytes::from_static(b"hi"))
            .await
            .unwrap();
        let b = CheckpointStorage::open("memory://t1/x", &Default::default()).unwrap();
        assert_eq!(&b.job("j").get("f").await.unwrap()[..], b"hi");
    }
}
