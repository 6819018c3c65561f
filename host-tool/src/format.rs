//! Image files: a filesystem (squashfs 4.0 or EROFS), parsed with zerocopy
//! (the superblock, squashfs' xz compression options), and our trailer.
//!
//! Image file layout (every length little-endian):
//!
//! ```text
//! [squashfs 4.0, `bytes_used` long | EROFS, `blocks` × 4 KiB][zeros][trailer, 128 bytes]
//! ```
//!
//! The file length is a multiple of 64 KiB, the largest page size Linux
//! has, so the block device the module makes of it (logical block size =
//! `PAGE_SIZE`) has exactly the file's bytes on every architecture. Both
//! filesystems ignore what follows their length, so the file mounts as it
//! is (loop device, unsquashfs, fsck.erofs).
//! The kernel module parses the trailer too (`kmod/image.rs`); change both
//! together and bump [`TRAILER_VERSION`].

use anyhow::{anyhow, bail, ensure, Result};
use zerocopy::little_endian::{U16, U32, U64};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

use crate::compress::Algorithm;
use crate::erofs;
use crate::squashfs::records::{
    check_block_size, SuperBlock, XzOptions, COMPRESSOR_LZ4, COMPRESSOR_XZ, COMPRESSOR_ZSTD,
    FLAG_COMPRESSOR_OPTIONS, METADATA_UNCOMPRESSED, SQUASHFS_MAGIC,
};
use crate::tree::TreeStats;

/// Image files are padded to this: the largest `PAGE_SIZE` (arm64, ppc64),
/// which the module uses as its logical block size.
pub const IMAGE_ALIGN: u64 = 64 * 1024;

pub const TRAILER_MAGIC: [u8; 8] = *b"KHDRSQFS";
/// Version 2 names the filesystem format and compressor (`format`,
/// `compressor`, in version 1's `reserved0`); version 1 images are still
/// read (squashfs, compressor from the superblock).
pub const TRAILER_VERSION: u32 = 2;
pub const TRAILER_VERSION_1: u32 = 1;
pub const TRAILER_SIZE: usize = 128;

/// The trailer's `format` values; `pack --format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum FsFormat {
    /// squashfs 4.0 (the default).
    #[default]
    Squashfs = 1,
    /// EROFS with LZ4, for kernels without squashfs (Android's GKI).
    Erofs = 2,
}

/// The trailer's `compressor` values: the block format a reader must
/// decode, whatever encoder wrote it (lz4hc blocks are lz4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BlockFormat {
    Xz = 1,
    Zstd = 2,
    Lz4 = 3,
    /// EROFS' microLZMA.
    Lzma = 4,
    Gzip = 5,
    Lzo = 6,
}

impl FsFormat {
    fn from_code(c: u16) -> Option<FsFormat> {
        [FsFormat::Squashfs, FsFormat::Erofs].into_iter().find(|f| *f as u16 == c)
    }

    pub fn name(self) -> &'static str {
        match self {
            FsFormat::Squashfs => "squashfs",
            FsFormat::Erofs => "erofs",
        }
    }

    /// The compressors this format is written with here, the default first
    /// (EROFS: what Android's kernels read).
    pub fn compressors(self) -> &'static [Algorithm] {
        match self {
            FsFormat::Squashfs => &[Algorithm::Xz, Algorithm::Zstd, Algorithm::Lz4, Algorithm::Lz4hc],
            FsFormat::Erofs => &[Algorithm::Lz4hc, Algorithm::Lz4],
        }
    }

    pub fn check_compressor(self, alg: Algorithm) -> Result<()> {
        ensure!(
            self.compressors().contains(&alg),
            "{} images are written with {}, not {}",
            self.name(),
            self.compressors().iter().map(|a| a.name()).collect::<Vec<_>>().join(", "),
            alg.name()
        );
        Ok(())
    }
}

