//! Squashfs 4.0 on-disk records and constants, the one copy the writer and
//! the image parser ([`crate::format`]) share. Little-endian throughout;
//! names follow the kernel's `fs/squashfs/squashfs_fs.h`.

use anyhow::{ensure, Result};
use zerocopy::little_endian::{U16, U32, U64};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

use crate::compress::Algorithm;

pub const SQUASHFS_MAGIC: [u8; 4] = *b"hsqs";
pub const MIN_BLOCK_SIZE: u32 = 4096;
pub const MAX_BLOCK_SIZE: u32 = 1 << 20;
/// Squashfs' metadata block size.
pub const METADATA_SIZE: usize = 8192;
/// Stored-uncompressed bit of a metadata block header.
pub const METADATA_UNCOMPRESSED: u16 = 0x8000;
/// Stored-uncompressed bit of a data or fragment block size.
pub const BLOCK_UNCOMPRESSED: u32 = 1 << 24;
/// Entries per directory header (`SQUASHFS_DIR_COUNT`).
pub const DIR_COUNT: usize = 256;
pub const INVALID_FRAG: u32 = 0xffff_ffff;
pub const INVALID_TABLE: u64 = u64::MAX;

/// `SQUASHFS_NOI`: inodes (and, as mksquashfs' -noI, all metadata) stored uncompressed.
pub const FLAG_UNCOMPRESSED_METADATA: u16 = 1 << 0;
pub const FLAG_DUPLICATES: u16 = 1 << 6;
pub const FLAG_NO_XATTRS: u16 = 1 << 9;
pub const FLAG_COMPRESSOR_OPTIONS: u16 = 1 << 10;

pub const DIR_TYPE: u16 = 1;
pub const REG_TYPE: u16 = 2;
pub const SYMLINK_TYPE: u16 = 3;
pub const LDIR_TYPE: u16 = 8;

pub const COMPRESSOR_XZ: u16 = 4;
pub const COMPRESSOR_LZ4: u16 = 5;
pub const COMPRESSOR_ZSTD: u16 = 6;
/// `LZ4_LEGACY`, the only LZ4 options version the kernel reads.
pub const LZ4_LEGACY: u32 = 1;
/// `LZ4_HC` in the LZ4 options' flags: written by the high-compression encoder.
pub const LZ4_HC: u32 = 1;

/// The squashfs compressor id of an algorithm, if squashfs can store it.
pub fn compressor_id(a: Algorithm) -> Result<u16> {
    match a {
        Algorithm::Xz => Ok(COMPRESSOR_XZ),
        Algorithm::Zstd => Ok(COMPRESSOR_ZSTD),
        Algorithm::Lz4 | Algorithm::Lz4hc => Ok(COMPRESSOR_LZ4),
        Algorithm::MicroLzma => anyhow::bail!("squashfs cannot store microLZMA blocks"),
    }
}

/// A compressor id's name, as mksquashfs spells it.
pub fn compressor_name(id: u16) -> String {
    match id {
        1 => "gzip",
        2 => "lzma",
        3 => "lzo",
        COMPRESSOR_XZ => "xz",
        COMPRESSOR_LZ4 => "lz4",
        COMPRESSOR_ZSTD => "zstd",
        other => return format!("unknown ({other})"),
    }
    .to_string()
}

/// What squashfs allows as a data block size.
pub fn check_block_size(bs: u32) -> Result<()> {
    ensure!(
        bs.is_power_of_two() && (MIN_BLOCK_SIZE..=MAX_BLOCK_SIZE).contains(&bs),
        "block size must be a power of two from 4K to 1M, not {bs}"
    );
    Ok(())
}

#[derive(FromBytes, IntoBytes, Immutable, KnownLayout, Unaligned, Debug, Clone, Copy)]
#[repr(C)]
pub struct SuperBlock {
    pub magic: [u8; 4],
    pub inode_count: U32,
    pub mod_time: U32,
    pub block_size: U32,
    pub frag_count: U32,
    pub compressor: U16,
    pub block_log: U16,
    pub flags: U16,
    pub id_count: U16,
    pub version_major: U16,
    pub version_minor: U16,
    pub root_inode: U64,
    pub bytes_used: U64,
    pub id_table: U64,
    pub xattr_table: U64,
    pub inode_table: U64,
    pub dir_table: U64,
    pub frag_table: U64,
    pub export_table: U64,
}

/// Stored after the superblock as one metadata block when
/// [`FLAG_COMPRESSOR_OPTIONS`] is set.
#[derive(FromBytes, IntoBytes, Immutable, KnownLayout, Unaligned, Debug, Clone, Copy)]
#[repr(C)]
pub struct XzOptions {
    pub dictionary_size: U32,
    pub executable_filters: U32,
}

