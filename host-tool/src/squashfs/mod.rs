//! A squashfs 4.0 writer for header trees, with the data layout chosen by
//! the caller ([`crate::layout`]).
//!
//! General writers (mksquashfs, backhand) store file data in directory order
//! and put every small file into a fragment block. We need two things they
//! do not offer: file data in any order, and a per-file choice between a
//! shared fragment block and blocks of its own. The format allows both:
//! only directory entries must be sorted.
//!
//! What is written, in this order (as mksquashfs does, and as the kernel's
//! sanity checks in `fs/squashfs/super.c` expect):
//!
//! ```text
//! superblock | compression options | data and fragment blocks, in plan order
//! | inode table | directory table | fragment table + index | id table + index
//! ```
//!
//! Metadata (inodes, directories, fragment and id tables) is written in
//! 8 KiB blocks, each compressed as it fills, so that a reference to the
//! block being filled (its compressed start) is known before the block is.
//! Files and symlinks get their inodes first, in plan order (the headers a
//! compile opens share inode blocks too); directories follow in post-order,
//! because a directory's listing needs its children's inode references and
//! its inode needs the listing's position. Directories larger than one
//! metadata block get an index, so a lookup starts near its name.

mod data;
mod directories;
mod inodes;
mod metadata;
pub mod records;

use anyhow::{ensure, Result};
use zerocopy::IntoBytes;

use crate::compress::{Algorithm, Compressor};
use crate::hierarchy::Hierarchy;
use crate::layout::Placement;
use crate::progress::Progress;
use crate::tree::HeaderTree;
use metadata::{write_table, MetaWriter};
use records::*;

pub use crate::hierarchy::{MAX_NAME_LEN, MAX_SYMLINK_LEN};
/// Most entries (inodes, the root included) an image can have: inode
/// numbers are 32-bit from 1, and the root's parent, `inode_count + 1`, must
/// be one too.
pub const MAX_INODES: u64 = u32::MAX as u64 - 1;

#[derive(Debug, Clone)]
pub struct WriteOptions {
    pub block_size: u32,
    /// The one time stamp: superblock and every inode.
    pub mtime: u32,
    pub jobs: usize,
    /// Compress metadata blocks (inodes, directories, tables). Uncompressed,
    /// a metadata cache miss (the kernel keeps 8 blocks) costs a copy
    /// instead of decompressing 8 KiB.
    pub compress_metadata: bool,
}

/// What the data section holds, for reports and tests.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DataStats {
    pub fragment_blocks: u32,
    /// Files whose data is in fragment blocks.
    pub fragmented_files: u64,
    /// Non-empty files with blocks of their own.
    pub own_block_files: u64,
    /// Files whose bytes equal an earlier file's and share its data.
    pub duplicate_files: u64,
    pub data_bytes: u64,
}

pub struct Written {
    /// The squashfs bytes (`bytes_used` long).
    pub image: Vec<u8>,
    pub stats: DataStats,
}

