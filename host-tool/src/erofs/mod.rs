//! An EROFS writer for header trees, for kernels without squashfs (Android's
//! GKI has EROFS with LZ4 only).
//!
//! Every file's bytes go into one stream, the packed inode, in the layout
//! plan's order backwards (see [`packed_stream`]; the plan has the include
//! graph's hot headers first, in include order, then the rest in directory
//! order); each file records only its offset there (a whole-file fragment,
//! `mkfs.erofs -Eall-fragments`, Linux 6.1+).
//! The stream is cut into LZ4 physical clusters of up to
//! [`WriteOptions::pcluster_blocks`] blocks, each as full as the encoder
//! fills it (fixed-output compression). So small headers cost no block of
//! their own, and a compile's headers, stored together, are decompressed
//! together: the kernel reads a file out of the packed inode's page cache,
//! which decompresses a whole pcluster at a time.
//!
//! What is written, in this order:
//!
//! ```text
//! block 0: superblock (at 1024) | LZ4 configuration
//! metadata (from block 1): inodes (32 bytes, compact), directories' last
//!   blocks and symlink targets inline after their inodes, each file's
//!   fragment offset after its inode, the packed inode and its indexes last
//! data: directory blocks other than the last | the packed inode's pclusters
//! ```
//!
//! Metadata and directories are stored uncompressed: a lookup reads them
//! straight from the device's page cache.

mod records;

use std::collections::HashMap;

use anyhow::{bail, ensure, Result};
use zerocopy::{FromBytes, IntoBytes};

use crate::compress::Compressor;
use crate::format::FsFormat;
use crate::hierarchy::Hierarchy;
use crate::layout::Placement;
use crate::parallel::parallel_map;
use crate::progress::Progress;
use crate::tree::{HeaderTree, Node};
use records::*;
pub use records::{SuperBlock, BLOCK_SIZE, EROFS_MAGIC, SUPER_OFFSET};

/// Default physical cluster: 8 blocks (32 KiB). With the stream stored
/// backwards, 16, 32 and 64 KiB read within 5% of each other
/// (docs/benchmarks.md, a full-config tree); 16 KiB is over the size target
/// (1.93x the tar.xz), 32 KiB is 1.85x, 64 KiB 1.82x but its compile sets
/// read 4% slower.
pub const DEFAULT_PCLUSTER_BLOCKS: u32 = 8;
/// The stream is compressed in segments of this many bytes in parallel; each
/// segment ends with a pcluster of its own (lcluster-aligned, so the
/// indexes work out), which costs a fraction of a block per segment.
const SEGMENT: usize = 1 << 20;
const S_IFDIR: u16 = 0o040000;
const S_IFREG: u16 = 0o100000;
const S_IFLNK: u16 = 0o120000;

#[derive(Debug, Clone)]
pub struct WriteOptions {
    /// The one time stamp (the superblock's build time, which compact
    /// inodes take).
    pub mtime: u32,
    pub jobs: usize,
    /// Largest physical cluster, in 4 KiB blocks (1 to 256).
    pub pcluster_blocks: u32,
}

/// What the image holds, for reports and tests.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ErofsStats {
    /// Bytes in the packed inode (every distinct file once).
    pub packed_bytes: u64,
    /// Physical clusters, and of those stored uncompressed.
    pub pclusters: u32,
    pub plain_pclusters: u32,
    /// Blocks the pclusters take.
    pub compressed_blocks: u32,
    /// Files whose bytes equal an earlier file's and share its offset.
    pub duplicate_files: u64,
    /// Metadata bytes (inodes, inline data, indexes).
    pub metadata_bytes: u64,
}

pub struct Written {
    /// The filesystem (`blocks` × 4 KiB).
    pub image: Vec<u8>,
    pub stats: ErofsStats,
}

/// Most pcluster blocks the kernel takes (`Z_EROFS_PCLUSTER_MAX_SIZE`).
pub const MAX_PCLUSTER_BLOCKS: u32 = (PCLUSTER_MAX_SIZE / BLOCK_SIZE) as u32;