impl BlockFormat {
    pub fn name(self) -> &'static str {
        match self {
            BlockFormat::Xz => "xz",
            BlockFormat::Zstd => "zstd",
            BlockFormat::Lz4 => "lz4",
            BlockFormat::Lzma => "lzma",
            BlockFormat::Gzip => "gzip",
            BlockFormat::Lzo => "lzo",
        }
    }

    fn from_code(c: u16) -> Option<BlockFormat> {
        use BlockFormat::*;
        [Xz, Zstd, Lz4, Lzma, Gzip, Lzo].into_iter().find(|f| *f as u16 == c)
    }

    /// What a squashfs compressor id stores, if the trailer can name it.
    pub fn of_squashfs(id: u16) -> Option<BlockFormat> {
        match id {
            1 => Some(BlockFormat::Gzip),
            3 => Some(BlockFormat::Lzo),
            COMPRESSOR_XZ => Some(BlockFormat::Xz),
            COMPRESSOR_LZ4 => Some(BlockFormat::Lz4),
            COMPRESSOR_ZSTD => Some(BlockFormat::Zstd),
            _ => None,
        }
    }
}

/// What the host tool records about an image, at the very end of the file.
/// The module checks `squashfs_crc32` before it serves a byte.
#[derive(FromBytes, IntoBytes, Immutable, KnownLayout, Unaligned, Debug, Clone, Copy)]
#[repr(C)]
pub struct Trailer {
    pub magic: [u8; 8],
    pub version: U32,
    pub trailer_size: U32,
    /// The filesystem's length: squashfs' `bytes_used`, EROFS' `blocks` × 4 KiB.
    pub squashfs_len: U64,
    /// CRC-32 (IEEE, as zlib) of the first `squashfs_len` bytes.
    pub squashfs_crc32: U32,
    /// Squashfs: the data block size; EROFS: the largest physical cluster.
    pub block_size: U32,
    pub file_count: U32,
    /// Including the root directory.
    pub dir_count: U32,
    pub symlink_count: U32,
    /// [`FsFormat`]; 0 in version 1.
    pub format: U16,
    /// [`BlockFormat`]; 0 in version 1.
    pub compressor: U16,
    /// Sum of the file sizes (stripped headers).
    pub uncompressed_bytes: U64,
    /// `UTS_RELEASE` of the tree packed, NUL-padded; empty if unknown.
    pub kernel_release: [u8; 64],
    pub reserved1: U32,
    /// CRC-32 of the 124 bytes before it.
    pub trailer_crc32: U32,
}

const _: () = assert!(size_of::<Trailer>() == TRAILER_SIZE);

impl Trailer {
    pub fn kernel_release(&self) -> String {
        let end = self.kernel_release.iter().position(|&b| b == 0).unwrap_or(64);
        String::from_utf8_lossy(&self.kernel_release[..end]).into_owned()
    }

    pub fn seal(&mut self) {
        let crc = crc32fast::hash(&self.as_bytes()[..TRAILER_SIZE - 4]);
        self.trailer_crc32 = crc.into();
    }
}

/// The trailer's `kernel_release` field: the release, NUL-padded. Callers
/// check it before the expensive work, so a bad release fails at once.
pub fn release_field(release: Option<&str>) -> Result<[u8; 64]> {
    let mut field = [0u8; 64];
    if let Some(r) = release {
        ensure!(r.len() < 64, "kernel release {r:?} is longer than 63 bytes");
        field[..r.len()].copy_from_slice(r.as_bytes());
    }
    Ok(field)
}

/// Make an image file of a filesystem's bytes: zero padding and the
/// trailer, the length a multiple of [`IMAGE_ALIGN`]. `release` comes from
/// [`release_field`].
pub fn seal(
    mut squashfs: Vec<u8>,
    format: FsFormat,
    block_size: u32,
    compressor: BlockFormat,
    stats: &TreeStats,
    release: [u8; 64],
) -> Result<Vec<u8>> {
    let used = squashfs.len() as u64;
    let padded = (used + TRAILER_SIZE as u64).div_ceil(IMAGE_ALIGN) * IMAGE_ALIGN;
    squashfs.resize(padded as usize - TRAILER_SIZE, 0);
    let mut trailer = Trailer {
        magic: TRAILER_MAGIC,
        version: TRAILER_VERSION.into(),
        trailer_size: (TRAILER_SIZE as u32).into(),
        squashfs_len: used.into(),
        squashfs_crc32: crc32fast::hash(&squashfs[..used as usize]).into(),
        block_size: block_size.into(),
        file_count: u32::try_from(stats.files)?.into(),
        dir_count: u32::try_from(stats.dirs)?.into(),
        symlink_count: u32::try_from(stats.symlinks)?.into(),
        format: (format as u16).into(),
        compressor: (compressor as u16).into(),
        uncompressed_bytes: stats.file_bytes.into(),
        kernel_release: release,
        reserved1: 0.into(),
        trailer_crc32: 0.into(),
    };
    trailer.seal();
    squashfs.extend_from_slice(trailer.as_bytes());
    debug_assert_eq!(squashfs.len() as u64 % IMAGE_ALIGN, 0);
    Ok(squashfs)
}

