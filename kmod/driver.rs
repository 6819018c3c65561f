// SPDX-License-Identifier: GPL-2.0

//! kheaders_blk: the kernel's own headers, the set `CONFIG_IKHEADERS` carries,
//! as a read-only block device holding a squashfs-xz image:
//!
//! ```text
//! modprobe kheaders_blk && mount -t squashfs -o ro /dev/kheaders0 /mnt
//! ```
//!
//! The image is packed at build time by `kheaders-image` and embedded in the
//! module. Reads are served by copying from it; squashfs decompresses only
//! the blocks that are read. Nothing can write to the device.

mod blk_ext;
mod crc32;
mod image;

use core::sync::atomic::{AtomicBool, Ordering};

use kernel::page::PAGE_SIZE;
use kernel::prelude::*;

use blk_ext::{BioView, DiskLimits, Op, ReadOnlyDisk, ServeRead};
use image::{ImageError, IMAGE};

blk_ext::module_with_author! {
    type: KheadersBlk,
    name: "kheaders_blk",
    author: "kheaders-blk developers",
    description: "Kernel headers (the IKHEADERS set) as a read-only squashfs block device, /dev/kheaders0",
    license: "GPL",
}

const DISK_NAME: &str = "kheaders0";
const SECTOR_SIZE: u64 = 512;

/// Logical (and physical) block size: one page. Squashfs keeps the partly
/// read pages at either end of a compressed block in a page cache of its own
/// (`cache_mapping`), so that reading the neighbouring block does not fetch
/// them again, only when its device block size, the larger of 1 KiB and the
/// logical block size (`sb_min_blocksize()`), equals `PAGE_SIZE`
/// (`squashfs_fill_super()`, fs/squashfs/super.c; so in 6.12 and 7.3). A
/// page is also the largest logical block size 6.12's block layer accepts
/// (`blk_validate_block_size()`; 7.3 with THP: 64 KiB). So 4 KiB on x86, 16 or 64 KiB on arm64
/// kernels with those pages.
const LOGICAL_BLOCK_SIZE: u32 = PAGE_SIZE as u32;

/// The largest squashfs block size (`SQUASHFS_FILE_MAX_SIZE`). A block is
/// stored compressed only if that makes it shorter, so no block on disk is
/// longer.
const SQUASHFS_MAX_BLOCK: u32 = 1 << 20;

/// Queue limits: a compressed block in one I/O. Squashfs reads a block with
/// one bio of the device blocks it touches (`squashfs_bio_read()`,
/// fs/squashfs/block.c): at most the block plus one device block (a page)
/// of misalignment, in single-page segments. The disk is bio-based, so that
/// bio reaches the driver whole whatever the limits (blk-mq splits to them,
/// `bio_split_to_limits()`; nothing does for a bio-based disk). The limits
/// are still what the device advertises, to readahead (which sizes large
/// reads by `max_sectors`) and to drivers stacked on it, which inherit them
/// (`blk_stack_limits()`): so they say what it takes, rather than the
/// defaults for a zeroed `queue_limits` (255 sectors, 128 segments of at
/// most 64 KiB). A memory copy has no segment limits of its own.
fn disk_limits() -> DiskLimits {
    DiskLimits {
        block_size: LOGICAL_BLOCK_SIZE,
        max_hw_sectors: (SQUASHFS_MAX_BLOCK + LOGICAL_BLOCK_SIZE) / SECTOR_SIZE as u32,
        max_segments: u16::MAX,
        max_segment_size: u32::MAX,
    }
}

/// Device size: the image rounded up to the logical block size; the tail
/// reads as zeros. (The host tool pads images to a multiple of 64 KiB,
/// `IMAGE_ALIGN` in host-tool/src/format.rs, so on 4, 16 and 64 KiB pages
/// the device shows exactly the image file; rounding up here keeps any other
/// image readable to its last byte.)
fn capacity_bytes() -> u64 {
    (IMAGE.len() as u64).next_multiple_of(u64::from(LOGICAL_BLOCK_SIZE))
}

fn setup_disk() -> Result<ReadOnlyDisk<ImageDisk>> {
    ReadOnlyDisk::add(DISK_NAME, capacity_bytes() / SECTOR_SIZE, &disk_limits())
}

struct KheadersBlk {
    /// `Option` only so that `drop` can log after the disk is gone.
    disk: Option<ReadOnlyDisk<ImageDisk>>,
}

