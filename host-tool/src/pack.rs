//! Pack a [`HeaderTree`] into a reproducible squashfs-xz image with our trailer.
//!
//! backhand lays out the filesystem, but its writer compresses one block at a
//! time on one thread, and xz is nearly all of the packing time. So we write
//! twice:
//!
//! 1. a dry run whose compressor only records each block it is given (the
//!    data and fragment blocks do not depend on compression results);
//! 2. all recorded blocks are xz-compressed in parallel;
//! 3. the real run, whose compressor answers from that table. Metadata blocks
//!    (which do depend on compressed sizes) miss and are compressed inline;
//!    they are a few percent of the bytes.
//!
//! The bytes are those a sequential run would produce: same inputs, same xz
//! settings, same order of writes.

use std::cell::RefCell;
use std::collections::HashMap;
use std::io::{Cursor, Seek, SeekFrom, Write};

use anyhow::{anyhow, ensure, Context, Result};
use backhand::compression::{CompressionAction, CompressionOptions, Compressor, DefaultCompressor, Xz};
use backhand::kind::Kind;
use backhand::v4::compressor::XzFilter;
use backhand::{BackhandError, FilesystemCompressor, FilesystemWriter, NodeHeader, SuperBlock};
use liblzma::stream::{Action, Check, Filters, LzmaOptions, Status, Stream};
use zerocopy::IntoBytes;

use crate::format::{self, Trailer, IMAGE_ALIGN, TRAILER_SIZE};
use crate::parallel::parallel_map;
use crate::progress::Progress;
use crate::tree::{HeaderTree, Node, DIR_MODE};

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
}