/// LZ4's options block, which the kernel requires for LZ4.
#[derive(FromBytes, IntoBytes, Immutable, KnownLayout, Unaligned, Debug, Clone, Copy)]
#[repr(C)]
pub struct Lz4Options {
    pub version: U32,
    pub flags: U32,
}

/// What every inode starts with.
#[derive(FromBytes, IntoBytes, Immutable, KnownLayout, Unaligned, Debug, Clone, Copy)]
#[repr(C)]
pub struct InodeHeader {
    pub inode_type: U16,
    pub mode: U16,
    pub uid: U16,
    pub guid: U16,
    pub mtime: U32,
    pub inode_number: U32,
}

/// `squashfs_reg_inode`; the block sizes follow it.
#[derive(FromBytes, IntoBytes, Immutable, KnownLayout, Unaligned, Debug, Clone, Copy)]
#[repr(C)]
pub struct RegInode {
    pub header: InodeHeader,
    pub start_block: U32,
    pub fragment: U32,
    pub offset: U32,
    pub file_size: U32,
}

/// `squashfs_symlink_inode`; the target follows it.
#[derive(FromBytes, IntoBytes, Immutable, KnownLayout, Unaligned, Debug, Clone, Copy)]
#[repr(C)]
pub struct SymlinkInode {
    pub header: InodeHeader,
    pub nlink: U32,
    pub symlink_size: U32,
}

/// `squashfs_dir_inode`.
#[derive(FromBytes, IntoBytes, Immutable, KnownLayout, Unaligned, Debug, Clone, Copy)]
#[repr(C)]
pub struct DirInode {
    pub header: InodeHeader,
    pub start_block: U32,
    pub nlink: U32,
    pub file_size: U16,
    pub offset: U16,
    pub parent_inode: U32,
}

/// `squashfs_ldir_inode`; its index entries follow it.
#[derive(FromBytes, IntoBytes, Immutable, KnownLayout, Unaligned, Debug, Clone, Copy)]
#[repr(C)]
pub struct LDirInode {
    pub header: InodeHeader,
    pub nlink: U32,
    pub file_size: U32,
    pub start_block: U32,
    pub parent_inode: U32,
    pub i_count: U16,
    pub offset: U16,
    pub xattr: U32,
}

/// `squashfs_dir_index`; the name (`size` + 1 bytes) follows it.
#[derive(FromBytes, IntoBytes, Immutable, KnownLayout, Unaligned, Debug, Clone, Copy)]
#[repr(C)]
pub struct DirIndex {
    pub index: U32,
    pub start_block: U32,
    pub size: U32,
}

/// `squashfs_dir_header`: `count` + 1 entries follow it.
#[derive(FromBytes, IntoBytes, Immutable, KnownLayout, Unaligned, Debug, Clone, Copy)]
#[repr(C)]
pub struct DirHeader {
    pub count: U32,
    pub start_block: U32,
    pub inode_number: U32,
}

/// `squashfs_dir_entry`; the name (`size` + 1 bytes) follows it.
#[derive(FromBytes, IntoBytes, Immutable, KnownLayout, Unaligned, Debug, Clone, Copy)]
#[repr(C)]
pub struct DirEntry {
    pub offset: U16,
    /// Signed difference to the header's inode number.
    pub inode_number: U16,
    pub entry_type: U16,
    pub size: U16,
}

/// `squashfs_fragment_entry`.
#[derive(FromBytes, IntoBytes, Immutable, KnownLayout, Unaligned, Debug, Clone, Copy)]
#[repr(C)]
pub struct FragmentEntry {
    pub start_block: U64,
    pub size: U32,
    pub unused: U32,
}

const _: () = assert!(size_of::<SuperBlock>() == 96);
const _: () = assert!(size_of::<XzOptions>() == 8);
const _: () = assert!(size_of::<Lz4Options>() == 8);
const _: () = assert!(size_of::<InodeHeader>() == 16);
const _: () = assert!(size_of::<RegInode>() == 32);
const _: () = assert!(size_of::<SymlinkInode>() == 24);
const _: () = assert!(size_of::<DirInode>() == 32);
const _: () = assert!(size_of::<LDirInode>() == 40);
const _: () = assert!(size_of::<DirIndex>() == 12);
const _: () = assert!(size_of::<DirHeader>() == 12);
const _: () = assert!(size_of::<DirEntry>() == 8);
const _: () = assert!(size_of::<FragmentEntry>() == 16);
