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

use std::collections::{BTreeMap, HashMap};

use anyhow::{bail, ensure, Context, Result};

use crate::format::{
    FLAG_COMPRESSOR_OPTIONS, MAX_BLOCK_SIZE, METADATA_UNCOMPRESSED, MIN_BLOCK_SIZE, SQUASHFS_MAGIC,
};
use crate::parallel::parallel_map;
use crate::progress::Progress;
use crate::tree::{HeaderTree, Node};

/// Squashfs' metadata block size.
const METADATA_SIZE: usize = 8192;
/// Longest name we write: Linux' `NAME_MAX` (squashfs' own limit,
/// `SQUASHFS_NAME_LEN`, is 256, but no path walk can reach such a name).
pub const MAX_NAME_LEN: usize = 255;
/// Longest symlink target we write. The kernel reads up to `PAGE_SIZE`,
/// but backhand, which `inspect` and `verify` read images with, refuses
/// 256 or more; real header trees hold short relative links.
pub const MAX_SYMLINK_LEN: usize = 255;
/// Most entries (inodes, the root included) an image can have: inode
/// numbers are 32-bit from 1, and the root's parent, `inode_count + 1`, must
/// be one too.
pub const MAX_INODES: u64 = u32::MAX as u64 - 1;
/// Entries per directory header (`SQUASHFS_DIR_COUNT`).
const DIR_COUNT: usize = 256;
const INVALID_FRAG: u32 = 0xffff_ffff;
const INVALID_TABLE: u64 = u64::MAX;
/// Stored-uncompressed bit of a data or fragment block size.
const BLOCK_UNCOMPRESSED: u32 = 1 << 24;

const SUPERBLOCK_SIZE: usize = 96;
/// `SQUASHFS_NOI`: inodes (and, as mksquashfs' -noI, all metadata) stored uncompressed.
const FLAG_UNCOMPRESSED_METADATA: u16 = 1 << 0;
const FLAG_DUPLICATES: u16 = 1 << 6;
const FLAG_NO_XATTRS: u16 = 1 << 9;

const DIR_TYPE: u16 = 1;
const REG_TYPE: u16 = 2;
const SYMLINK_TYPE: u16 = 3;
const LDIR_TYPE: u16 = 8;

/// How each block of the image is compressed.
pub trait BlockCompressor: Sync {
    /// Squashfs compressor id (superblock).
    fn id(&self) -> u16;
    /// Contents of the compression options block, if one is written.
    fn options(&self) -> Option<Vec<u8>>;
    /// One independently decompressible block.
    fn compress(&self, data: &[u8]) -> Result<Vec<u8>>;
}

/// Where one regular file's data goes, in data order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placement<'a> {
    pub path: &'a str,
    /// Blocks of its own instead of a share of a fragment block: reading it
    /// then decompresses exactly its bytes and bypasses the kernel's small
    /// fragment cache.
    pub own_blocks: bool,
    /// Close the current fragment block before this file, even if it has room.
    pub new_fragment: bool,
}

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

/// A finished reference into a metadata table: compressed block start
/// (relative to the table) and offset in the uncompressed block.
#[derive(Debug, Clone, Copy)]
struct MetaRef {
    block: u32,
    offset: u16,
}

impl MetaRef {
    fn inode_ref(self) -> u64 {
        (u64::from(self.block) << 16) | u64::from(self.offset)
    }
}

/// A metadata table written in 8 KiB blocks, each compressed when full.
struct MetaWriter<'c> {
    out: Vec<u8>,
    pending: Vec<u8>,
    /// Uncompressed bytes flushed so far (a multiple of `METADATA_SIZE`).
    flushed: u64,
    /// Compressed start of each flushed block, relative to the table.
    block_starts: Vec<u32>,
    /// `None`: blocks are stored uncompressed.
    comp: Option<&'c dyn BlockCompressor>,
}

impl<'c> MetaWriter<'c> {
    fn new(comp: Option<&'c dyn BlockCompressor>) -> Self {
        MetaWriter { out: Vec::new(), pending: Vec::new(), flushed: 0, block_starts: Vec::new(), comp }
    }

    /// Where the next byte goes.
    fn pos(&self) -> Result<MetaRef> {
        Ok(MetaRef {
            block: u32::try_from(self.out.len()).context("metadata table larger than 4 GiB")?,
            offset: self.pending.len() as u16,
        })
    }

    /// Uncompressed position of the next byte from the table start.
    fn upos(&self) -> u64 {
        self.flushed + self.pending.len() as u64
    }

