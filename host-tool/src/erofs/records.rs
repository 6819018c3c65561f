//! EROFS on-disk records, as `fs/erofs/erofs_fs.h` defines them (Linux
//! 6.12; the same in 6.1 to 7.3 for everything written here), with the
//! sizes its `erofs_check_ondisk_layout_definitions()` asserts.

use zerocopy::little_endian::{U16, U32, U64};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

pub const EROFS_MAGIC: u32 = 0xE0F5_E1E2;
/// The superblock's offset in the image (`EROFS_SUPER_OFFSET`).
pub const SUPER_OFFSET: usize = 1024;
/// The only block size written: 4 KiB, what every kernel with EROFS reads
/// whatever its page size (blocks larger than a page are refused before
/// 6.11... and Android's GKI images use 4 KiB).
pub const BLOCK_SIZE: usize = 4096;
pub const BLOCK_BITS: u8 = 12;
/// Inode slots: a nid counts 32-byte units from `meta_blkaddr`.
pub const NID_UNIT: usize = 32;

// feature_incompat bits
pub const FEATURE_INCOMPAT_ZERO_PADDING: u32 = 0x1;
/// COMPR_CFGS and BIG_PCLUSTER share the bit: a superblock with it has the
/// per-algorithm configuration after it and may have multi-block pclusters.
pub const FEATURE_INCOMPAT_COMPR_CFGS: u32 = 0x2;
pub const FEATURE_INCOMPAT_FRAGMENTS: u32 = 0x20;

// i_format: version bit 0 (0 = compact inode), data layout bits 1-3
pub const INODE_FLAT_PLAIN: u16 = 0;
pub const INODE_COMPRESSED_FULL: u16 = 1;
pub const INODE_FLAT_INLINE: u16 = 2;
pub const fn i_format(layout: u16) -> u16 {
    layout << 1
}

// z_erofs_map_header
pub const Z_EROFS_COMPRESSION_LZ4: u8 = 0;
pub const Z_EROFS_ADVISE_BIG_PCLUSTER_1: u16 = 0x2;
/// In `h_clusterbits`: the whole file is in the packed inode; the other 63
/// bits of the header are its offset there.
pub const Z_EROFS_FRAGMENT_INODE_BIT: u32 = 7;

// z_erofs_lcluster_index.di_advise: the lcluster type
pub const LCLUSTER_TYPE_PLAIN: u16 = 0;
pub const LCLUSTER_TYPE_HEAD1: u16 = 1;
pub const LCLUSTER_TYPE_NONHEAD: u16 = 2;
/// On the first NONHEAD lcluster of a multi-block pcluster: `delta[0]` is
/// the pcluster's block count.
pub const LI_D0_CBLKCNT: u16 = 1 << 11;

/// Largest physical cluster the kernel takes (`Z_EROFS_PCLUSTER_MAX_SIZE`).
pub const PCLUSTER_MAX_SIZE: usize = 1 << 20;

// file types in dirents (the generic FT_*)
pub const FT_REG_FILE: u8 = 1;
pub const FT_DIR: u8 = 2;
pub const FT_SYMLINK: u8 = 7;

#[derive(FromBytes, IntoBytes, Immutable, KnownLayout, Unaligned, Debug, Clone, Copy)]
#[repr(C)]
pub struct SuperBlock {
    pub magic: U32,
    /// crc32c of the superblock's block, if `feature_compat` asks (not written).
    pub checksum: U32,
    pub feature_compat: U32,
    pub blkszbits: u8,
    pub sb_extslots: u8,
    pub root_nid: U16,
    pub inos: U64,
    /// Every compact inode's mtime.
    pub build_time: U64,
    pub build_time_nsec: U32,
    pub blocks: U32,
    pub meta_blkaddr: U32,
    pub xattr_blkaddr: U32,
    pub uuid: [u8; 16],
    pub volume_name: [u8; 16],
    pub feature_incompat: U32,
    /// With COMPR_CFGS: the bitmap of algorithms used.
    pub available_compr_algs: U16,
    pub extra_devices: U16,
    pub devt_slotoff: U16,
    pub dirblkbits: u8,
    pub xattr_prefix_count: u8,
    pub xattr_prefix_start: U32,
    pub packed_nid: U64,
    pub xattr_filter_reserved: u8,
    pub reserved2: [u8; 23],
}
const _: () = assert!(size_of::<SuperBlock>() == 128);

