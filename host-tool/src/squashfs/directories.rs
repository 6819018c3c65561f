//! Directory listings (the directory table) and directory inodes.

use anyhow::{Context, Result};
use zerocopy::IntoBytes;

use super::inodes::{header, Numbers};
use super::metadata::{MetaRef, MetaWriter};
use super::records::{
    DirEntry, DirHeader, DirIndex, DirInode, LDirInode, DIR_COUNT, DIR_TYPE, INVALID_FRAG, LDIR_TYPE,
    METADATA_SIZE, REG_TYPE, SYMLINK_TYPE,
};
use crate::hierarchy::{Dir, Hierarchy};
use crate::tree::{Node, DIR_MODE};

/// Where a directory listing enters a new metadata block: its offset in the
/// listing, the block's compressed start, the first name there.
struct IndexEntry {
    at: u32,
    block: u32,
    name: String,
}

/// Write every directory's listing and inode, children before parents (a
/// listing needs its children's inode references, an inode its listing's
/// place). Returns the root's inode reference.
pub(super) fn write_all(
    h: &Hierarchy<'_>,
    n: &Numbers,
    mtime: u32,
    inodes: &mut MetaWriter<'_>,
    dirtab: &mut MetaWriter<'_>,
    iref: &mut [Option<MetaRef>],
) -> Result<MetaRef> {
    let mut root_ref = None;
    let mut t = Vec::new();
    for &d in &n.dir_post {
        let listing_start = dirtab.pos()?;
        let listing_ustart = dirtab.upos();
        let index = write_listing(&h.dirs[d], h, &n.ino, iref, dirtab)?;
        let listing_len = dirtab.upos() - listing_ustart;
        let (mode, parent) = match h.dirs[d].entry {
            Some(e) => {
                let Node::Dir { mode } = h.entries[e].node else { unreachable!("dirs hold directories") };
                (*mode, n.dir_ino[h.entries[e].parent])
            }
            None => (DIR_MODE, n.count + 1),
        };
        let nlink = 2 + h.dirs[d].subdirs;
        // The listing plus 3: what squashfs counts for "." and "..".
        let file_size = listing_len + 3;
        t.clear();
        if index.is_empty() && file_size <= u64::from(u16::MAX) {
            let inode = DirInode {
                header: header(DIR_TYPE, mode, n.dir_ino[d], mtime),
                start_block: listing_start.block.into(),
                nlink: nlink.into(),
                file_size: (file_size as u16).into(),
                offset: listing_start.offset.into(),
                parent_inode: parent.into(),
            };
            t.extend_from_slice(inode.as_bytes());
        } else {
            let inode = LDirInode {
                header: header(LDIR_TYPE, mode, n.dir_ino[d], mtime),
                nlink: nlink.into(),
                file_size: u32::try_from(file_size).context("directory listing larger than 4 GiB")?.into(),
                start_block: listing_start.block.into(),
                parent_inode: parent.into(),
                i_count: u16::try_from(index.len()).context("directory index too long")?.into(),
                offset: listing_start.offset.into(),
                xattr: INVALID_FRAG.into(),
            };
            t.extend_from_slice(inode.as_bytes());
            for e in &index {
                let rec = DirIndex {
                    index: e.at.into(),
                    start_block: e.block.into(),
                    size: (e.name.len() as u32 - 1).into(),
                };
                t.extend_from_slice(rec.as_bytes());
                t.extend_from_slice(e.name.as_bytes());
            }
        }
        let here = inodes.pos()?;
        match h.dirs[d].entry {
            Some(e) => iref[e] = Some(here),
            None => root_ref = Some(here),
        }
        inodes.write(&t)?;
    }
    Ok(root_ref.expect("the root is written last"))
}

/// Write one directory's listing; return its index.
fn write_listing(
    dir: &Dir,
    h: &Hierarchy<'_>,
    ino: &[u32],
    iref: &[Option<MetaRef>],
    dirtab: &mut MetaWriter<'_>,
) -> Result<Vec<IndexEntry>> {
    let entries = &h.entries;
    // Group entries under headers: a new one when the inode block changes,
    // after 256 entries, when an inode number is out of i16 reach of the
    // header's, or when the listing enters a new metadata block (there the
    // index points, so a lookup can start in that block).
    let start = dirtab.upos();
    let mut groups: Vec<(u64, Vec<usize>)> = Vec::new(); // (listing offset, entries)
    let mut at = 0u64;
    for &c in &dir.children {
        let r = iref[c].expect("children are written before their directory");
        let entry_len = (size_of::<DirEntry>() + entries[c].name.len()) as u64;
        let fits = groups.last().is_some_and(|(g_at, g)| {
            let first = g[0];
            let rf = iref[first].expect("written");
            let diff = i64::from(ino[c]) - i64::from(ino[first]);
            g.len() < DIR_COUNT
                && rf.block == r.block
                && (i64::from(i16::MIN)..=i64::from(i16::MAX)).contains(&diff)
                && (start + g_at) / METADATA_SIZE as u64 == (start + at) / METADATA_SIZE as u64
        });
        if fits {
            groups.last_mut().expect("checked").1.push(c);
        } else {
            groups.push((at, vec![c]));
            at += size_of::<DirHeader>() as u64;
        }
        at += entry_len;
    }
    let mut index = Vec::new();
    let mut last_block = start / METADATA_SIZE as u64;
    let mut t = Vec::new();
    for (g_at, g) in &groups {
        debug_assert_eq!(dirtab.upos() - start, *g_at);
        let here = dirtab.pos()?;
        let block_no = (start + g_at) / METADATA_SIZE as u64;
        if block_no != last_block {
            last_block = block_no;
            index.push(IndexEntry {
                at: u32::try_from(*g_at).context("directory listing too long")?,
                block: here.block,
                name: entries[g[0]].name.to_string(),
            });
        }
        let first = g[0];
        let base = iref[first].expect("written");
        t.clear();
        let head = DirHeader {
            count: (g.len() as u32 - 1).into(),
            start_block: base.block.into(),
            inode_number: ino[first].into(),
        };
        t.extend_from_slice(head.as_bytes());
        for &c in g {
            let r = iref[c].expect("written");
            let kind = match entries[c].node {
                Node::Dir { .. } => DIR_TYPE,
                Node::File { .. } => REG_TYPE,
                Node::Symlink { .. } => SYMLINK_TYPE,
            };
            let name = entries[c].name.as_bytes();
            let e = DirEntry {
                offset: r.offset.into(),
                inode_number: ((ino[c] as i64 - ino[first] as i64) as i16 as u16).into(),
                entry_type: kind.into(),
                size: (name.len() as u16 - 1).into(),
            };
            t.extend_from_slice(e.as_bytes());
            t.extend_from_slice(name);
        }
        dirtab.write(&t)?;
    }
    Ok(index)
}