/// Write `tree` as EROFS, file data in `plan` order (every regular file of
/// the tree exactly once), compressed by `comp` (lz4 or lz4hc).
pub fn write(
    tree: &HeaderTree,
    plan: &[Placement<'_>],
    comp: &Compressor,
    opts: &WriteOptions,
    progress: &Progress,
) -> Result<Written> {
    FsFormat::Erofs.check_compressor(comp.algorithm)?;
    ensure!(
        (1..=MAX_PCLUSTER_BLOCKS).contains(&opts.pcluster_blocks),
        "pcluster size must be 1 to {MAX_PCLUSTER_BLOCKS} blocks of 4 KiB, not {}",
        opts.pcluster_blocks
    );
    let h = Hierarchy::new(tree)?;
    let (stream, fragment_of, duplicate_files) = packed_stream(&h, plan)?;
    ensure!(
        stream.len() < 1 << 32,
        "{} bytes of headers; an EROFS image of compact inodes holds less than 4 GiB",
        stream.len()
    );
    let pclusters = compress_stream(&stream, comp, opts.pcluster_blocks, opts.jobs, progress)?;
    progress.update("writing", 0, 1);

    // Metadata: where each inode goes, then the packed inode.
    let order = inode_order(&h);
    let dirs = directory_contents(&h);
    let mut meta = MetaLayout::default();
    let mut pos_of_entry = vec![0usize; h.entries.len()];
    let mut root_pos = 0;
    for &slot in &order {
        match slot {
            Slot::Root => root_pos = meta.place(dirs[0].tail_inline_len(), true),
            Slot::Entry(i) => {
                pos_of_entry[i] = match h.entries[i].node {
                    Node::Dir { .. } => {
                        meta.place(dirs[h.dir_of_entry[i].expect("a directory")].tail_inline_len(), true)
                    }
                    Node::Symlink { target } => meta.place(target.len(), true),
                    Node::File { data, .. } if data.is_empty() => meta.place(0, false),
                    // The fragment offset (a map header) follows the inode.
                    Node::File { .. } => meta.place(8, false),
                };
            }
        }
    }
    let lclusters = stream_lclusters(&pclusters);
    let packed_pos = meta.place(full_index_start(NID_UNIT) - NID_UNIT + 8 * lclusters, false);
    let meta_blocks = meta.len.div_ceil(BLOCK_SIZE);
    let nid = |pos: usize| (pos / NID_UNIT) as u64;
    ensure!(nid(root_pos) < 1 << 16, "the root inode must be within the first 2 MiB of metadata");

    // Data: directories' full blocks, then the pclusters.
    let meta_blkaddr = 1usize;
    let mut next_block = meta_blkaddr + meta_blocks;
    let mut dir_blkaddr = vec![0u32; dirs.len()];
    for (d, c) in dirs.iter().enumerate() {
        if c.data_blocks() > 0 {
            dir_blkaddr[d] = block_addr(next_block)?;
            next_block += c.data_blocks();
        }
    }
    let first_pcluster_block = next_block;
    let compressed_blocks: usize = pclusters.iter().map(|p| p.blocks()).sum();
    let total_blocks = first_pcluster_block + compressed_blocks;
    block_addr(total_blocks)?;

    let mut image = vec![0u8; total_blocks * BLOCK_SIZE];
    let meta_base = meta_blkaddr * BLOCK_SIZE;
    let nid_of_entry = |i: usize| nid(pos_of_entry[i]);
    let nid_of_dir = |d: usize| match h.dirs[d].entry {
        None => nid(root_pos),
        Some(e) => nid_of_entry(e),
    };
    let ino = |pos: usize| (pos / NID_UNIT + 1) as u32;

    // Directories: their blocks, then their inodes with the last block inline.
    for (d, c) in dirs.iter().enumerate() {
        let parent = match h.dirs[d].entry {
            None => d,
            Some(e) => h.entries[e].parent,
        };
        let blocks = c.encode(&h, nid_of_dir(d), nid_of_dir(parent), &nid_of_entry);
        let (pos, mode) = match h.dirs[d].entry {
            None => (root_pos, crate::tree::DIR_MODE),
            Some(e) => match h.entries[e].node {
                Node::Dir { mode } => (pos_of_entry[e], *mode),
                _ => unreachable!("a directory's entry"),
            },
        };
        let at = meta_base + pos;
        let inline = c.tail_inline_len() > 0;
        let inode = InodeCompact {
            i_format: i_format(if inline { INODE_FLAT_INLINE } else { INODE_FLAT_PLAIN }).into(),
            i_mode: (S_IFDIR | (mode & 0o7777) as u16).into(),
            i_nlink: (2 + h.dirs[d].subdirs as u16).into(),
            i_size: (c.size as u32).into(),
            i_u: dir_blkaddr[d].into(),
            i_ino: ino(pos).into(),
            ..Default::default()
        };
        image[at..at + NID_UNIT].copy_from_slice(inode.as_bytes());
        for (b, bytes) in blocks.iter().enumerate() {
            if inline && b == blocks.len() - 1 {
                image[at + NID_UNIT..at + NID_UNIT + bytes.len()].copy_from_slice(bytes);
            } else {
                let off = (dir_blkaddr[d] as usize + b) * BLOCK_SIZE;
                image[off..off + bytes.len()].copy_from_slice(bytes);
            }
        }
    }
    // Files and symlinks.
    for (i, e) in h.entries.iter().enumerate() {
        let at = meta_base + pos_of_entry[i];
        let (mut inode, inline): (InodeCompact, Vec<u8>) = match e.node {
            Node::Dir { .. } => continue,
            Node::Symlink { target } => (
                InodeCompact {
                    i_format: i_format(INODE_FLAT_INLINE).into(),
                    i_mode: (S_IFLNK | crate::tree::SYMLINK_MODE as u16).into(),
                    i_size: (target.len() as u32).into(),
                    ..Default::default()
                },
                target.as_bytes().to_vec(),
            ),
            Node::File { mode, data } if data.is_empty() => (
                InodeCompact {
                    i_format: i_format(INODE_FLAT_PLAIN).into(),
                    i_mode: (S_IFREG | (*mode & 0o7777) as u16).into(),
                    ..Default::default()
                },
                Vec::new(),
            ),
            Node::File { mode, data } => {
                let off = fragment_of[i].expect("every non-empty file is in the stream");
                (
                    InodeCompact {
                        i_format: i_format(INODE_COMPRESSED_FULL).into(),
                        i_mode: (S_IFREG | (*mode & 0o7777) as u16).into(),
                        i_size: (data.len() as u32).into(),
                        ..Default::default()
                    },
                    (off | 1 << (56 + Z_EROFS_FRAGMENT_INODE_BIT)).to_le_bytes().to_vec(),
                )
            }
        };
        inode.i_nlink = 1.into();
        inode.i_ino = ino(pos_of_entry[i]).into();
        image[at..at + NID_UNIT].copy_from_slice(inode.as_bytes());
        image[at + NID_UNIT..at + NID_UNIT + inline.len()].copy_from_slice(&inline);
    }
    // The packed inode, its indexes, its pclusters.
    let big = opts.pcluster_blocks > 1;
    let indexes = lcluster_indexes(&pclusters, lclusters, first_pcluster_block, big)?;
    let at = meta_base + packed_pos;
    let packed = InodeCompact {
        i_format: i_format(INODE_COMPRESSED_FULL).into(),
        i_mode: S_IFREG.into(),
        i_nlink: 1.into(),
        i_size: (pclusters.last().map_or(0, |p| p.end) as u32).into(),
        i_u: (compressed_blocks as u32).into(),
        i_ino: ino(packed_pos).into(),
        ..Default::default()
    };
    image[at..at + NID_UNIT].copy_from_slice(packed.as_bytes());
    let header = MapHeader {
        h_word0: 0.into(),
        h_advise: if big { Z_EROFS_ADVISE_BIG_PCLUSTER_1 } else { 0 }.into(),
        h_algorithmtype: Z_EROFS_COMPRESSION_LZ4,
        h_clusterbits: 0,
    };
    let hdr = at + NID_UNIT.next_multiple_of(8);
    image[hdr..hdr + 8].copy_from_slice(header.as_bytes());
    let first_index = at + full_index_start(NID_UNIT);
    image[first_index..first_index + 8 * indexes.len()].copy_from_slice(indexes.as_bytes());
    let mut block = first_pcluster_block;
    let mut plain = 0u32;
    for p in &pclusters {
        let off = block * BLOCK_SIZE;
        let len = p.blocks() * BLOCK_SIZE;
        match &p.kind {
            // Zero padding first: the kernel finds the data's start by
            // skipping it (ZERO_PADDING), and may decompress in place.
            PclusterKind::Lz4(c) => image[off + len - c.len()..off + len].copy_from_slice(c),
            // Stored bytes start the block.
            PclusterKind::Plain => {
                plain += 1;
                image[off..off + p.end - p.start].copy_from_slice(&stream[p.start..p.end]);
            }
        }
        block += p.blocks();
    }

    let algs = 1u16 << Z_EROFS_COMPRESSION_LZ4;
    let sb = SuperBlock {
        magic: EROFS_MAGIC.into(),
        checksum: 0.into(),
        feature_compat: 0.into(),
        blkszbits: BLOCK_BITS,
        sb_extslots: 0,
        root_nid: (nid(root_pos) as u16).into(),
        inos: (h.entries.len() as u64 + 2).into(),
        build_time: u64::from(opts.mtime).into(),
        build_time_nsec: 0.into(),
        blocks: (total_blocks as u32).into(),
        meta_blkaddr: (meta_blkaddr as u32).into(),
        xattr_blkaddr: 0.into(),
        uuid: [0; 16],
        volume_name: *b"kheaders\0\0\0\0\0\0\0\0",
        feature_incompat: (FEATURE_INCOMPAT_ZERO_PADDING
            | FEATURE_INCOMPAT_COMPR_CFGS
            | FEATURE_INCOMPAT_FRAGMENTS)
            .into(),
        available_compr_algs: algs.into(),
        extra_devices: 0.into(),
        devt_slotoff: 0.into(),
        dirblkbits: 0,
        xattr_prefix_count: 0,
        xattr_prefix_start: 0.into(),
        packed_nid: nid(packed_pos).into(),
        xattr_filter_reserved: 0,
        reserved2: [0; 23],
    };
    image[SUPER_OFFSET..SUPER_OFFSET + 128].copy_from_slice(sb.as_bytes());
    // The algorithm configurations: a 2-byte length, then the record.
    let cfgs = Lz4Cfgs {
        max_distance: 0.into(),
        max_pclusterblks: (opts.pcluster_blocks as u16).into(),
        reserved: [0; 10],
    };
    let c = SUPER_OFFSET + 128;
    image[c..c + 2].copy_from_slice(&(size_of::<Lz4Cfgs>() as u16).to_le_bytes());
    image[c + 2..c + 2 + size_of::<Lz4Cfgs>()].copy_from_slice(cfgs.as_bytes());
    progress.update("writing", 1, 1);

    Ok(Written {
        image,
        stats: ErofsStats {
            packed_bytes: pclusters.last().map_or(0, |p| p.end as u64),
            pclusters: pclusters.len() as u32,
            plain_pclusters: plain,
            compressed_blocks: compressed_blocks as u32,
            duplicate_files,
            metadata_bytes: meta.len as u64,
        },
    })
}

/// The largest physical cluster an EROFS image's LZ4 data may use, in bytes:
/// its LZ4 configuration's `max_pclusterblks` (`z_erofs_load_lz4_config()`
/// reads 0, or no configuration, as one block). `image` starts with the
/// superblock's block.
pub fn largest_pcluster(image: &[u8], sb: &SuperBlock) -> u32 {
    let algs = sb.available_compr_algs.get();
    let blocks = if sb.feature_incompat.get() & FEATURE_INCOMPAT_COMPR_CFGS != 0
        && algs & (1 << Z_EROFS_COMPRESSION_LZ4) != 0
    {
        // The first record is LZ4's: records follow in algorithm order.
        let at = SUPER_OFFSET + 128 + 2;
        image
            .get(at..at + size_of::<Lz4Cfgs>())
            .and_then(|b| Lz4Cfgs::read_from_bytes(b).ok())
            .map_or(1, |c| u32::from(c.max_pclusterblks.get()).max(1))
    } else {
        1
    };
    blocks * BLOCK_SIZE as u32
}

fn block_addr(block: usize) -> Result<u32> {
    u32::try_from(block).map_err(|_| anyhow::anyhow!("image of {block} blocks: more than EROFS addresses"))
}

/// Every distinct file's bytes, in plan order backwards, and each entry's
/// offset there.
///
/// Backwards because of how the kernel reads the packed inode
/// (`fs/erofs/zdata.c`, 6.12 to 7.3): a file's fragment is copied out of the
/// packed inode's page cache one page at a time (`z_erofs_read_fragment` ->
/// `erofs_bread`), and a missing page comes from `z_erofs_read_folio`, which
/// for LZ4 decompresses the pcluster from its start only up to the end of
/// that page (the extent ends at the page's lcluster: `z_erofs_do_map_blocks`
/// finds the full length only for LZMA, DEFLATE and zstd) and keeps the
/// pages before it. Read in stream order, a pcluster of n pages is thus
/// decompressed n times, over n(n+1)/2 pages. Stored backwards, the files a
/// reader opens first lie at the highest offsets: its first page in a
/// pcluster is the highest it will need there, and one decompression fills
/// the rest. Measured on a full-config tree (zram, 32 KiB pclusters): the
/// full read 235 -> 171 ms, compile sets 38 -> 33 ms.
fn packed_stream(h: &Hierarchy<'_>, plan: &[Placement<'_>]) -> Result<(Vec<u8>, Vec<Option<u64>>, u64)> {
    let mut stream = Vec::new();
    let mut fragment_of = vec![None; h.entries.len()];
    let mut seen: HashMap<&[u8], u64> = HashMap::new();
    let mut duplicates = 0u64;
    for p in plan.iter().rev() {
        let Some(&i) = h.index_of_path.get(p.path) else {
            bail!("layout plan names {} twice or not at all", p.path)
        };
        let Node::File { data, .. } = h.entries[i].node else {
            bail!("layout plan names {}, not a file", p.path)
        };
        ensure!(fragment_of[i].is_none(), "layout plan names {} twice", p.path);
        if data.is_empty() {
            fragment_of[i] = Some(0);
            continue;
        }
        let off = match seen.get(data.as_slice()) {
            Some(&off) => {
                duplicates += 1;
                off
            }
            None => {
                let off = stream.len() as u64;
                stream.extend_from_slice(data);
                seen.insert(data, off);
                off
            }
        };
        fragment_of[i] = Some(off);
    }
    for (i, e) in h.entries.iter().enumerate() {
        if let Node::File { .. } = e.node {
            ensure!(fragment_of[i].is_some(), "layout plan leaves out {}", e.path);
        }
    }
    Ok((stream, fragment_of, duplicates))
}