/// Write `tree` as squashfs, file data in `plan` order (every regular file of
/// the tree exactly once), every block compressed by `comp`.
pub fn write(
    tree: &HeaderTree,
    plan: &[Placement<'_>],
    comp: &Compressor,
    opts: &WriteOptions,
    progress: &Progress,
) -> Result<Written> {
    check_block_size(opts.block_size)?;
    check_inode_count(tree.entries.len() as u64 + 1)?;
    let compressor = compressor_id(comp.algorithm)?;
    let h = Hierarchy::new(tree)?;

    // Superblock (filled in last), compression options, data.
    let mut image = vec![0u8; size_of::<SuperBlock>()];
    let comp_opts = compression_options(comp);
    if let Some(o) = &comp_opts {
        image.extend_from_slice(&(o.len() as u16 | METADATA_UNCOMPRESSED).to_le_bytes());
        image.extend_from_slice(o);
    }
    let data = data::write(&h, plan, opts.block_size, comp, opts.jobs, &mut image, progress)?;
    let inode_table = image.len() as u64;
    ensure!(inode_table < 1 << 32, "file data exceeds the 4 GiB a basic squashfs inode can address");

    // Inodes: files and symlinks, then directories with their listings.
    let numbers = inodes::Numbers::new(&h)?;
    let meta_comp = opts.compress_metadata.then_some(comp);
    let mut inode_w = MetaWriter::new(meta_comp);
    let mut dir_w = MetaWriter::new(meta_comp);
    let mut iref = vec![None; h.entries.len()];
    inodes::write_files(&h, &numbers, &data.files, opts.mtime, &mut inode_w, &mut iref)?;
    let root = directories::write_all(&h, &numbers, opts.mtime, &mut inode_w, &mut dir_w, &mut iref)?;
    image.extend_from_slice(&inode_w.finish()?.0);
    let dir_table = image.len() as u64;
    image.extend_from_slice(&dir_w.finish()?.0);

    // Tables: fragments, then one id, 0 (every uid and gid).
    let frag_table = write_table(&mut image, data.fragments.as_bytes(), meta_comp)?;
    let id_table = write_table(&mut image, &0u32.to_le_bytes(), meta_comp)?;

    let mut flags = FLAG_NO_XATTRS;
    if !opts.compress_metadata {
        flags |= FLAG_UNCOMPRESSED_METADATA;
    }
    if data.stats.duplicate_files > 0 {
        flags |= FLAG_DUPLICATES;
    }
    if comp_opts.is_some() {
        flags |= FLAG_COMPRESSOR_OPTIONS;
    }
    let sb = SuperBlock {
        magic: SQUASHFS_MAGIC,
        inode_count: numbers.count.into(),
        mod_time: opts.mtime.into(),
        block_size: opts.block_size.into(),
        frag_count: data.stats.fragment_blocks.into(),
        compressor: compressor.into(),
        block_log: (opts.block_size.trailing_zeros() as u16).into(),
        flags: flags.into(),
        id_count: 1.into(),
        version_major: 4.into(),
        version_minor: 0.into(),
        root_inode: root.inode_ref().into(),
        bytes_used: (image.len() as u64).into(),
        id_table: id_table.into(),
        xattr_table: INVALID_TABLE.into(),
        inode_table: inode_table.into(),
        dir_table: dir_table.into(),
        frag_table: frag_table.into(),
        export_table: INVALID_TABLE.into(),
    };
    image[..size_of::<SuperBlock>()].copy_from_slice(sb.as_bytes());
    progress.update("writing", 1, 1);
    Ok(Written { image, stats: data.stats })
}

/// The compression options block for `comp`, if one is written: xz's
/// dictionary (no BCJ filters), LZ4's version and HC flag (the kernel
/// requires them for LZ4). zstd's level needs none to decompress.
fn compression_options(comp: &Compressor) -> Option<Vec<u8>> {
    match comp.algorithm {
        Algorithm::Xz => Some(
            XzOptions { dictionary_size: comp.dict_size.into(), executable_filters: 0.into() }
                .as_bytes()
                .to_vec(),
        ),
        Algorithm::Lz4 | Algorithm::Lz4hc => {
            let flags = if comp.algorithm == Algorithm::Lz4hc { LZ4_HC } else { 0 };
            Some(Lz4Options { version: LZ4_LEGACY.into(), flags: flags.into() }.as_bytes().to_vec())
        }
        Algorithm::Zstd | Algorithm::MicroLzma => None,
    }
}

/// `n` inodes, if an image can have that many.
pub fn check_inode_count(n: u64) -> Result<u32> {
    ensure!(
        n <= MAX_INODES,
        "{n} files, directories and symlinks; a squashfs image holds at most {MAX_INODES}"
    );
    Ok(n as u32)
}

#[cfg(test)]
mod tests {
    use super::{check_inode_count, MAX_INODES};

    #[test]
    fn inode_count_bound() {
        // A tree that large cannot be built here (hundreds of GiB of nodes):
        // the bound itself, on both sides.
        assert_eq!(check_inode_count(1).unwrap(), 1);
        assert_eq!(check_inode_count(MAX_INODES).unwrap(), u32::MAX - 1);
        for n in [MAX_INODES + 1, u64::from(u32::MAX) + 1, u64::MAX] {
            let e = check_inode_count(n).unwrap_err().to_string();
            assert!(e.contains(&n.to_string()) && e.contains("at most 4294967294"), "{e}");
        }
    }
}
