// SPDX-License-Identifier: GPL-2.0

//! The embedded header image and the checks made before serving it.
//!
//! Layout (written by `kheaders-image pack`, see `host-tool/src/format.rs`):
//! a filesystem (squashfs 4.0, `bytes_used` long, or EROFS, `blocks` 4 KiB
//! blocks long), zero padding, then a 128-byte trailer at the very end. The
//! trailer records a CRC-32 of the filesystem's bytes, which we check at
//! load so that a corrupted module never serves a byte. Trailer version 2
//! also names the filesystem format and the compressor; version 1
//! (squashfs, the compressor only in the superblock) is still accepted.

use crate::crc32::crc32;

/// The image, generated at build time. `Kbuild` names the file: it is beside
/// the objects, which in an `O=` kernel build is not beside this source.
pub(crate) static IMAGE: &[u8] = include_bytes!(env!("KHEADERS_IMAGE_FILE"));

const TRAILER_MAGIC: &[u8; 8] = b"KHDRSQFS";
const TRAILER_VERSION_1: u32 = 1;
const TRAILER_VERSION_2: u32 = 2;
const TRAILER_SIZE: usize = 128;
/// The trailer's `format` codes.
const FORMAT_SQUASHFS: u16 = 1;
const FORMAT_EROFS: u16 = 2;
const SQUASHFS_MAGIC: &[u8; 4] = b"hsqs";
/// The EROFS superblock (`fs/erofs/erofs_fs.h`): at 1024, magic first,
/// `blkszbits` at 12, `blocks` at 36.
const EROFS_SUPER_OFFSET: usize = 1024;
const EROFS_MAGIC: u32 = 0xE0F5_E1E2;
const EROFS_BLKSZBITS: usize = EROFS_SUPER_OFFSET + 12;
const EROFS_BLOCKS: usize = EROFS_SUPER_OFFSET + 36;
/// Offset of `compression` in the squashfs superblock.
const SQUASHFS_COMPRESSION: usize = 20;
/// Offset of `bytes_used` in the squashfs superblock.
const SQUASHFS_BYTES_USED: usize = 40;

/// The trailer's `compressor` codes (host-tool/src/format.rs, `BlockFormat`).
fn trailer_compressor(code: u16) -> Option<&'static str> {
    match code {
        1 => Some("xz"),
        2 => Some("zstd"),
        3 => Some("lz4"),
        4 => Some("lzma"),
        5 => Some("gzip"),
        6 => Some("lzo"),
        _ => None,
    }
}

/// A squashfs superblock's compressor id (`squashfs_fs.h`), for version 1 trailers.
fn squashfs_compressor(id: u16) -> &'static str {
    match id {
        1 => "gzip",
        2 => "lzma",
        3 => "lzo",
        4 => "xz",
        5 => "lz4",
        6 => "zstd",
        _ => "unknown",
    }
}

/// What the trailer says about the image, once checked.
pub(crate) struct ImageInfo {
    /// The filesystem's bytes (the superblock's length).
    pub(crate) fs_len: u64,
    pub(crate) files: u32,
    pub(crate) dirs: u32,
    pub(crate) symlinks: u32,
    pub(crate) uncompressed_bytes: u64,
    /// Squashfs: the data block size; EROFS: the largest physical cluster.
    pub(crate) block_size: u32,
    pub(crate) block_unit: &'static str,
    /// Filesystem format and compressor, for the load line.
    pub(crate) format: &'static str,
    pub(crate) compressor: &'static str,
    release: [u8; 64],
}

impl ImageInfo {
    /// `UTS_RELEASE` of the tree the image was packed from, as bytes.
    pub(crate) fn release(&self) -> &[u8] {
        let end = self
            .release
            .iter()
            .position(|&b| b == 0)
            .unwrap_or(self.release.len());
        &self.release[..end]
    }
}