/// One physical cluster of the packed inode: logical bytes `start..end`.
#[derive(Debug, Clone)]
struct Pcluster {
    start: usize,
    end: usize,
    kind: PclusterKind,
}

#[derive(Debug, Clone)]
enum PclusterKind {
    /// LZ4 data (without its padding).
    Lz4(Vec<u8>),
    /// Stored, in one block.
    Plain,
}

impl Pcluster {
    fn blocks(&self) -> usize {
        match &self.kind {
            PclusterKind::Lz4(c) => c.len().div_ceil(BLOCK_SIZE),
            PclusterKind::Plain => 1,
        }
    }
}

/// Cut the stream into pclusters, segment by segment in parallel.
///
/// The kernel's index rules (`fs/erofs/zmap.c`), with lclusters of one
/// block: each pcluster starts in an lcluster of its own (the next
/// pcluster's start lies in a later lcluster than this one's); one of
/// several blocks needs the lcluster after its start to be one it covers
/// (a NONHEAD, which records the block count); and a stored pcluster's
/// bytes end at the next lcluster boundary, where the kernel's length for
/// it ends too.
fn compress_stream(
    stream: &[u8],
    comp: &Compressor,
    max_blocks: u32,
    jobs: usize,
    progress: &Progress,
) -> Result<Vec<Pcluster>> {
    let segments: Vec<(usize, usize)> =
        (0..stream.len()).step_by(SEGMENT).map(|s| (s, (s + SEGMENT).min(stream.len()))).collect();
    let total = segments.len() as u64;
    let parts = parallel_map(
        &segments,
        jobs,
        |&(s, e)| compress_segment(stream, s, e, comp, max_blocks),
        |done| progress.update("compressing", done, total),
    );
    let mut out = Vec::new();
    for p in parts {
        out.extend(p?);
    }
    Ok(out)
}