impl Default for PackOptions {
    fn default() -> Self {
        PackOptions {
            block_size: DEFAULT_BLOCK_SIZE,
            mtime: 0,
            jobs: crate::parallel::default_jobs(),
            xz_preset: DEFAULT_XZ_PRESET,
            kernel_release: None,
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

/// Build the image: squashfs, zero padding, trailer; length a multiple of 4096.
pub fn pack(tree: &HeaderTree, opts: &PackOptions, progress: &Progress) -> Result<Vec<u8>> {
    check_block_size(opts.block_size)?;
    if let Some(rel) = &opts.kernel_release {
        ensure!(rel.len() < 64, "kernel release {rel:?} is longer than 63 bytes");
    }
    let settings = XzSettings { preset: opts.xz_preset, dict_size: opts.block_size };

    // 1. Dry run: learn which blocks backhand wants compressed.
    progress.update("laying out", 0, 1);
    let template = root_template(opts.mtime)?;
    let (dry_run, recorded) =
        with_mode(Mode::Record(Vec::new()), || write_squashfs(tree, opts, &template, NullSink::default()));
    dry_run?;
    let Mode::Record(blocks) = recorded else { unreachable!("mode set above") };
    let mut unique: Vec<Vec<u8>> = blocks;
    unique.sort_unstable();
    unique.dedup();

    // 2. Compress them all, in parallel.
    let total = unique.len() as u64;
    let compressed = parallel_map(
        &unique,
        opts.jobs,
        |b| xz_compress(b, settings),
        |d| progress.update("compressing", d, total),
    );
    let mut table = HashMap::with_capacity(unique.len());
    for (raw, packed) in unique.into_iter().zip(compressed) {
        table.insert(raw, packed?);
    }

    // 3. The real run.
    progress.update("writing", 0, 1);
    let (result, _) = with_mode(Mode::Replay { table, settings }, || {
        write_squashfs(tree, opts, &template, Cursor::new(Vec::new()))
    });
    let (sb, out) = result?;
    let mut image = out.into_inner();
    progress.finish();

    let used = sb.bytes_used;
    ensure!(used == image.len() as u64, "backhand wrote {} bytes, superblock says {used}", image.len());
    let padded = (used + TRAILER_SIZE as u64).div_ceil(IMAGE_ALIGN) * IMAGE_ALIGN;
    image.resize(padded as usize - TRAILER_SIZE, 0);

    let stats = tree.stats();
    let mut release = [0u8; 64];
    if let Some(r) = &opts.kernel_release {
        release[..r.len()].copy_from_slice(r.as_bytes());
    }
    let mut trailer = Trailer {
        magic: format::TRAILER_MAGIC,
        version: format::TRAILER_VERSION.into(),
        trailer_size: (TRAILER_SIZE as u32).into(),
        squashfs_len: used.into(),
        squashfs_crc32: crc32fast::hash(&image[..used as usize]).into(),
        block_size: opts.block_size.into(),
        file_count: u32::try_from(stats.files)?.into(),
        dir_count: u32::try_from(stats.dirs)?.into(),
        symlink_count: u32::try_from(stats.symlinks)?.into(),
        reserved0: 0.into(),
        uncompressed_bytes: stats.file_bytes.into(),
        kernel_release: release,
        reserved1: 0.into(),
        trailer_crc32: 0.into(),
    };
    trailer.seal();
    image.extend_from_slice(trailer.as_bytes());
    debug_assert_eq!(image.len() as u64 % IMAGE_ALIGN, 0);
    Ok(image)
}

/// One backhand write of `tree`; `template` is [`root_template`]'s image.
fn write_squashfs<W: Write + Seek>(
    tree: &HeaderTree,
    opts: &PackOptions,
    template: &[u8],
    mut out: W,
) -> Result<(SuperBlock, W)> {
    let template =
        backhand::FilesystemReader::from_reader(Cursor::new(template)).map_err(|e| anyhow!("{e}"))?;
    let mut fs = FilesystemWriter::from_fs_reader(&template).map_err(|e| anyhow!("{e}"))?;
    fs.set_no_duplicate_files(true);
    fs.set_kind(Kind::new_v4(&TABLE_XZ));
    fs.set_block_size(opts.block_size);
    fs.set_time(opts.mtime);
    fs.set_root_mode(DIR_MODE as u16);
    fs.set_root_uid(0);
    fs.set_root_gid(0);
    fs.set_only_root_id();
    fs.set_no_padding();
    let xz = Xz { dictionary_size: opts.block_size, filters: XzFilter::new(0), bit_opts: None, fb: None };
    fs.set_compressor(FilesystemCompressor::new(Compressor::Xz, Some(CompressionOptions::Xz(xz)))?);

    let header = |mode: u32| NodeHeader::new(mode as u16, 0, 0, opts.mtime);
    // Sorted paths put every parent before its children.
    for (path, node) in &tree.entries {
        match node {
            Node::Dir { mode } => fs.push_dir(path, header(*mode)),
            Node::File { mode, data } => fs.push_file(Cursor::new(&data[..]), path, header(*mode)),
            Node::Symlink { target } => fs.push_symlink(target, path, header(crate::tree::SYMLINK_MODE)),
        }
        .with_context(|| format!("adding {path}"))?;
    }
    let (sb, _) = fs.write(&mut out).map_err(|e| anyhow!("writing squashfs: {e}"))?;
    Ok((sb, out))
}

/// An empty, uncompressed image whose root directory has time `mtime`.
///
/// backhand 0.25 has no setter for the root inode's time (it stays 0); a
/// writer made `from_fs_reader` inherits the root header of the image read,
/// so we make that image and patch the root inode's `mtime` in place (its
/// metadata is stored raw).
fn root_template(mtime: u32) -> Result<Vec<u8>> {
    let mut fs = FilesystemWriter::default();
    fs.set_compressor(FilesystemCompressor::new(Compressor::Uncompressed, None)?);
    fs.set_root_mode(DIR_MODE as u16);
    fs.set_only_root_id();
    let mut buf = Cursor::new(Vec::new());
    let (sb, _) = fs.write(&mut buf).map_err(|e| anyhow!("writing the root template: {e}"))?;
    let mut img = buf.into_inner();
    let block = (sb.inode_table + (sb.root_inode >> 16)) as usize;
    let offset = (sb.root_inode & 0xffff) as usize;
    // Inode header: type, mode, uid, gid (u16 each), then mtime (u32).
    let at = block + 2 + offset + 8;
    img.get_mut(at..at + 4)
        .context("root template: root inode outside the image")?
        .copy_from_slice(&mtime.to_le_bytes());
    let check = backhand::FilesystemReader::from_reader(Cursor::new(&img[..]))
        .map_err(|e| anyhow!("reading back the root template: {e}"))?;
    let root_time = check.files().next().map(|root| root.header.mtime);
    drop(check);
    ensure!(root_time == Some(mtime), "root template: time {root_time:?}, wanted {mtime}");
    Ok(img)
}

#[derive(Debug, Clone, Copy)]
struct XzSettings {
    preset: u32,
    dict_size: u32,
}

/// One squashfs block as the kernel's xz decoder accepts it: a single xz
/// stream, LZMA2 only (BCJ gains nothing on headers), CRC32 check (CRC64 is
/// refused), dictionary = block size (a power of two, as the kernel requires
/// once compression options are written).
fn xz_compress(input: &[u8], s: XzSettings) -> Result<Vec<u8>, BackhandError> {
    let err = |e: liblzma::stream::Error| BackhandError::CompressionInit(e.to_string());
    let mut opts = LzmaOptions::new_preset(s.preset).map_err(err)?;
    opts.dict_size(s.dict_size);
    // Text has no 2^pb-byte structure; pb=0 saves ~0.5% on headers.
    opts.position_bits(0);
    let mut filters = Filters::new();
    filters.lzma2(&opts);
    let mut stream = Stream::new_stream_encoder(&filters, Check::Crc32).map_err(err)?;
    let mut out = Vec::with_capacity(input.len() + input.len() / 8 + 128);
    loop {
        let consumed = stream.total_in() as usize;
        match stream.process_vec(&input[consumed..], &mut out, Action::Finish).map_err(err)? {
            Status::StreamEnd => return Ok(out),
            _ => out.reserve(out.capacity().max(4096)),
        }
    }
}

enum Mode {
    /// Not inside `pack()` on this thread: refuse, so that a backhand change
    /// that compressed elsewhere (other threads) fails instead of silently
    /// producing other bytes.
    Idle,
    Record(Vec<Vec<u8>>),
    Replay {
        table: HashMap<Vec<u8>, Vec<u8>>,
        settings: XzSettings,
    },
}

thread_local! {
    // backhand needs a `&'static` compressor; per-pack state lives here.
    // backhand (without its "parallel" feature) compresses on the calling thread.
    static MODE: RefCell<Mode> = const { RefCell::new(Mode::Idle) };
}

fn with_mode<T>(mode: Mode, f: impl FnOnce() -> T) -> (T, Mode) {
    MODE.with(|m| *m.borrow_mut() = mode);
    let r = f();
    (r, MODE.with(|m| std::mem::replace(&mut *m.borrow_mut(), Mode::Idle)))
}

struct TableXz;
static TABLE_XZ: TableXz = TableXz;

impl CompressionAction for TableXz {
    type Error = BackhandError;
    type Compressor = Compressor;
    type FilesystemCompressor = FilesystemCompressor;
    type SuperBlock = SuperBlock;

    fn decompress(&self, bytes: &[u8], out: &mut Vec<u8>, c: Compressor) -> Result<(), BackhandError> {
        DefaultCompressor.decompress(bytes, out, c)
    }

    fn compress(
        &self,
        bytes: &[u8],
        _fc: FilesystemCompressor,
        _block_size: u32,
    ) -> Result<Vec<u8>, BackhandError> {
        MODE.with(|m| match &mut *m.borrow_mut() {
            Mode::Record(blocks) => {
                blocks.push(bytes.to_vec());
                // Longer than the input: stored raw in the dry run; size is irrelevant there.
                let mut fake = bytes.to_vec();
                fake.push(0);
                Ok(fake)
            }
            Mode::Replay { table, settings } => match table.get(bytes) {
                Some(c) => Ok(c.clone()),
                None => {
                    let c = xz_compress(bytes, *settings)?;
                    table.insert(bytes.to_vec(), c.clone());
                    Ok(c)
                }
            },
            Mode::Idle => Err(BackhandError::CompressionInit("block compressed outside pack()".to_string())),
        })
    }

    fn compression_options(
        &self,
        sb: &mut SuperBlock,
        kind: &Kind,
        fc: FilesystemCompressor,
    ) -> Result<Option<Vec<u8>>, BackhandError> {
        DefaultCompressor.compression_options(sb, kind, fc)
    }
}

/// A `Write + Seek` that keeps only its length: the dry run's output.
#[derive(Default)]
struct NullSink {
    pos: u64,
    len: u64,
}

impl Write for NullSink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.pos += buf.len() as u64;
        self.len = self.len.max(self.pos);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Seek for NullSink {
    fn seek(&mut self, to: SeekFrom) -> std::io::Result<u64> {
        let base = match to {
            SeekFrom::Start(p) => {
                return Ok({
                    self.pos = p;
                    p
                })
            }
            SeekFrom::End(d) => self.len as i64 + d,
            SeekFrom::Current(d) => self.pos as i64 + d,
        };
        self.pos = u64::try_from(base).map_err(|_| std::io::Error::other("seek before start"))?;
        Ok(self.pos)
    }
}
