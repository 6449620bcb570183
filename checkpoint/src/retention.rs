//! Which completed checkpoints, and which shared files, may be deleted.
//!
//! Pure functions over what the retained checkpoints' metadata lists, so
//! that the rule is tested without storage.

use std::collections::HashSet;

/// What to delete so that the newest `keep` checkpoints remain.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Retention {
    /// Checkpoints to delete, oldest first.
    pub checkpoints: Vec<u64>,
    /// Shared files that no remaining checkpoint lists.
    pub shared: Vec<String>,
}

/// `retained`: the completed checkpoints, oldest first, each with the shared
/// files its metadata lists. A shared file is deleted only when no
/// checkpoint that remains lists it.
pub fn plan(retained: &[(u64, Vec<String>)], keep: usize) -> Retention {
    let cut = retained.len().saturating_sub(keep);
    let (dropped, kept) = retained.split_at(cut);
    let still: HashSet<&String> = kept.iter().flat_map(|(_, files)| files).collect();
    let mut shared: Vec<String> = dropped
        .iter()
        .flat_map(|(_, files)| files)
        .filter(|f| !still.contains(f))
        .cloned()
        .collect();
    shared.sort();
    shared.dedup();
    Retention {
        checkpoints: dropped.iter().map(|(id, _)| *id).collect(),
        shared,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(names: &[&str]) -> Vec<String> {
        names.iter().map(|n| n.to_string()).collect()
    }

    #[test]
    fn shared_files_live_while_a_kept_checkpoint_lists_them() {
        let retained = vec![
            (1, files(&["a.sst", "b.sst"])),
            (2, files(&["a.sst", "b.sst", "c.sst"])),
            (3, files(&["b.sst", "c.sst", "d.sst"])),
        ];
        assert_eq!(
            plan(&retained, 1),
            Retention {
                checkpoints: vec![1, 2],
                shared: files(&["a.sst"]),
            }
        );
        assert_eq!(
            plan(&retained, 2),
            Retention {
                checkpoints: vec![1],
                shared: vec![],
            }
        );
        assert_eq!(plan(&retained, 5), Retention::default());
    }
}