fn compress_segment(
    stream: &[u8],
    start: usize,
    end: usize,
    comp: &Compressor,
    max_blocks: u32,
) -> Result<Vec<Pcluster>> {
    let last_segment = end == stream.len();
    let lcluster = |x: usize| x / BLOCK_SIZE;
    let mut out = Vec::new();
    let mut pos = start;
    while pos < end {
        let head = lcluster(pos);
        let mut chosen = None;
        let tries: &[usize] = if max_blocks > 1 { &[max_blocks as usize, 1] } else { &[1] };
        for &blocks in tries {
            let (used, data) = comp.compress_to_fit(&stream[pos..end], blocks * BLOCK_SIZE)?;
            let stop = pos + used;
            let nblocks = data.len().div_ceil(BLOCK_SIZE);
            // The lclusters this pcluster covers after its head.
            let covered_after_head = if stop == stream.len() {
                stop.div_ceil(BLOCK_SIZE) - head - 1
            } else {
                lcluster(stop).saturating_sub(head + 1)
            };
            let next_head_later = stop == stream.len() || lcluster(stop) > head;
            // Worth it only if it saves a block over storing.
            let saves = nblocks * BLOCK_SIZE < used;
            if used > 0 && next_head_later && (nblocks == 1 || covered_after_head >= 1) && saves {
                chosen = Some((stop, data));
                break;
            }
        }
        let p = match chosen {
            Some((stop, data)) => Pcluster { start: pos, end: stop, kind: PclusterKind::Lz4(data) },
            None => {
                // Stored, up to the next lcluster boundary (or the stream's end).
                let stop = ((head + 1) * BLOCK_SIZE).min(end);
                Pcluster { start: pos, end: stop, kind: PclusterKind::Plain }
            }
        };
        pos = p.end;
        out.push(p);
    }
    debug_assert!(last_segment || end % BLOCK_SIZE == 0);
    Ok(out)
}

