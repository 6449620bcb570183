//! Uploading a subtask's snapshot directory, incrementally where the
//! backend's files are immutable (RocksDB's SST files).

use std::collections::HashMap;
use std::path::Path;

use crate::metadata::FileRef;
use crate::storage::JobCheckpoints;
use crate::Result;

/// The immutable files one subtask has already uploaded to `shared/`, by
/// their name in the snapshot directory.
///
/// RocksDB numbers its SST files within one instance, and a restored
/// instance goes on from the restored numbers; a crashed attempt may have
/// uploaded a different file under the same number. So each uploaded file
/// is named with a tag of the instance that uploaded it, and the map is
/// seeded, on restore, with the files the restored checkpoint lists.
#[derive(Debug, Default, Clone)]
pub struct SharedFiles {
    tag: String,
    uploaded: HashMap<String, FileRef>,
}

impl SharedFiles {
    /// An empty set for an instance tagged `tag` (unique per attempt).
    pub fn new(tag: impl Into<String>) -> Self {
        Self {
            tag: tag.into(),
            uploaded: HashMap::new(),
        }
    }

    /// Remembers the shared files a restored checkpoint lists.
    pub fn seed(&mut self, files: &[FileRef]) {
        for f in files.iter().filter(|f| f.shared) {
            self.uploaded.insert(f.local.clone(), f.clone());
        }
    }
}

/// Whether a snapshot file never changes once written, so that later
/// checkpoints can reuse the uploaded copy.
pub fn is_immutable(local: &str) -> bool {
    local.ends_with(".sst")
}

/// Uploads the files of a snapshot directory of subtask `task` (a name such
/// as `op3-1`) into `folder` (a checkpoint's `chk-<n>`, or `""` for a
/// savepoint, whose folder is the store's). With `shared`, immutable files go to
/// `shared/<task>/` once and are reused afterwards. Returns the file list
/// for the metadata and the bytes uploaded now.
pub async fn upload_snapshot(
    job: &JobCheckpoints,
    folder: &str,
    task: &str,
    dir: &Path,
    files: &[String],
    mut shared: Option<&mut SharedFiles>,
) -> Result<(Vec<FileRef>, u64)> {
    let mut refs = Vec::with_capacity(files.len());
    let mut uploaded = 0;
    for local in files {
        let path = dir.join(local);
        if let Some(shared) = shared.as_deref_mut().filter(|_| is_immutable(local)) {
            if let Some(existing) = shared.uploaded.get(local) {
                refs.push(existing.clone());
                continue;
            }
            let name = local.rsplit('/').next().unwrap_or(local);
            let object = format!("shared/{task}/{}-{name}", shared.tag);
            let (size, checksum) = job.upload(&path, &object).await?;
            uploaded += size;
            let file = FileRef {
                local: local.clone(),
                object,
                size,
                shared: true,
                checksum: Some(checksum),
            };
            shared.uploaded.insert(local.clone(), file.clone());
            refs.push(file);
        } else {
            let object = if folder.is_empty() {
                format!("{task}/{local}")
            } else {
                format!("{folder}/{task}/{local}")
            };
            let (size, checksum) = job.upload(&path, &object).await?;
            uploaded += size;
            refs.push(FileRef {
                local: local.clone(),
                object,
                size,
                shared: false,
                checksum: Some(checksum),
            });
        }
    }
    if let Some(shared) = shared {
        // Files compacted away locally are no longer needed by the next
        // checkpoint; the retained ones still count them until deleted.
        shared.uploaded.retain(|local, _| files.contains(local));
    }
    Ok((refs, uploaded))
}

/// Downloads a subtask's files into `dir`, as the backend wrote them.
pub async fn download_snapshot(job: &JobCheckpoints, files: &[FileRef], dir: &Path) -> Result<()> {
    for f in files {
        job.download(&f.object, &dir.join(&f.local), f.size, f.checksum)
            .await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::CheckpointStorage;

    #[tokio::test]
    async fn immutable_files_are_uploaded_once() {
        let store = CheckpointStorage::open("memory://upload-test", &Default::default()).unwrap();
        let job = store.job("j");
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("db")).unwrap();
        std::fs::write(dir.path().join("db/000001.sst"), vec![7u8; 1000]).unwrap();
        std::fs::write(dir.path().join("db/MANIFEST-1"), vec![1u8; 10]).unwrap();
        let mut shared = SharedFiles::new("t1");
        let files = vec!["db/000001.sst".to_string(), "db/MANIFEST-1".to_string()];
        let (refs1, up1) = upload_snapshot(
            &job,
            "chk-1",
            "op1-0",
            dir.path(),
            &files,
            Some(&mut shared),
        )
        .await
        .unwrap();
        assert_eq!(up1, 1010);
        std::fs::write(dir.path().join("db/000002.sst"), vec![8u8; 100]).unwrap();
        let files2 = vec![
            "db/000001.sst".to_string(),
            "db/000002.sst".to_string(),
            "db/MANIFEST-1".to_string(),
        ];
        let (refs2, up2) = upload_snapshot(
            &job,
            "chk-2",
            "op1-0",
            dir.path(),
            &files2,
            Some(&mut shared),
        )
        .await
        .unwrap();
        assert_eq!(up2, 110, "only the new SST and the manifest");
        assert_eq!(refs2[0], refs1[0]);
        let out = tempfile::tempdir().unwrap();
        download_snapshot(&job, &refs2, out.path()).await.unwrap();
        assert_eq!(
            std::fs::read(out.path().join("db/000002.sst")).unwrap(),
            vec![8u8; 100]
        );
    }
}
