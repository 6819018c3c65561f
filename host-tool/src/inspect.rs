//! `inspect`: what an image file holds, from its superblock, trailer and tree.

use anyhow::{ensure, Result};
use serde::Serialize;

use crate::format::{parse_image, FsHeader};
use crate::squashfs::records::compressor_name;
use crate::tree::HeaderTree;

#[derive(Debug, Serialize)]
pub struct ImageInfo {
    /// "squashfs" or "erofs".
    pub format: String,
    pub file_bytes: u64,
    /// The filesystem's bytes (for EROFS too; the name is the first format's).
    pub squashfs_bytes: u64,
    /// Squashfs' version ("4.0"); for EROFS, "erofs".
    pub version: String,
    pub compressor: String,
    /// Squashfs: the data block size; EROFS: the filesystem block size.
    pub block_size: u32,
    /// EROFS: the largest physical cluster (what `pack -b` sets).
    pub pcluster_size: Option<u32>,
    pub xz_dictionary_size: Option<u32>,
    pub xz_filters: Option<u32>,
    /// Squashfs' flags; EROFS' incompatible features.
    pub flags: u32,
    pub mod_time: u32,
    pub inode_count: u32,
    /// Squashfs: fragment blocks; EROFS: 0.
    pub fragment_count: u32,
    pub id_count: u16,
    pub files: u64,
    pub directories: u64,
    pub symlinks: u64,
    pub uncompressed_bytes: u64,
    /// squashfs bytes / uncompressed file bytes.
    pub ratio: f64,
    /// From our trailer; `None` for a plain squashfs file.
    pub trailer: Option<TrailerInfo>,
}

#[derive(Debug, Serialize)]
pub struct TrailerInfo {
    pub version: u32,
    pub kernel_release: String,
    pub squashfs_crc32: String,
    pub crc_ok: bool,
}

/// Parse and fully read an image. Any inconsistency is an error.
pub fn inspect(file: &[u8]) -> Result<ImageInfo> {
    let img = parse_image(file)?;
    img.check_crc()?;
    let tree = HeaderTree::from_image_bytes(file)?;
    let stats = tree.stats();
    let entries = stats.files + stats.dirs + stats.symlinks;
    let inode_count = match &img.fs {
        FsHeader::Squashfs { superblock: sb, .. } => u64::from(sb.inode_count.get()),
        // Ours and mkfs.erofs' count the packed inode too.
        FsHeader::Erofs { superblock: sb } => sb.inos.get() - u64::from(sb.packed_nid.get() != 0),
    };
    ensure!(inode_count == entries, "superblock counts {inode_count} inodes, the tree has {entries}");
    let trailer = img.trailer.map(|t| TrailerInfo {
        version: t.version.get(),
        kernel_release: t.kernel_release(),
        squashfs_crc32: format!("{:08x}", t.squashfs_crc32.get()),
        crc_ok: true,
    });
    if let Some(t) = &img.trailer {
        ensure!(
            (u64::from(t.file_count.get()), u64::from(t.dir_count.get()), u64::from(t.symlink_count.get()))
                == (stats.files, stats.dirs, stats.symlinks)
                && t.uncompressed_bytes.get() == stats.file_bytes,
            "image trailer counts do not match the filesystem's contents"
        );
    }
    let fs_bytes = img.squashfs.len() as u64;
    let mut info = ImageInfo {
        format: img.fs.format().name().to_string(),
        file_bytes: file.len() as u64,
        squashfs_bytes: fs_bytes,
        version: String::new(),
        compressor: String::new(),
        block_size: 0,
        pcluster_size: None,
        xz_dictionary_size: None,
        xz_filters: None,
        flags: 0,
        mod_time: 0,
        inode_count: inode_count as u32,
        fragment_count: 0,
        id_count: 0,
        files: stats.files,
        directories: stats.dirs,
        symlinks: stats.symlinks,
        uncompressed_bytes: stats.file_bytes,
        ratio: if stats.file_bytes == 0 { 0.0 } else { fs_bytes as f64 / stats.file_bytes as f64 },
        trailer,
    };
    match &img.fs {
        FsHeader::Squashfs { superblock: sb, xz } => {
            info.version = format!("{}.{}", sb.version_major, sb.version_minor);
            info.compressor = compressor_name(sb.compressor.get());
            info.block_size = sb.block_size.get();
            info.xz_dictionary_size = xz.map(|x| x.dictionary_size.get());
            info.xz_filters = xz.map(|x| x.executable_filters.get());
            info.flags = sb.flags.get().into();
            info.mod_time = sb.mod_time.get();
            info.fragment_count = sb.frag_count.get();
            info.id_count = sb.id_count.get();
        }
        FsHeader::Erofs { superblock: sb } => {
            info.version = "erofs".to_string();
            info.compressor = "lz4".to_string();
            info.block_size = 1 << sb.blkszbits;
            info.pcluster_size = Some(crate::erofs::largest_pcluster(img.squashfs, sb));
            info.flags = sb.feature_incompat.get();
            info.mod_time = sb.build_time.get() as u32;
        }
    }
    Ok(info)
}

impl std::fmt::Display for ImageInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kib = |b: u64| format!("{b} B ({:.1} MiB)", b as f64 / (1024.0 * 1024.0));
        if self.format == "erofs" {
            writeln!(f, "erofs, {} compression", self.compressor)?;
        } else {
            writeln!(f, "squashfs {}, {} compression", self.version, self.compressor)?;
        }
        writeln!(f, "  image file         {}", kib(self.file_bytes))?;
        writeln!(f, "  {:<18} {}", format!("{} bytes", self.format), kib(self.squashfs_bytes))?;
        writeln!(f, "  block size         {} KiB", self.block_size / 1024)?;
        if let Some(p) = self.pcluster_size {
            writeln!(f, "  pclusters          up to {} KiB", p / 1024)?;
        }
        if let Some(d) = self.xz_dictionary_size {
            writeln!(
                f,
                "  xz dictionary      {} KiB, filters {:#x}",
                d / 1024,
                self.xz_filters.unwrap_or(0)
            )?;
        }
        if self.format == "erofs" {
            writeln!(f, "  features           {:#06x}", self.flags)?;
            writeln!(f, "  time               {}", self.mod_time)?;
            writeln!(f, "  inodes             {}", self.inode_count)?;
        } else {
            writeln!(f, "  flags              {:#06x}", self.flags)?;
            writeln!(f, "  time               {}", self.mod_time)?;
            writeln!(f, "  inodes             {}", self.inode_count)?;
            writeln!(f, "  fragments          {}", self.fragment_count)?;
            writeln!(f, "  ids                {}", self.id_count)?;
        }
        writeln!(
            f,
            "  contents           {} files, {} directories, {} symlinks",
            self.files, self.directories, self.symlinks
        )?;
        writeln!(f, "  uncompressed       {}", kib(self.uncompressed_bytes))?;
        writeln!(
            f,
            "  ratio              {:.3} ({:.1}:1)",
            self.ratio,
            1.0 / self.ratio.max(f64::MIN_POSITIVE)
        )?;
        match &self.trailer {
            Some(t) => {
                let rel = if t.kernel_release.is_empty() { "unknown" } else { &t.kernel_release };
                writeln!(f, "  kernel release     {rel}")?;
                writeln!(f, "  trailer version    {}", t.version)?;
                write!(f, "  checksum           crc32 {} ok", t.squashfs_crc32)
            }
            None => write!(f, "  trailer            none (not packed by kheaders-image)"),
        }
    }
}