/// Logical clusters (blocks) of the packed inode.
fn stream_lclusters(pclusters: &[Pcluster]) -> usize {
    pclusters.last().map_or(0, |p| p.end.div_ceil(BLOCK_SIZE))
}

/// The full indexes of the packed inode: one per lcluster. With `big`
/// pclusters, the first NONHEAD after every head records the block count,
/// of one-block pclusters too (as mkfs.erofs writes them; the kernel would
/// take 1 for a missing count, erofs-rs insists on it).
fn lcluster_indexes(
    pclusters: &[Pcluster],
    lclusters: usize,
    first_block: usize,
    big: bool,
) -> Result<Vec<LclusterIndex>> {
    let mut out: Vec<Option<LclusterIndex>> = vec![None; lclusters];
    let mut block = first_block;
    for (n, p) in pclusters.iter().enumerate() {
        let head = p.start / BLOCK_SIZE;
        ensure!(out[head].is_none(), "two pclusters start in lcluster {head}");
        let ty = match p.kind {
            PclusterKind::Lz4(_) => LCLUSTER_TYPE_HEAD1,
            PclusterKind::Plain => LCLUSTER_TYPE_PLAIN,
        };
        out[head] = Some(LclusterIndex {
            di_advise: ty.into(),
            di_clusterofs: ((p.start % BLOCK_SIZE) as u16).into(),
            di_u: block_addr(block)?.into(),
        });
        let next_head = match pclusters.get(n + 1) {
            Some(q) => q.start / BLOCK_SIZE,
            None => lclusters,
        };
        ensure!(p.blocks() == 1 || next_head > head + 1, "a multi-block pcluster without a NONHEAD lcluster");
        for (l, slot) in out.iter_mut().enumerate().take(next_head).skip(head + 1) {
            let d0 = if l == head + 1 && big { LI_D0_CBLKCNT | p.blocks() as u16 } else { (l - head) as u16 };
            let d1 = (next_head - l) as u16;
            *slot = Some(LclusterIndex {
                di_advise: LCLUSTER_TYPE_NONHEAD.into(),
                di_clusterofs: 0.into(),
                di_u: (u32::from(d0) | u32::from(d1) << 16).into(),
            });
        }
        block += p.blocks();
    }
    out.into_iter()
        .enumerate()
        .map(|(l, i)| i.ok_or_else(|| anyhow::anyhow!("lcluster {l} has no index")))
        .collect()
}

