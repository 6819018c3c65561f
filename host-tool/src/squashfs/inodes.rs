//! Inode numbers, and the inodes of files and symlinks.

use anyhow::Result;
use zerocopy::IntoBytes;

use super::check_inode_count;
use super::data::FileData;
use super::metadata::{MetaRef, MetaWriter};
use super::records::{InodeHeader, RegInode, SymlinkInode, INVALID_FRAG, REG_TYPE, SYMLINK_TYPE};
use crate::hierarchy::Hierarchy;
use crate::tree::{Node, SYMLINK_MODE};

/// Files and symlinks in directory order, then directories in post-order
/// (children before parents, the root last).
pub(super) struct Numbers {
    /// Files and symlinks, in the order their inodes are written.
    pub order: Vec<usize>,
    /// Directories (indices into `dirs`), in the order their inodes are written.
    pub dir_post: Vec<usize>,
    /// Inode number of each entry.
    pub ino: Vec<u32>,
    /// Inode number of each directory.
    pub dir_ino: Vec<u32>,
    /// Inodes in all, the root included.
    pub count: u32,
}

impl Numbers {
    pub fn new(h: &Hierarchy<'_>) -> Result<Numbers> {
        let order: Vec<usize> =
            h.walk_order().into_iter().filter(|&i| !matches!(h.entries[i].node, Node::Dir { .. })).collect();
        let dir_post = h.post_order();
        let count = check_inode_count((order.len() + dir_post.len()) as u64)?;
        let mut ino = vec![0u32; h.entries.len()];
        for (n, &i) in order.iter().enumerate() {
            ino[i] = n as u32 + 1;
        }
        let mut dir_ino = vec![0u32; h.dirs.len()];
        for (n, &d) in dir_post.iter().enumerate() {
            dir_ino[d] = (order.len() + n) as u32 + 1;
            if let Some(e) = h.dirs[d].entry {
                ino[e] = dir_ino[d];
            }
        }
        Ok(Numbers { order, dir_post, ino, dir_ino, count })
    }
}

/// The header every inode starts with: root-owned (id 0), the one mtime.
pub(super) fn header(inode_type: u16, mode: u32, number: u32, mtime: u32) -> InodeHeader {
    InodeHeader {
        inode_type: inode_type.into(),
        mode: (mode as u16 & 0o7777).into(),
        uid: 0.into(),
        guid: 0.into(),
        mtime: mtime.into(),
        inode_number: number.into(),
    }
}

/// Write the inodes of files and symlinks; record each one's reference in `iref`.
pub(super) fn write_files(
    h: &Hierarchy<'_>,
    n: &Numbers,
    files: &[Option<FileData>],
    mtime: u32,
    inodes: &mut MetaWriter<'_>,
    iref: &mut [Option<MetaRef>],
) -> Result<()> {
    let mut t = Vec::new();
    for &i in &n.order {
        t.clear();
        match h.entries[i].node {
            Node::File { mode, data } => {
                let d = files[i].clone().unwrap_or_default();
                let (frag, off) = d.fragment.unwrap_or((INVALID_FRAG, 0));
                let inode = RegInode {
                    header: header(REG_TYPE, *mode, n.ino[i], mtime),
                    start_block: (d.start as u32).into(),
                    fragment: frag.into(),
                    offset: off.into(),
                    file_size: (data.len() as u32).into(),
                };
                t.extend_from_slice(inode.as_bytes());
                for s in &d.block_sizes {
                    t.extend_from_slice(&s.to_le_bytes());
                }
            }
            Node::Symlink { target } => {
                let inode = SymlinkInode {
                    header: header(SYMLINK_TYPE, SYMLINK_MODE, n.ino[i], mtime),
                    nlink: 1.into(),
                    symlink_size: (target.len() as u32).into(),
                };
                t.extend_from_slice(inode.as_bytes());
                t.extend_from_slice(target.as_bytes());
            }
            Node::Dir { .. } => unreachable!("directories are not in the order of files"),
        }
        iref[i] = Some(inodes.pos()?);
        inodes.write(&t)?;
    }
    Ok(())
}