/// What an image file is made of, parsed and checked.
#[derive(Debug, Clone)]
pub struct ParsedImage<'a> {
    pub fs: FsHeader,
    /// `None` for a plain filesystem file (from mksquashfs, say).
    pub trailer: Option<Trailer>,
    /// The filesystem's bytes.
    pub squashfs: &'a [u8],
}

/// The filesystem's superblock.
#[derive(Debug, Clone)]
pub enum FsHeader {
    Squashfs { superblock: SuperBlock, xz: Option<XzOptions> },
    Erofs { superblock: erofs::SuperBlock },
}

impl FsHeader {
    pub fn format(&self) -> FsFormat {
        match self {
            FsHeader::Squashfs { .. } => FsFormat::Squashfs,
            FsHeader::Erofs { .. } => FsFormat::Erofs,
        }
    }
}

/// An EROFS superblock with the 4 KiB blocks we read, and the length it gives.
fn parse_erofs(file: &[u8]) -> Result<Option<(erofs::SuperBlock, u64)>> {
    let Some(at) = file.get(erofs::SUPER_OFFSET..) else { return Ok(None) };
    let Ok((sb, _)) = erofs::SuperBlock::read_from_prefix(at) else { return Ok(None) };
    if sb.magic.get() != erofs::EROFS_MAGIC {
        return Ok(None);
    }
    ensure!(
        sb.blkszbits == 12,
        "EROFS with {}-byte blocks; only 4 KiB blocks are read here",
        1u64 << sb.blkszbits.min(63)
    );
    let used = u64::from(sb.blocks.get()) * erofs::BLOCK_SIZE as u64;
    ensure!(
        used <= file.len() as u64,
        "truncated image: superblock says {used} bytes, file has {}",
        file.len()
    );
    Ok(Some((sb, used)))
}

/// Whether `file` starts with an EROFS superblock.
pub fn is_erofs(file: &[u8]) -> bool {
    file.get(erofs::SUPER_OFFSET..erofs::SUPER_OFFSET + 4) == Some(&erofs::EROFS_MAGIC.to_le_bytes())
}