/// Metadata positions, from the start of the metadata area.
#[derive(Default)]
struct MetaLayout {
    len: usize,
}

impl MetaLayout {
    /// Place an inode followed by `after` bytes; `one_block`: they are
    /// inline data, which the kernel reads from the inode's block only
    /// (8-byte records such as map headers and indexes may cross). Returns
    /// the inode's position.
    fn place(&mut self, after: usize, one_block: bool) -> usize {
        let mut pos = self.len.next_multiple_of(NID_UNIT);
        if one_block && (pos + NID_UNIT) % BLOCK_SIZE + after > BLOCK_SIZE {
            pos = pos.next_multiple_of(BLOCK_SIZE);
        }
        debug_assert!(!one_block || (pos + NID_UNIT) % BLOCK_SIZE + after <= BLOCK_SIZE);
        self.len = pos + NID_UNIT + after;
        pos
    }
}

/// Where inodes go in the metadata: the root first (its nid is 16 bits),
/// then every entry in directory order.
#[derive(Clone, Copy)]
enum Slot {
    Root,
    Entry(usize),
}

fn inode_order(h: &Hierarchy<'_>) -> Vec<Slot> {
    let mut out = vec![Slot::Root];
    out.extend(h.walk_order().into_iter().map(Slot::Entry));
    out
}

/// A directory's listing: entries (with `.` and `..`) sorted by name, cut
/// into 4 KiB blocks.
struct DirContent {
    /// Per block: the names in it.
    blocks: Vec<Vec<DirName>>,
    size: usize,
}

#[derive(Clone, Copy)]
enum DirName {
    Dot,
    DotDot,
    Child(usize),
}

impl DirContent {
    /// Bytes of the last block, if it goes inline after the inode (it
    /// must fit in one block with it).
    fn tail_inline_len(&self) -> usize {
        let tail = self.size - (self.blocks.len() - 1) * BLOCK_SIZE;
        if tail <= BLOCK_SIZE - NID_UNIT {
            tail
        } else {
            0
        }
    }

    /// Blocks stored in the data area.
    fn data_blocks(&self) -> usize {
        if self.tail_inline_len() > 0 {
            self.blocks.len() - 1
        } else {
            self.blocks.len()
        }
    }