/// Why an image is refused.
pub(crate) enum ImageError {
    TooShort(usize),
    NoTrailer,
    TrailerChecksum { computed: u32, recorded: u32 },
    TrailerVersion(u32),
    TrailerSize(u32),
    UnsupportedFormat(u16),
    UnknownCompressor(u16),
    NotSquashfs,
    NotErofs,
    LengthMismatch { trailer: u64, superblock: u64 },
    DataChecksum { computed: u32, recorded: u32 },
}

fn le16(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

fn le32(b: &[u8], at: usize) -> u32 {
    let mut x = [0u8; 4];
    x.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(x)
}

fn le64(b: &[u8], at: usize) -> u64 {
    let mut x = [0u8; 8];
    x.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(x)
}

/// Check `image` end to end: trailer, superblock, and the data CRC.
pub(crate) fn check(image: &[u8]) -> Result<ImageInfo, ImageError> {
    // Large enough for either superblock and the trailer: every fixed
    // offset below is in bounds.
    if image.len() < EROFS_SUPER_OFFSET + 128 + TRAILER_SIZE {
        return Err(ImageError::TooShort(image.len()));
    }
    let t = &image[image.len() - TRAILER_SIZE..];
    if &t[0..8] != TRAILER_MAGIC {
        return Err(ImageError::NoTrailer);
    }
    let computed = crc32(&t[..TRAILER_SIZE - 4]);
    let recorded = le32(t, TRAILER_SIZE - 4);
    if computed != recorded {
        return Err(ImageError::TrailerChecksum { computed, recorded });
    }
    let version = le32(t, 8);
    if version != TRAILER_VERSION_1 && version != TRAILER_VERSION_2 {
        return Err(ImageError::TrailerVersion(version));
    }
    let size = le32(t, 12);
    if size as usize != TRAILER_SIZE {
        return Err(ImageError::TrailerSize(size));
    }
    let (format, compressor) = if version == TRAILER_VERSION_2 {
        let format = le16(t, 44);
        if format != FORMAT_SQUASHFS && format != FORMAT_EROFS {
            return Err(ImageError::UnsupportedFormat(format));
        }
        let code = le16(t, 46);
        (format, trailer_compressor(code).ok_or(ImageError::UnknownCompressor(code))?)
    } else {
        (FORMAT_SQUASHFS, squashfs_compressor(le16(image, SQUASHFS_COMPRESSION)))
    };
    // The filesystem's own idea of its length.
    let bytes_used = if format == FORMAT_EROFS {
        if le32(image, EROFS_SUPER_OFFSET) != EROFS_MAGIC || image[EROFS_BLKSZBITS] != 12 {
            return Err(ImageError::NotErofs);
        }
        u64::from(le32(image, EROFS_BLOCKS)) << 12
    } else {
        if &image[0..4] != SQUASHFS_MAGIC {
            return Err(ImageError::NotSquashfs);
        }
        le64(image, SQUASHFS_BYTES_USED)
    };
    let fs_len = le64(t, 16);
    if fs_len != bytes_used || fs_len > (image.len() - TRAILER_SIZE) as u64 {
        return Err(ImageError::LengthMismatch {
            trailer: fs_len,
            superblock: bytes_used,
        });
    }
    let computed = crc32(&image[..fs_len as usize]);
    let recorded = le32(t, 24);
    if computed != recorded {
        return Err(ImageError::DataChecksum { computed, recorded });
    }
    let mut release = [0u8; 64];
    release.copy_from_slice(&t[56..120]);
    Ok(ImageInfo {
        fs_len,
        block_size: le32(t, 28),
        block_unit: if format == FORMAT_EROFS { "pclusters" } else { "blocks" },
        files: le32(t, 32),
        dirs: le32(t, 36),
        symlinks: le32(t, 40),
        uncompressed_bytes: le64(t, 48),
        format: if format == FORMAT_EROFS { "erofs" } else { "squashfs" },
        compressor,
        release,
    })
}