    fn write(&mut self, bytes: &[u8]) -> Result<()> {
        self.pending.extend_from_slice(bytes);
        while self.pending.len() >= METADATA_SIZE {
            let rest = self.pending.split_off(METADATA_SIZE);
            let block = std::mem::replace(&mut self.pending, rest);
            self.flush_block(&block)?;
        }
        Ok(())
    }

    fn flush_block(&mut self, block: &[u8]) -> Result<()> {
        self.block_starts.push(u32::try_from(self.out.len()).context("metadata table larger than 4 GiB")?);
        let c = match self.comp {
            Some(comp) => comp.compress(block)?,
            None => block.to_vec(),
        };
        if c.len() < block.len() {
            self.out.extend_from_slice(&(c.len() as u16).to_le_bytes());
            self.out.extend_from_slice(&c);
        } else {
            self.out.extend_from_slice(&(block.len() as u16 | METADATA_UNCOMPRESSED).to_le_bytes());
            self.out.extend_from_slice(block);
        }
        self.flushed += block.len() as u64;
        Ok(())
    }

    /// The table's bytes and the compressed start of each of its blocks.
    fn finish(mut self) -> Result<(Vec<u8>, Vec<u32>)> {
        if !self.pending.is_empty() {
            let block = std::mem::take(&mut self.pending);
            self.flush_block(&block)?;
        }
        Ok((self.out, self.block_starts))
    }
}

/// Little-endian field writer for inodes and directory entries.
#[derive(Default)]
struct Le(Vec<u8>);

impl Le {
    fn u16(&mut self, v: u16) -> &mut Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    fn u32(&mut self, v: u32) -> &mut Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    fn u64(&mut self, v: u64) -> &mut Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    fn bytes(&mut self, b: &[u8]) -> &mut Self {
        self.0.extend_from_slice(b);
        self
    }
}

/// One entry of the tree, with its place in the directory hierarchy.
struct Entry<'t> {
    name: &'t str,
    node: &'t Node,
    /// Index of the parent directory in `dirs`.
    parent: usize,
}

/// A directory: its entry (`None` for the root) and children, sorted.
struct Dir {
    entry: Option<usize>,
    children: Vec<usize>,
    subdirs: u32,
}

/// Where a regular file's data is.
#[derive(Debug, Clone, Default)]
struct FileData {
    start: u64,
    block_sizes: Vec<u32>,
    fragment: Option<(u32, u32)>,
}