    fn encode(
        &self,
        h: &Hierarchy<'_>,
        own: u64,
        parent: u64,
        nid_of_entry: &dyn Fn(usize) -> u64,
    ) -> Vec<Vec<u8>> {
        let mut out = Vec::with_capacity(self.blocks.len());
        for (b, names) in self.blocks.iter().enumerate() {
            let mut block = Vec::with_capacity(BLOCK_SIZE);
            let mut nameoff = DIRENT_SIZE * names.len();
            let mut name_bytes = Vec::new();
            for n in names {
                let (name, nid, ft): (&[u8], u64, u8) = match *n {
                    DirName::Dot => (b".", own, FT_DIR),
                    DirName::DotDot => (b"..", parent, FT_DIR),
                    DirName::Child(c) => (
                        h.entries[c].name.as_bytes(),
                        nid_of_entry(c),
                        match h.entries[c].node {
                            Node::Dir { .. } => FT_DIR,
                            Node::File { .. } => FT_REG_FILE,
                            Node::Symlink { .. } => FT_SYMLINK,
                        },
                    ),
                };
                let d =
                    Dirent { nid: nid.into(), nameoff: (nameoff as u16).into(), file_type: ft, reserved: 0 };
                block.extend_from_slice(d.as_bytes());
                name_bytes.extend_from_slice(name);
                nameoff += name.len();
            }
            block.extend_from_slice(&name_bytes);
            if b + 1 < self.blocks.len() {
                block.resize(BLOCK_SIZE, 0);
            }
            out.push(block);
        }
        out
    }
}

