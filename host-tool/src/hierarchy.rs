//! The tree as a filesystem writer sees it (squashfs and EROFS alike):
//! entries, directories with children sorted as both formats require.

use std::collections::HashMap;

use anyhow::{bail, ensure, Result};

use crate::tree::{HeaderTree, Node};

/// Longest name we write: Linux' `NAME_MAX` (squashfs' own limit,
/// `SQUASHFS_NAME_LEN`, is 256, EROFS' is 255; no path walk can reach a
/// longer name).
pub const MAX_NAME_LEN: usize = 255;
/// Longest symlink target we write. The kernel reads up to `PAGE_SIZE`,
/// but backhand, which `inspect` and `verify` read images with, refuses
/// 256 or more; real header trees hold short relative links.
pub const MAX_SYMLINK_LEN: usize = 255;

/// One entry of the tree, with its place in the directory hierarchy.
pub(crate) struct Entry<'t> {
    pub path: &'t str,
    pub name: &'t str,
    pub node: &'t Node,
    /// Index of the parent directory in `dirs`.
    pub parent: usize,
}

/// A directory: its entry (`None` for the root) and children, sorted.
pub(crate) struct Dir {
    pub entry: Option<usize>,
    pub children: Vec<usize>,
    pub subdirs: u32,
}

pub(crate) struct Hierarchy<'t> {
    /// In the tree's (path) order.
    pub entries: Vec<Entry<'t>>,
    /// The root first.
    pub dirs: Vec<Dir>,
    pub index_of_path: HashMap<&'t str, usize>,
    /// The directory an entry is, if it is one.
    pub dir_of_entry: Vec<Option<usize>>,
}

impl<'t> Hierarchy<'t> {
    /// Checks names and symlink targets against what we write.
    pub fn new(tree: &'t HeaderTree) -> Result<Hierarchy<'t>> {
        let mut entries: Vec<Entry<'_>> = Vec::with_capacity(tree.entries.len());
        let mut dirs = vec![Dir { entry: None, children: Vec::new(), subdirs: 0 }];
        let mut dir_of_entry = Vec::with_capacity(tree.entries.len());
        let mut dir_of_path: HashMap<&str, usize> = HashMap::from([("", 0)]);
        let mut index_of_path: HashMap<&str, usize> = HashMap::with_capacity(tree.entries.len());
        // Sorted paths put every parent before its children.
        for (path, node) in &tree.entries {
            let (parent_path, name) = path.rsplit_once('/').unwrap_or(("", path));
            // A NUL cannot be in a Linux name (nor do the readers take it).
            ensure!(
                !name.is_empty() && name != "." && name != ".." && !name.contains('\0'),
                "invalid path {path:?}"
            );
            ensure!(
                name.len() <= MAX_NAME_LEN,
                "{path}: a name of {} bytes; names may have at most {MAX_NAME_LEN}",
                name.len()
            );
            if let Node::Symlink { target } = node {
                ensure!(
                    target.len() <= MAX_SYMLINK_LEN,
                    "{path}: a symlink target of {} bytes; targets may have at most {MAX_SYMLINK_LEN}",
                    target.len()
                );
                // What symlink(2) refuses, and readers of either format too.
                ensure!(
                    !target.is_empty() && !target.contains('\0'),
                    "{path}: a symlink target that is empty or holds a NUL byte"
                );
            }
            let Some(&parent) = dir_of_path.get(parent_path) else {
                bail!("{path}: parent directory {parent_path:?} is not in the tree");
            };
            let i = entries.len();
            entries.push(Entry { path, name, node, parent });
            index_of_path.insert(path, i);
            dirs[parent].children.push(i);
            if let Node::Dir { .. } = node {
                dirs[parent].subdirs += 1;
                dir_of_path.insert(path, dirs.len());
                dir_of_entry.push(Some(dirs.len()));
                dirs.push(Dir { entry: Some(i), children: Vec::new(), subdirs: 0 });
            } else {
                dir_of_entry.push(None);
            }
        }
        for d in &mut dirs {
            // Squashfs and EROFS lookups (binary searches) rely on strcmp order.
            d.children.sort_by(|&a, &b| entries[a].name.as_bytes().cmp(entries[b].name.as_bytes()));
        }
        Ok(Hierarchy { entries, dirs, index_of_path, dir_of_entry })
    }

    /// Every entry in directory order: a depth-first walk, children in name
    /// order (what `find` on the mount visits).
    pub fn walk_order(&self) -> Vec<usize> {
        let mut out = Vec::with_capacity(self.entries.len());
        let mut stack: Vec<std::slice::Iter<'_, usize>> = vec![self.dirs[0].children.iter()];
        while let Some(it) = stack.last_mut() {
            match it.next() {
                Some(&c) => {
                    out.push(c);
                    if let Some(d) = self.dir_of_entry[c] {
                        stack.push(self.dirs[d].children.iter());
                    }
                }
                None => {
                    stack.pop();
                }
            }
        }
        out
    }

    /// Directories children first, the root last.
    pub fn post_order(&self) -> Vec<usize> {
        let mut out = Vec::with_capacity(self.dirs.len());
        self.post_order_from(0, &mut out);
        out
    }

    fn post_order_from(&self, d: usize, out: &mut Vec<usize>) {
        for &c in &self.dirs[d].children {
            if let Some(sub) = self.dir_of_entry[c] {
                self.post_order_from(sub, out);
            }
        }
        out.push(d);
    }
}