/// Write `tree` as squashfs, file data in `plan` order (every regular file of
/// the tree exactly once).
pub fn write(
    tree: &HeaderTree,
    plan: &[Placement<'_>],
    comp: &dyn BlockCompressor,
    opts: &WriteOptions,
    progress: &Progress,
) -> Result<Written> {
    let bs = opts.block_size as usize;
    ensure!(
        opts.block_size.is_power_of_two() && (MIN_BLOCK_SIZE..=MAX_BLOCK_SIZE).contains(&opts.block_size),
        "block size must be a power of two from 4K to 1M, not {}",
        opts.block_size
    );

    check_inode_count(tree.entries.len() as u64 + 1)?;

    // --- The hierarchy -----------------------------------------------------
    let mut entries: Vec<Entry<'_>> = Vec::with_capacity(tree.entries.len());
    let mut dirs = vec![Dir { entry: None, children: Vec::new(), subdirs: 0 }];
    let mut dir_of_path: HashMap<&str, usize> = HashMap::from([("", 0)]);
    let mut index_of_path: HashMap<&str, usize> = HashMap::with_capacity(tree.entries.len());
    // Sorted paths put every parent before its children.
    for (path, node) in &tree.entries {
        let (parent_path, name) = path.rsplit_once('/').unwrap_or(("", path));
        ensure!(!name.is_empty() && name != "." && name != "..", "invalid path {path:?}");
        ensure!(
            name.len() <= MAX_NAME_LEN,
            "{path}: a name of {} bytes; names may have at most {MAX_NAME_LEN}",
            name.len()
        );
        if let Node::Symlink { target } = node {
            ensure!(
                target.len() <= MAX_SYMLINK_LEN,
                "{path}: a symlink target of {} bytes; targets may have at most {MAX_SYMLINK_LEN}",
                target.len()
            );
        }
        let Some(&parent) = dir_of_path.get(parent_path) else {
            bail!("{path}: parent directory {parent_path:?} is not in the tree");
        };
        let i = entries.len();
        entries.push(Entry { name, node, parent });
        index_of_path.insert(path, i);
        dirs[parent].children.push(i);
        if let Node::Dir { .. } = node {
            dirs[parent].subdirs += 1;
            dir_of_path.insert(path, dirs.len());
            dirs.push(Dir { entry: Some(i), children: Vec::new(), subdirs: 0 });
        }
    }
    for d in &mut dirs {
        // Squashfs lookups and readdir rely on strcmp order.
        d.children.sort_by(|&a, &b| entries[a].name.as_bytes().cmp(entries[b].name.as_bytes()));
    }

    // --- Data: blocks in plan order, compressed in parallel ------------------
    let mut planned = vec![false; entries.len()];
    let mut data_of: HashMap<usize, FileData> = HashMap::new();
    // Raw blocks in data order; each file records which blocks are its own.
    let mut raw: Vec<&[u8]> = Vec::new();
    let mut frag_raw: Vec<Vec<u8>> = Vec::new();
    enum Slot {
        Data(usize),
        Fragment(usize),
    }
    let mut slots: Vec<Slot> = Vec::new();
    let mut file_blocks: HashMap<usize, (usize, usize)> = HashMap::new(); // entry -> slot range
    let mut file_frag: HashMap<usize, (usize, u32)> = HashMap::new(); // entry -> (fragment, offset)
    let mut dup_of: HashMap<usize, usize> = HashMap::new();
    let mut by_content: HashMap<&[u8], usize> = HashMap::new();
    let mut cur_frag: Vec<u8> = Vec::new();
    let mut stats = DataStats::default();
    for p in plan {
        let Some(&i) = index_of_path.get(p.path) else {
            bail!("layout names {}, which is not in the tree", p.path)
        };
        let Node::File { data, .. } = entries[i].node else {
            bail!("layout names {}, which is not a file", p.path)
        };
        ensure!(!std::mem::replace(&mut planned[i], true), "layout names {} twice", p.path);
        ensure!(
            data.len() < 1 << 32,
            "{}: {} bytes, more than squashfs' basic file inode holds",
            p.path,
            data.len()
        );
        if data.is_empty() {
            continue;
        }
        if let Some(&first) = by_content.get(&data[..]) {
            dup_of.insert(i, first);
            stats.duplicate_files += 1;
            continue;
        }
        by_content.insert(&data[..], i);
        stats.data_bytes += data.len() as u64;
        if p.own_blocks || data.len() >= bs {
            let first = slots.len();
            for chunk in data.chunks(bs) {
                slots.push(Slot::Data(raw.len()));
                raw.push(chunk);
            }
            file_blocks.insert(i, (first, slots.len()));
            stats.own_block_files += 1;
            continue;
        }
        if !cur_frag.is_empty() && (p.new_fragment || cur_frag.len() + data.len() > bs) {
            slots.push(Slot::Fragment(frag_raw.len()));
            frag_raw.push(std::mem::take(&mut cur_frag));
        }
        file_frag.insert(i, (frag_raw.len(), cur_frag.len() as u32));
        cur_frag.extend_from_slice(data);
        stats.fragmented_files += 1;
    }
    if !cur_frag.is_empty() {
        slots.push(Slot::Fragment(frag_raw.len()));
        frag_raw.push(cur_frag);
    }
    if let Some(path) = tree
        .entries
        .iter()
        .enumerate()
        .find_map(|(i, (path, node))| (matches!(node, Node::File { .. }) && !planned[i]).then_some(path))
    {
        bail!("layout leaves out {path}");
    }
    stats.fragment_blocks = u32::try_from(frag_raw.len()).context("too many fragment blocks")?;

    let blocks: Vec<&[u8]> = slots
        .iter()
        .map(|s| match s {
            Slot::Data(r) => raw[*r],
            Slot::Fragment(f) => &frag_raw[*f][..],
        })
        .collect();
    let total = blocks.len() as u64;
    let compressed =
        parallel_map(&blocks, opts.jobs, |b| comp.compress(b), |d| progress.update("compressing", d, total));

    let mut image = vec![0u8; SUPERBLOCK_SIZE];
    let comp_opts = comp.options();
    if let Some(o) = &comp_opts {
        image.extend_from_slice(&(o.len() as u16 | METADATA_UNCOMPRESSED).to_le_bytes());
        image.extend_from_slice(o);
    }
    let mut slot_pos: Vec<(u64, u32)> = Vec::with_capacity(slots.len());
    for (b, c) in blocks.iter().zip(compressed) {
        let c = c?;
        let start = image.len() as u64;
        if c.len() < b.len() {
            slot_pos.push((start, c.len() as u32));
            image.extend_from_slice(&c);
        } else {
            slot_pos.push((start, b.len() as u32 | BLOCK_UNCOMPRESSED));
            image.extend_from_slice(b);
        }
    }
    let mut frag_entries: Vec<(u64, u32)> = vec![(0, 0); frag_raw.len()];
    for (s, &pos) in slots.iter().zip(&slot_pos) {
        if let Slot::Fragment(f) = s {
            frag_entries[*f] = pos;
        }
    }
    for (&i, &(a, b)) in &file_blocks {
        let sizes = slot_pos[a..b].iter().map(|p| p.1).collect();
        data_of.insert(i, FileData { start: slot_pos[a].0, block_sizes: sizes, fragment: None });
    }
    for (&i, &(f, off)) in &file_frag {
        data_of.insert(i, FileData { start: 0, block_sizes: Vec::new(), fragment: Some((f as u32, off)) });
    }
    for (&i, &first) in &dup_of {
        let d = data_of[&first].clone();
        data_of.insert(i, d);
    }
    let inode_table_start = image.len() as u64;
    ensure!(inode_table_start < 1 << 32, "file data exceeds the 4 GiB a basic squashfs inode can address");

    // --- Inode numbers: files and symlinks in directory order, then ----------
    // directories in post-order (children before parents, the root last).
    let dir_index_of: HashMap<usize, usize> =
        dirs.iter().enumerate().filter_map(|(d, dir)| dir.entry.map(|e| (e, d))).collect();
    let order: Vec<usize> = walk_order(&dirs, &entries, &dir_index_of)
        .into_iter()
        .filter(|&i| !matches!(entries[i].node, Node::Dir { .. }))
        .collect();
    let mut dir_post: Vec<usize> = Vec::with_capacity(dirs.len());
    fn post_order(d: usize, dirs: &[Dir], dir_index_of: &HashMap<usize, usize>, out: &mut Vec<usize>) {
        for &c in &dirs[d].children {
            if let Some(&sub) = dir_index_of.get(&c) {
                post_order(sub, dirs, dir_index_of, out);
            }
        }
        out.push(d);
    }
    post_order(0, &dirs, &dir_index_of, &mut dir_post);
    let inode_count = check_inode_count((order.len() + dir_post.len()) as u64)?;
    let mut ino = vec![0u32; entries.len()];
    for (n, &i) in order.iter().enumerate() {
        ino[i] = n as u32 + 1;
    }
    let mut dir_ino = vec![0u32; dirs.len()];
    for (n, &d) in dir_post.iter().enumerate() {
        dir_ino[d] = (order.len() + n) as u32 + 1;
        if let Some(e) = dirs[d].entry {
            ino[e] = dir_ino[d];
        }
    }

    // --- Inode and directory tables ----------------------------------------
    let meta_comp = opts.compress_metadata.then_some(comp);
    let mut inodes = MetaWriter::new(meta_comp);
    let mut dirtab = MetaWriter::new(meta_comp);
    let mut iref: Vec<Option<MetaRef>> = vec![None; entries.len()];
    let header = |t: &mut Le, kind: u16, mode: u32, number: u32| {
        t.u16(kind).u16(mode as u16 & 0o7777).u16(0).u16(0).u32(opts.mtime).u32(number);
    };
    for &i in &order {
        let mut t = Le::default();
        match entries[i].node {
            Node::File { mode, data } => {
                let d = data_of.get(&i).cloned().unwrap_or_default();
                header(&mut t, REG_TYPE, *mode, ino[i]);
                let (frag, off) = d.fragment.unwrap_or((INVALID_FRAG, 0));
                t.u32(d.start as u32).u32(frag).u32(off).u32(data.len() as u32);
                for s in &d.block_sizes {
                    t.u32(*s);
                }
            }
            Node::Symlink { target } => {
                header(&mut t, SYMLINK_TYPE, crate::tree::SYMLINK_MODE, ino[i]);
                t.u32(1).u32(target.len() as u32).bytes(target.as_bytes());
            }
            Node::Dir { .. } => unreachable!("directories are written below"),
        }
        iref[i] = Some(inodes.pos()?);
        inodes.write(&t.0)?;
    }
    let mut root_ref = None;
    for &d in &dir_post {
        let listing_start = dirtab.pos()?;
        let listing_ustart = dirtab.upos();
        let index = write_listing(&dirs[d], &entries, &ino, &iref, &mut dirtab)?;
        let listing_len = dirtab.upos() - listing_ustart;
        let (mode, parent) = match dirs[d].entry {
            Some(e) => {
                let Node::Dir { mode } = entries[e].node else { unreachable!("dirs hold directories") };
                (*mode, dir_ino[entries[e].parent])
            }
            None => (crate::tree::DIR_MODE, inode_count + 1),
        };
        let nlink = 2 + dirs[d].subdirs;
        let file_size = listing_len + 3;
        let mut t = Le::default();
        if index.is_empty() && file_size <= u64::from(u16::MAX) {
            header(&mut t, DIR_TYPE, mode, dir_ino[d]);
            t.u32(listing_start.block).u32(nlink).u16(file_size as u16).u16(listing_start.offset).u32(parent);
        } else {
            header(&mut t, LDIR_TYPE, mode, dir_ino[d]);
            let size = u32::try_from(file_size).context("directory listing larger than 4 GiB")?;
            t.u32(nlink).u32(size).u32(listing_start.block).u32(parent);
            t.u16(u16::try_from(index.len()).context("directory index too long")?);
            t.u16(listing_start.offset).u32(INVALID_FRAG);
            for (at, block, name) in &index {
                t.u32(*at).u32(*block).u32(name.len() as u32 - 1).bytes(name.as_bytes());
            }
        }
        let here = inodes.pos()?;
        match dirs[d].entry {
            Some(e) => iref[e] = Some(here),
            None => root_ref = Some(here),
        }
        inodes.write(&t.0)?;
    }
    let (inode_bytes, _) = inodes.finish()?;
    let (dir_bytes, _) = dirtab.finish()?;
    let root_ref = root_ref.expect("the root is written last");
    image.extend_from_slice(&inode_bytes);
    let dir_table_start = image.len() as u64;
    image.extend_from_slice(&dir_bytes);

    // --- Fragment table: entries in metadata blocks, then their index ------
    // (With no fragments the index is empty and the start is where it would be.)
    let mut w = MetaWriter::new(meta_comp);
    for (start, size) in &frag_entries {
        w.write(&Le::default().u64(*start).u32(*size).u32(0).0)?;
    }
    let (bytes, starts) = w.finish()?;
    let base = image.len() as u64;
    image.extend_from_slice(&bytes);
    let fragment_table_start = image.len() as u64;
    for s in starts {
        image.extend_from_slice(&(base + u64::from(s)).to_le_bytes());
    }

    // --- Id table: one id, 0 (every uid and gid) ---------------------------
    let mut w = MetaWriter::new(meta_comp);
    w.write(&0u32.to_le_bytes())?;
    let (bytes, starts) = w.finish()?;
    let base = image.len() as u64;
    image.extend_from_slice(&bytes);
    let id_table_start = image.len() as u64;
    image.extend_from_slice(&(base + u64::from(starts[0])).to_le_bytes());

    // --- Superblock --------------------------------------------------------
    let bytes_used = image.len() as u64;
    let mut flags = FLAG_NO_XATTRS;
    if !opts.compress_metadata {
        flags |= FLAG_UNCOMPRESSED_METADATA;
    }
    if stats.duplicate_files > 0 {
        flags |= FLAG_DUPLICATES;
    }
    if comp_opts.is_some() {
        flags |= FLAG_COMPRESSOR_OPTIONS;
    }
    let mut sb = Le::default();
    sb.bytes(&SQUASHFS_MAGIC)
        .u32(inode_count)
        .u32(opts.mtime)
        .u32(opts.block_size)
        .u32(stats.fragment_blocks)
        .u16(comp.id())
        .u16(opts.block_size.trailing_zeros() as u16)
        .u16(flags)
        .u16(1)
        .u16(4)
        .u16(0)
        .u64(root_ref.inode_ref())
        .u64(bytes_used)
        .u64(id_table_start)
        .u64(INVALID_TABLE)
        .u64(inode_table_start)
        .u64(dir_table_start)
        .u64(fragment_table_start)
        .u64(INVALID_TABLE);
    debug_assert_eq!(sb.0.len(), SUPERBLOCK_SIZE);
    image[..SUPERBLOCK_SIZE].copy_from_slice(&sb.0);
    progress.update("writing", 1, 1);
    Ok(Written { image, stats })
}

/// `n` inodes, if an image can have that many.
pub fn check_inode_count(n: u64) -> Result<u32> {
    ensure!(
        n <= MAX_INODES,
        "{n} files, directories and symlinks; a squashfs image holds at most {MAX_INODES}"
    );
    Ok(n as u32)
}

/// Write one directory's listing; return its index: (listing offset of a
/// header, compressed start of the directory block it is in, first name).
fn write_listing(
    dir: &Dir,
    entries: &[Entry<'_>],
    ino: &[u32],
    iref: &[Option<MetaRef>],
    dirtab: &mut MetaWriter<'_>,
) -> Result<Vec<(u32, u32, String)>> {
    // Group entries under headers: a new one when the inode block changes,
    // after 256 entries, when an inode number is out of i16 reach of the
    // header's, or when the listing enters a new metadata block (there the
    // index points, so a lookup can start in that block).
    let start = dirtab.upos();
    let mut groups: Vec<(u64, Vec<usize>)> = Vec::new(); // (listing offset, entries)
    let mut at = 0u64;
    for &c in &dir.children {
        let r = iref[c].expect("children are written before their directory");
        let entry_len = 8 + entries[c].name.len() as u64;
        let fits = groups.last().is_some_and(|(g_at, g)| {
            let first = g[0];
            let rf = iref[first].expect("written");
            let diff = i64::from(ino[c]) - i64::from(ino[first]);
            g.len() < DIR_COUNT
                && rf.block == r.block
                && (i64::from(i16::MIN)..=i64::from(i16::MAX)).contains(&diff)
                && (start + g_at) / METADATA_SIZE as u64 == (start + at) / METADATA_SIZE as u64
        });
        if fits {
            groups.last_mut().expect("checked").1.push(c);
        } else {
            groups.push((at, vec![c]));
            at += 12;
        }
        at += entry_len;
    }
    let mut index = Vec::new();
    let mut last_block = start / METADATA_SIZE as u64;
    for (g_at, g) in &groups {
        debug_assert_eq!(dirtab.upos() - start, *g_at);
        let here = dirtab.pos()?;
        let block_no = (start + g_at) / METADATA_SIZE as u64;
        if block_no != last_block {
            last_block = block_no;
            index.push((
                u32::try_from(*g_at).context("directory listing too long")?,
                here.block,
                entries[g[0]].name.to_string(),
            ));
        }
        let first = g[0];
        let base = iref[first].expect("written");
        let mut t = Le::default();
        t.u32(g.len() as u32 - 1).u32(base.block).u32(ino[first]);
        for &c in g {
            let r = iref[c].expect("written");
            let kind = match entries[c].node {
                Node::Dir { .. } => DIR_TYPE,
                Node::File { .. } => REG_TYPE,
                Node::Symlink { .. } => SYMLINK_TYPE,
            };
            let name = entries[c].name.as_bytes();
            t.u16(r.offset).u16((ino[c] as i64 - ino[first] as i64) as i16 as u16).u16(kind);
            t.u16(name.len() as u16 - 1).bytes(name);
        }
        dirtab.write(&t.0)?;
    }
    Ok(index)
}

/// Every entry in directory order: a depth-first walk, children in name
/// order (what `find` on the mount visits).
fn walk_order(dirs: &[Dir], entries: &[Entry<'_>], dir_index_of: &HashMap<usize, usize>) -> Vec<usize> {
    let mut out = Vec::with_capacity(entries.len());
    let mut stack: Vec<std::slice::Iter<'_, usize>> = vec![dirs[0].children.iter()];
    while let Some(it) = stack.last_mut() {
        match it.next() {
            Some(&c) => {
                out.push(c);
                if let Some(&d) = dir_index_of.get(&c) {
                    stack.push(dirs[d].children.iter());
                }
            }
            None => {
                stack.pop();
            }
        }
    }
    out
}

/// Every regular file of `tree`, in path order, in fragments: the layout
/// general tools use (and ours for trees without an include graph).
pub fn directory_plan(tree: &HeaderTree) -> Vec<Placement<'_>> {
    let mut by_dir: BTreeMap<Vec<&[u8]>, &str> = BTreeMap::new();
    for (path, node) in &tree.entries {
        if let Node::File { .. } = node {
            by_dir.insert(path.split('/').map(str::as_bytes).collect(), path);
        }
    }
    by_dir.into_values().map(|path| Placement { path, own_blocks: false, new_fragment: false }).collect()
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