impl kernel::Module for KheadersBlk {
    fn init(_module: &'static ThisModule) -> Result<Self> {
        let info = match image::check(IMAGE) {
            Ok(info) => info,
            Err(e) => {
                report_bad_image(e);
                return Err(blk_ext::ebadmsg());
            }
        };
        if let Some(built_for) = option_env!("KHEADERS_KERNELRELEASE") {
            if info.release() != built_for.as_bytes() {
                pr_warn!(
                    "the embedded headers are of kernel {}, this module was built for {}\n",
                    text(info.release()),
                    built_for
                );
            }
        }
        let disk = setup_disk().inspect_err(|e| {
            pr_err!("setting up /dev/{} failed: error {}\n", DISK_NAME, e.to_errno())
        })?;
        pr_info!(
            "/dev/{}: headers of {}, {}-{} {} KiB ({} KiB {}), {} files, {} directories, {} symlinks, {} KiB uncompressed\n",
            DISK_NAME,
            text(info.release()),
            info.format,
            info.compressor,
            info.fs_len / 1024,
            info.block_size / 1024,
            info.block_unit,
            info.files,
            info.dirs,
            info.symlinks,
            info.uncompressed_bytes / 1024,
        );
        Ok(KheadersBlk { disk: Some(disk) })
    }
}

impl Drop for KheadersBlk {
    fn drop(&mut self) {
        drop(self.disk.take());
        pr_info!("/dev/{} removed\n", DISK_NAME);
    }
}

fn report_bad_image(e: ImageError) {
    match e {
        ImageError::TooShort(len) => pr_err!("embedded image is only {} bytes; refusing to load\n", len),
        ImageError::NoTrailer => pr_err!("embedded image has no kheaders-image trailer; refusing to load\n"),
        ImageError::TrailerChecksum { computed, recorded } => pr_err!(
            "embedded image trailer is corrupted (crc32 {:08x}, recorded {:08x}); refusing to load\n",
            computed,
            recorded
        ),
        ImageError::TrailerVersion(v) => pr_err!("embedded image trailer version {} is not supported; refusing to load\n", v),
        ImageError::TrailerSize(n) => pr_err!("embedded image trailer size {} is not supported; refusing to load\n", n),
        ImageError::UnsupportedFormat(f) => pr_err!("embedded image trailer names filesystem format {}, which this module does not serve; refusing to load\n", f),
        ImageError::UnknownCompressor(c) => pr_err!("embedded image trailer names an unknown compressor {}; refusing to load\n", c),
        ImageError::NotSquashfs => pr_err!("embedded image is not squashfs; refusing to load\n"),
        ImageError::NotErofs => pr_err!("embedded image is not EROFS with 4 KiB blocks, as its trailer says; refusing to load\n"),
        ImageError::LengthMismatch { trailer, superblock } => pr_err!(
            "embedded image is inconsistent (trailer: {} filesystem bytes, superblock: {}); refusing to load\n",
            trailer,
            superblock
        ),
        ImageError::DataChecksum { computed, recorded } => pr_err!(
            "embedded image is corrupted (crc32 {:08x}, recorded {:08x}); refusing to load\n",
            computed,
            recorded
        ),
    }
}

/// Bytes as text in log lines (the release string is ASCII). A `&str`, not a
/// `Display` type: 7.3's print macros take their own `Display` trait.
fn text(bytes: &[u8]) -> &str {
    match core::str::from_utf8(bytes) {
        Ok("") => "unknown",
        Ok(s) => s,
        Err(_) => "(non-ASCII)",
    }
}

struct ImageDisk;

static REFUSED_WRITE: AtomicBool = AtomicBool::new(false);

impl ServeRead for ImageDisk {
    fn serve(bio: &BioView<'_>) -> Result {
        serve(bio)
    }
}

/// Fill a read from the image; refuse everything else.
fn serve(bio: &BioView<'_>) -> Result {
    if let Op::Other(op) = bio.op() {
        if !REFUSED_WRITE.swap(true, Ordering::Relaxed) {
            pr_warn!(
                "/dev/{} is read-only: failing request op {} (logged once)\n",
                DISK_NAME,
                op
            );
        }
        return Err(EIO);
    }
    let start = bio.sector().checked_mul(SECTOR_SIZE).ok_or(EIO)?;
    let len = u64::from(bio.bytes());
    if start
        .checked_add(len)
        .map_or(true, |end| end > capacity_bytes())
    {
        return Err(EIO);
    }
    // `start` < capacity, which fits in usize (the image is in memory).
    let mut pos = start as usize;
    let copied = bio.for_each_segment(|seg| {
        // Past the end of the image (the round-up to a block) reads zeros.
        seg.fill_from(IMAGE.get(pos..).unwrap_or(&[]));
        pos += seg.len();
        Ok(())
    })?;
    if copied != len {
        return Err(EIO);
    }
    Ok(())
}