/// Parse and sanity-check an image file. Every offset is checked against the
/// file length: truncation or corruption is an error, never a panic.
pub fn parse_image(file: &[u8]) -> Result<ParsedImage<'_>> {
    if let Some((superblock, used)) = parse_erofs(file)? {
        let trailer = parse_trailer(file, used, |t| {
            ensure!(
                t.version.get() == TRAILER_VERSION,
                "image trailer version {} cannot name EROFS",
                t.version
            );
            ensure!(
                FsFormat::from_code(t.format.get()) == Some(FsFormat::Erofs),
                "image trailer says format {}, but the image is EROFS",
                t.format
            );
            ensure!(
                BlockFormat::from_code(t.compressor.get()) == Some(BlockFormat::Lz4),
                "image trailer names compressor {}; EROFS images here are LZ4",
                t.compressor
            );
            Ok(())
        })?;
        return Ok(ParsedImage {
            fs: FsHeader::Erofs { superblock },
            trailer,
            squashfs: &file[..used as usize],
        });
    }
    let Ok((sb, rest)) = SuperBlock::read_from_prefix(file) else {
        bail!("too short for a squashfs superblock ({} bytes)", file.len());
    };
    ensure!(sb.magic == SQUASHFS_MAGIC, "neither squashfs nor EROFS (bad magic {:02x?})", sb.magic);
    ensure!(
        (sb.version_major.get(), sb.version_minor.get()) == (4, 0),
        "squashfs version {}.{}, only 4.0 is supported",
        sb.version_major,
        sb.version_minor
    );
    let bs = sb.block_size.get();
    check_block_size(bs).map_err(|e| anyhow!("corrupted superblock: {e}"))?;
    ensure!(u32::from(sb.block_log.get()) == bs.trailing_zeros(), "corrupted superblock: block_log");
    let used = sb.bytes_used.get();
    ensure!(
        used <= file.len() as u64,
        "truncated image: superblock says {used} bytes, file has {}",
        file.len()
    );
    for (name, off) in [
        ("inode table", sb.inode_table.get()),
        ("directory table", sb.dir_table.get()),
        ("id table", sb.id_table.get()),
    ] {
        ensure!(off < used, "corrupted superblock: {name} at {off}, past the end ({used})");
    }
    ensure!(sb.inode_table.get() <= sb.dir_table.get(), "corrupted superblock: table order");

    let xz = if sb.flags.get() & FLAG_COMPRESSOR_OPTIONS != 0 && sb.compressor.get() == COMPRESSOR_XZ {
        let Ok((header, body)) = U16::read_from_prefix(rest) else { bail!("truncated compression options") };
        let len = usize::from(header.get() & !METADATA_UNCOMPRESSED);
        ensure!(
            header.get() & METADATA_UNCOMPRESSED != 0 && len >= 8 && len <= body.len(),
            "unexpected xz compression options block"
        );
        Some(XzOptions::read_from_prefix(body).map_err(|_| anyhow::anyhow!("truncated xz options"))?.0)
    } else {
        None
    };

    let trailer = parse_trailer(file, used, |t| {
        if t.version.get() == TRAILER_VERSION {
            let format = FsFormat::from_code(t.format.get());
            ensure!(format.is_some(), "image trailer names an unknown filesystem format {}", t.format);
            ensure!(
                format == Some(FsFormat::Squashfs),
                "image trailer says EROFS, but the image is squashfs"
            );
            let comp = BlockFormat::from_code(t.compressor.get());
            ensure!(comp.is_some(), "image trailer names an unknown compressor {}", t.compressor);
            ensure!(
                comp == BlockFormat::of_squashfs(sb.compressor.get()),
                "image trailer says {} blocks, the superblock's compressor is {}",
                comp.expect("checked").name(),
                sb.compressor
            );
        } else {
            ensure!(
                t.format.get() == 0 && t.compressor.get() == 0,
                "corrupted image trailer (reserved field)"
            );
        }
        Ok(())
    })?;
    Ok(ParsedImage {
        fs: FsHeader::Squashfs { superblock: sb, xz },
        trailer,
        squashfs: &file[..used as usize],
    })
}

/// Our trailer at the end of `file`, if there is one, checked against the
/// filesystem's length `used` and by `check` against its superblock.
fn parse_trailer(file: &[u8], used: u64, check: impl Fn(&Trailer) -> Result<()>) -> Result<Option<Trailer>> {
    let t = match Trailer::read_from_suffix(file) {
        Ok((_, t)) if t.magic == TRAILER_MAGIC => t,
        _ => return Ok(None),
    };
    let mut sealed = t;
    sealed.seal();
    ensure!(sealed.trailer_crc32 == t.trailer_crc32, "corrupted image trailer (checksum mismatch)");
    let version = t.version.get();
    ensure!(
        version == TRAILER_VERSION || version == TRAILER_VERSION_1,
        "image trailer version {version} unsupported"
    );
    ensure!(
        t.trailer_size.get() as usize == TRAILER_SIZE,
        "image trailer size {} unsupported",
        t.trailer_size
    );
    ensure!(
        t.squashfs_len.get() == used,
        "image trailer says {} filesystem bytes, superblock says {used}",
        t.squashfs_len
    );
    ensure!(used + TRAILER_SIZE as u64 <= file.len() as u64, "image trailer overlaps the filesystem data");
    check(&t)?;
    Ok(Some(t))
}

impl ParsedImage<'_> {
    /// The squashfs superblock, if the image is squashfs.
    pub fn squashfs_superblock(&self) -> Option<SuperBlock> {
        match &self.fs {
            FsHeader::Squashfs { superblock, .. } => Some(*superblock),
            FsHeader::Erofs { .. } => None,
        }
    }

    /// Check the recorded CRC, as the module does at load.
    pub fn check_crc(&self) -> Result<()> {
        if let Some(t) = &self.trailer {
            let crc = crc32fast::hash(self.squashfs);
            ensure!(
                crc == t.squashfs_crc32.get(),
                "image data corrupted: CRC-32 {crc:08x}, recorded {:08x}",
                t.squashfs_crc32.get()
            );
        }
        Ok(())
    }
}
