//! Pack a [`HeaderTree`] into a reproducible squashfs-xz image with our trailer.
//!
//! [`layout`](crate::layout) decides where each header's data goes,
//! [`squashfs`](crate::squashfs) writes the filesystem (data blocks
//! compressed in parallel), and this module adds padding and the trailer the
//! module checks.

use anyhow::{ensure, Result};

use crate::format;
use crate::layout::{plan, LayoutKind};
use crate::progress::Progress;
use crate::squashfs::{self, DataStats, WriteOptions};
use crate::tree::HeaderTree;
use crate::xz::Xz;

/// Default data block size. See docs/design.md for the measurements behind it.
pub const DEFAULT_BLOCK_SIZE: u32 = 128 * 1024;

/// xz preset. With the dictionary fixed at the block size, presets 6 to 9
/// are the same encoder; "extreme" came out larger on headers (docs/design.md).
pub const DEFAULT_XZ_PRESET: u32 = 6;

#[derive(Debug, Clone)]
pub struct PackOptions {
    pub block_size: u32,
    /// The one time stamp in the image (superblock and every inode).
    pub mtime: u32,
    pub jobs: usize,
    pub xz_preset: u32,
    /// `UTS_RELEASE` to record in the trailer.
    pub kernel_release: Option<String>,
    pub layout: LayoutKind,
}

impl Default for PackOptions {
    fn default() -> Self {
        PackOptions {
            block_size: DEFAULT_BLOCK_SIZE,
            mtime: 0,
            jobs: crate::parallel::default_jobs(),
            xz_preset: DEFAULT_XZ_PRESET,
            kernel_release: None,
            layout: LayoutKind::default(),
        }
    }
}

/// Check a user-given block size: what squashfs allows.
pub fn check_block_size(bs: u32) -> Result<()> {
    ensure!(
        bs.is_power_of_two() && (format::MIN_BLOCK_SIZE..=format::MAX_BLOCK_SIZE).contains(&bs),
        "block size must be a power of two from 4K to 1M, not {bs}"
    );
    Ok(())
}

/// A packed image and what its data section holds.
pub struct Packed {
    pub image: Vec<u8>,
    pub data: DataStats,
}

/// Build the image: squashfs, zero padding, trailer; length a multiple of
/// [`format::IMAGE_ALIGN`].
pub fn pack(tree: &HeaderTree, opts: &PackOptions, progress: &Progress) -> Result<Packed> {
    check_block_size(opts.block_size)?;
    let release = format::release_field(opts.kernel_release.as_deref())?;
    progress.update("laying out", 0, 1);
    let placements = plan(tree, opts.layout);
    let xz = Xz::for_block_size(opts.block_size, opts.xz_preset);
    let wopts = WriteOptions {
        block_size: opts.block_size,
        mtime: opts.mtime,
        jobs: opts.jobs,
        compress_metadata: opts.layout.compress_metadata(),
    };
    let written = squashfs::write(tree, &placements, &xz, &wopts, progress)?;
    progress.finish();
    let image = format::seal(written.image, opts.block_size, &tree.stats(), release)?;
    Ok(Packed { image, data: written.stats })
}