/// `z_erofs_lz4_cfgs`, after its 2-byte length, after the superblock.
#[derive(FromBytes, IntoBytes, Immutable, KnownLayout, Unaligned, Debug, Clone, Copy)]
#[repr(C)]
pub struct Lz4Cfgs {
    /// 0: LZ4's own 64 KiB window.
    pub max_distance: U16,
    pub max_pclusterblks: U16,
    pub reserved: [u8; 10],
}
const _: () = assert!(size_of::<Lz4Cfgs>() == 14);

/// `erofs_inode_compact`: 32 bytes, times from the superblock.
#[derive(FromBytes, IntoBytes, Immutable, KnownLayout, Unaligned, Debug, Clone, Copy, Default)]
#[repr(C)]
pub struct InodeCompact {
    pub i_format: U16,
    pub i_xattr_icount: U16,
    pub i_mode: U16,
    pub i_nlink: U16,
    pub i_size: U32,
    pub i_reserved: U32,
    /// raw_blkaddr (flat) or compressed_blocks (compressed).
    pub i_u: U32,
    pub i_ino: U32,
    pub i_uid: U16,
    pub i_gid: U16,
    pub i_reserved2: U32,
}
const _: () = assert!(size_of::<InodeCompact>() == NID_UNIT);

#[derive(FromBytes, IntoBytes, Immutable, KnownLayout, Unaligned, Debug, Clone, Copy)]
#[repr(C)]
pub struct Dirent {
    pub nid: U64,
    /// Where the name starts in the directory block.
    pub nameoff: U16,
    pub file_type: u8,
    pub reserved: u8,
}
pub const DIRENT_SIZE: usize = 12;
const _: () = assert!(size_of::<Dirent>() == DIRENT_SIZE);

/// `z_erofs_map_header`, at the first 8-byte boundary after a compressed
/// inode.
#[derive(FromBytes, IntoBytes, Immutable, KnownLayout, Unaligned, Debug, Clone, Copy)]
#[repr(C)]
pub struct MapHeader {
    /// h_fragmentoff / (h_reserved1, h_idata_size)
    pub h_word0: U32,
    pub h_advise: U16,
    pub h_algorithmtype: u8,
    /// Logical cluster bits minus the block bits.
    pub h_clusterbits: u8,
}
const _: () = assert!(size_of::<MapHeader>() == 8);

/// `z_erofs_lcluster_index`: one per logical cluster of a file with full
/// indexes.
#[derive(FromBytes, IntoBytes, Immutable, KnownLayout, Unaligned, Debug, Clone, Copy)]
#[repr(C)]
pub struct LclusterIndex {
    pub di_advise: U16,
    /// HEAD/PLAIN: where in this lcluster the pcluster's data starts.
    pub di_clusterofs: U16,
    /// HEAD/PLAIN: the pcluster's block address. NONHEAD: delta[0] (back
    /// to the head, or CBLKCNT) in the low half, delta[1] (on to the next
    /// head) in the high half.
    pub di_u: U32,
}
const _: () = assert!(size_of::<LclusterIndex>() == 8);

/// Where a compressed inode's full indexes start: the map header at the
/// next 8-byte boundary after the inode, then 8 reserved bytes
/// (`Z_EROFS_FULL_INDEX_START`).
pub const fn full_index_start(inode_end: usize) -> usize {
    inode_end.next_multiple_of(8) + size_of::<MapHeader>() + 8
}
