//! `inspect`: what an image file holds, from its superblock, trailer and tree.

use anyhow::{ensure, Result};
use serde::Serialize;

use crate::format::parse_image;
use crate::squashfs::records::compressor_name;
use crate::tree::HeaderTree;

#[derive(Debug, Serialize)]
pub struct ImageInfo {
    pub file_bytes: u64,
    pub squashfs_bytes: u64,
    pub version: String,
    pub compressor: String,
    pub block_size: u32,
    pub xz_dictionary_size: Option<u32>,
    pub xz_filters: Option<u32>,
    pub flags: u16,
    pub mod_time: u32,
    pub inode_count: u32,
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
    let sb = &img.superblock;
    ensure!(
        u64::from(sb.inode_count.get()) == stats.files + stats.dirs + stats.symlinks,
        "superblock counts {} inodes, the tree has {}",
        sb.inode_count,
        stats.files + stats.dirs + stats.symlinks
    );
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
            "image trailer counts do not match the squashfs contents"
        );
    }
    Ok(ImageInfo {
        file_bytes: file.len() as u64,
        squashfs_bytes: sb.bytes_used.get(),
        version: format!("{}.{}", sb.version_major, sb.version_minor),
        compressor: compressor_name(sb.compressor.get()),
        block_size: sb.block_size.get(),
        xz_dictionary_size: img.xz.map(|x| x.dictionary_size.get()),
        xz_filters: img.xz.map(|x| x.executable_filters.get()),
        flags: sb.flags.get(),
        mod_time: sb.mod_time.get(),
        inode_count: sb.inode_count.get(),
        fragment_count: sb.frag_count.get(),
        id_count: sb.id_count.get(),
        files: stats.files,
        directories: stats.dirs,
        symlinks: stats.symlinks,
        uncompressed_bytes: stats.file_bytes,
        ratio: if stats.file_bytes == 0 { 0.0 } else { sb.bytes_used.get() as f64 / stats.file_bytes as f64 },
        trailer,
    })
}

impl std::fmt::Display for ImageInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kib = |b: u64| format!("{b} B ({:.1} MiB)", b as f64 / (1024.0 * 1024.0));
        writeln!(f, "squashfs {}, {} compression", self.version, self.compressor)?;
        writeln!(f, "  image file         {}", kib(self.file_bytes))?;
        writeln!(f, "  squashfs bytes     {}", kib(self.squashfs_bytes))?;
        writeln!(f, "  block size         {} KiB", self.block_size / 1024)?;
        if let Some(d) = self.xz_dictionary_size {
            writeln!(
                f,
                "  xz dictionary      {} KiB, filters {:#x}",
                d / 1024,
                self.xz_filters.unwrap_or(0)
            )?;
        }
        writeln!(f, "  flags              {:#06x}", self.flags)?;
        writeln!(f, "  time               {}", self.mod_time)?;
        writeln!(f, "  inodes             {}", self.inode_count)?;
        writeln!(f, "  fragments          {}", self.fragment_count)?;
        writeln!(f, "  ids                {}", self.id_count)?;
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