fn directory_contents(h: &Hierarchy<'_>) -> Vec<DirContent> {
    h.dirs
        .iter()
        .map(|dir| {
            let mut names: Vec<(&[u8], DirName)> = vec![(b".", DirName::Dot), (b"..", DirName::DotDot)];
            names.extend(dir.children.iter().map(|&c| (h.entries[c].name.as_bytes(), DirName::Child(c))));
            names.sort_by(|a, b| a.0.cmp(b.0));
            let mut blocks: Vec<Vec<DirName>> = vec![Vec::new()];
            let mut used = 0;
            for (name, n) in names {
                let need = DIRENT_SIZE + name.len();
                if used + need > BLOCK_SIZE {
                    blocks.push(Vec::new());
                    used = 0;
                }
                blocks.last_mut().expect("one block at least").push(n);
                used += need;
            }
            let size = (blocks.len() - 1) * BLOCK_SIZE + used;
            DirContent { blocks, size }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compress::Algorithm;
    use crate::pack::{pack, PackOptions, PackedData};
    use crate::tree::{DIR_MODE, FILE_MODE};

    /// A tree at the writer's edges: incompressible data (stored pclusters),
    /// a directory of several blocks, empty and duplicate files, symlinks,
    /// long names.
    fn edge_tree() -> HeaderTree {
        let mut t = HeaderTree::default();
        let dir = |t: &mut HeaderTree, p: &str| t.entries.insert(p.into(), Node::Dir { mode: DIR_MODE });
        let file = |t: &mut HeaderTree, p: &str, data: Vec<u8>| {
            t.entries.insert(p.into(), Node::File { mode: FILE_MODE, data })
        };
        dir(&mut t, "include");
        dir(&mut t, "include/many");
        let mut x = 0x2545_f491_4f6c_dd1du64;
        let mut noise = |n: usize| -> Vec<u8> {
            (0..n)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x as u8
                })
                .collect()
        };
        file(&mut t, "include/noise.h", noise(300_000));
        file(&mut t, "include/text.h", b"#define A(x) ((x) + 1)\nstruct s { int a; };\n".repeat(9000));
        file(&mut t, "include/same.h", b"#define A(x) ((x) + 1)\nstruct s { int a; };\n".repeat(9000));
        file(&mut t, "include/empty.h", Vec::new());
        file(&mut t, "include/one.h", b"x".to_vec());
        file(&mut t, &format!("include/{}.h", "n".repeat(253)), b"int n;\n".to_vec());
        for i in 0..700 {
            file(
                &mut t,
                &format!("include/many/header-with-a-longish-name-{i:04}.h"),
                format!("int v{i};\n").into_bytes(),
            );
        }
        t.entries.insert("include/link.h".into(), Node::Symlink { target: "text.h".into() });
        t
    }

    fn pack_erofs(t: &HeaderTree, pcluster: u32) -> (Vec<u8>, ErofsStats) {
        let opts =
            PackOptions { block_size: pcluster, jobs: 2, mtime: 1_700_000_000, ..PackOptions::erofs() };
        let p = pack(t, &opts, &Progress::hidden()).expect("pack");
        let PackedData::Erofs(s) = p.data else { panic!("an EROFS image") };
        (p.image, s)
    }

    #[test]
    fn edge_trees_read_back_through_erofs_rs() {
        let t = edge_tree();
        for pcluster in [4096, 65536, 1 << 20] {
            let (image, stats) = pack_erofs(&t, pcluster);
            // Larger clusters take the noise in with the text around it.
            assert!(pcluster > 65536 || stats.plain_pclusters > 0, "noise is stored ({pcluster})");
            assert_eq!(stats.duplicate_files, 1, "same.h shares text.h's bytes");
            assert_eq!(HeaderTree::from_image_bytes(&image).unwrap(), t, "pcluster {pcluster}");
            let sb = SuperBlock::read_from_bytes(&image[SUPER_OFFSET..SUPER_OFFSET + 128]).unwrap();
            assert_eq!(largest_pcluster(&image, &sb), pcluster, "the LZ4 configuration");
            assert_eq!(pack_erofs(&t, pcluster).0, image, "reproducible ({pcluster})");
        }
    }

    /// The kernel's index rules (see `compress_stream`), checked on the
    /// pclusters of a stream that mixes text and noise at odd offsets.
    #[test]
    fn pclusters_follow_the_kernels_index_rules() {
        let mut stream = Vec::new();
        for i in 0..40usize {
            stream.extend_from_slice(&b"static inline int f(void) { return 0; }\n".repeat(i * 37 % 300 + 1));
            stream.extend((0..i * 997 % 9000).map(|j| ((j * 2654435761usize) >> 7) as u8 ^ i as u8));
        }
        for (alg, blocks) in [(Algorithm::Lz4hc, 16), (Algorithm::Lz4, 1), (Algorithm::Lz4hc, 256)] {
            let comp = Compressor::new(alg, None, 65536).unwrap();
            let p = compress_stream(&stream, &comp, blocks, 2, &Progress::hidden()).unwrap();
            assert_eq!(p.first().unwrap().start, 0);
            assert_eq!(p.last().unwrap().end, stream.len());
            for (a, b) in p.iter().zip(&p[1..]) {
                assert_eq!(a.end, b.start, "contiguous");
                assert!(b.start / BLOCK_SIZE > a.start / BLOCK_SIZE, "one head per lcluster");
            }
            for q in &p {
                match &q.kind {
                    PclusterKind::Plain => {
                        assert!(q.end <= (q.start / BLOCK_SIZE + 1) * BLOCK_SIZE, "stored up to a boundary")
                    }
                    PclusterKind::Lz4(c) => {
                        assert!(c.len() <= blocks as usize * BLOCK_SIZE);
                        let back = lz4_flex::block::decompress(c, q.end - q.start).unwrap();
                        assert_eq!(back, &stream[q.start..q.end]);
                    }
                }
            }
            let n = stream_lclusters(&p);
            lcluster_indexes(&p, n, 10, blocks > 1).expect("every lcluster indexed once");
        }
    }

    /// What the plan reads first lies last in the stream (`packed_stream`).
    #[test]
    fn the_packed_stream_holds_the_plan_backwards() {
        let t = edge_tree();
        let plan = crate::layout::directory_plan(&t);
        let h = Hierarchy::new(&t).unwrap();
        let (stream, fragment_of, _) = packed_stream(&h, &plan).unwrap();
        let mut copies: HashMap<&[u8], usize> = HashMap::new();
        let files: Vec<(&[u8], u64)> = plan
            .iter()
            .filter_map(|p| {
                let i = h.index_of_path[p.path];
                match h.entries[i].node {
                    Node::File { data, .. } if !data.is_empty() => Some((data.as_slice(), fragment_of[i].unwrap())),
                    _ => None,
                }
            })
            .inspect(|(data, _)| *copies.entry(data).or_default() += 1)
            .collect();
        let (first, last) = (files[0], files[files.len() - 1]);
        assert_eq!(first.1 as usize + first.0.len(), stream.len(), "the plan's first file ends the stream");
        assert_eq!(last.1, 0, "the plan's last file starts it");
        // Files stored once (a duplicate shares its other copy's offset).
        let once: Vec<u64> = files.iter().filter(|(d, _)| copies[d] == 1).map(|f| f.1).collect();
        assert!(once.windows(2).all(|w| w[1] < w[0]), "offsets fall in plan order");
    }

    #[test]
    fn only_lz4_and_sane_pcluster_sizes() {
        let t = edge_tree();
        let e = |opts: PackOptions| pack(&t, &opts, &Progress::hidden()).err().expect("refused").to_string();
        assert!(e(PackOptions { compressor: Algorithm::Xz, ..PackOptions::erofs() })
            .contains("lz4hc, lz4, not xz"));
        assert!(e(PackOptions { block_size: 2 << 20, ..PackOptions::erofs() }).contains("block size"));
    }
}
