//! What each fuzz target checks, on one input. A check panics on a finding.
//!
//! Shared by the fuzz targets (`fuzz_targets/*.rs`) and by `cargo test`
//! (`host-tool/tests/fuzz_findings.rs` includes this file), which replays
//! every recorded finding: so a finding stays a test without a second copy
//! of the check. Only `std` and the host tool's own dependencies here.

use std::io::{BufReader, BufWriter, Read, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::{Mutex, OnceLock};

use kheaders_image::compress::Algorithm;
use kheaders_image::format::{parse_image, FsFormat, FsHeader, Trailer, TRAILER_MAGIC, TRAILER_SIZE};
use kheaders_image::inspect::inspect;
use kheaders_image::layout::{plan, IncludeGraph, LayoutKind};
use kheaders_image::pack::{pack, PackOptions};
use kheaders_image::progress::Progress;
use kheaders_image::select::parent_dirs;
use kheaders_image::strip::strip_comments;
use kheaders_image::tree::{HeaderTree, Node, DIR_MODE, FILE_MODE};
use kheaders_image::verify::compare;
use zerocopy::FromBytes;

/// Superblock, compression options and trailer: parsing never panics, and
/// what it accepts is consistent.
pub fn format(data: &[u8]) {
    let Ok(img) = parse_image(data) else { return };
    let used = match &img.fs {
        FsHeader::Squashfs { superblock, .. } => superblock.bytes_used.get(),
        FsHeader::Erofs { superblock } => u64::from(superblock.blocks.get()) * 4096,
    };
    assert_eq!(img.squashfs.len() as u64, used);
    assert!(img.squashfs.len() <= data.len());
    if let Some(t) = &img.trailer {
        assert!(img.squashfs.len() + TRAILER_SIZE <= data.len());
        assert_eq!(t.squashfs_len.get(), used);
    }
    let _ = img.check_crc();
}

/// The image's checksums made right, so that mutations reach the squashfs
/// reader (the CRC would refuse nearly all of them first). `None` if the
/// input has no trailer to fix or is already consistent.
pub fn fix_checksums(data: &[u8]) -> Option<Vec<u8>> {
    if data.len() < 96 + TRAILER_SIZE || data[data.len() - TRAILER_SIZE..][..8] != TRAILER_MAGIC {
        return None;
    }
    let used = u64::from_le_bytes(data[40..48].try_into().unwrap());
    if used > (data.len() - TRAILER_SIZE) as u64 {
        return None;
    }
    let mut fixed = data.to_vec();
    let at = fixed.len() - TRAILER_SIZE;
    let (sq, tail) = fixed.split_at_mut(at);
    let t = Trailer::mut_from_bytes(tail).expect("TRAILER_SIZE bytes");
    t.squashfs_crc32 = crc32fast::hash(&sq[..used as usize]).into();
    t.seal();
    (fixed != data).then_some(fixed)
}

/// `inspect` and `verify`'s read (backhand) on an image: an error or a
/// consistent answer, never a panic that escapes, never a path that leaves
/// the tree.
pub fn image(data: &[u8]) {
    image_once(data);
    if let Some(fixed) = fix_checksums(data) {
        image_once(&fixed);
    }
}

fn image_once(data: &[u8]) {
    let info = match inspect(data) {
        Ok(info) => info,
        Err(e) => {
            // The CLI prints this as its one error line: it must say something.
            let msg = format!("{e:#}");
            assert!(!msg.trim_end().ends_with(':'), "error without a reason: {msg:?}");
            return;
        }
    };
    let tree = HeaderTree::from_image_bytes(data).expect("inspect read it, so verify must");
    let s = tree.stats();
    assert_eq!((info.files, info.directories, info.symlinks), (s.files, s.dirs, s.symlinks));
    for path in tree.entries.keys() {
        assert!(
            !path.is_empty() && path.split('/').all(|c| !c.is_empty() && c != "." && c != ".."),
            "unsafe path {path:?} accepted"
        );
    }
    assert!(compare(&tree, &tree).is_empty());
    assert_eq!(compare(&HeaderTree::default(), &tree).len(), tree.entries.len());
}

/// Upstream's perl expression (kernel/gen_kheaders.sh), applied to each
/// input by one perl process: 4-byte little-endian length, then the bytes;
/// the answer comes back the same way.
const PERL_ORACLE: &str = r#"
binmode STDIN; binmode STDOUT; $| = 1;
while (read(STDIN, my $h, 4) == 4) {
    my $n = unpack("V", $h); my $d = "";
    while (length($d) < $n) { read(STDIN, $d, $n - length($d), length($d)) or die "short read" }
    $_ = $d;
    s/\/\*((?!SPDX).)*?\*\///smg;
    print pack("V", length($_)), $_;
}
"#;

struct Perl {
    _child: Child,
    to: BufWriter<ChildStdin>,
    from: BufReader<ChildStdout>,
}

/// What upstream's perl line makes of `input`.
pub fn perl_strip(input: &[u8]) -> Vec<u8> {
    static PERL: OnceLock<Mutex<Perl>> = OnceLock::new();
    let perl = PERL.get_or_init(|| {
        let mut child = Command::new("perl")
            .args(["-e", PERL_ORACLE])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("perl (it builds every kernel)");
        let to = BufWriter::new(child.stdin.take().unwrap());
        let from = BufReader::new(child.stdout.take().unwrap());
        Mutex::new(Perl { _child: child, to, from })
    });
    let mut p = perl.lock().unwrap_or_else(|e| e.into_inner());
    p.to.write_all(&(input.len() as u32).to_le_bytes()).unwrap();
    p.to.write_all(input).unwrap();
    p.to.flush().unwrap();
    let mut len = [0u8; 4];
    p.from.read_exact(&mut len).expect("perl oracle died");
    let mut out = vec![0u8; u32::from_le_bytes(len) as usize];
    p.from.read_exact(&mut out).unwrap();
    out
}

/// Our comment stripping equals upstream's perl, byte for byte.
pub fn strip(data: &[u8]) {
    let ours = strip_comments(data);
    let upstream = perl_strip(data);
    if ours != upstream {
        panic!(
            "strip differs from perl\n input: {:?}\n  ours: {:?}\n  perl: {:?}",
            String::from_utf8_lossy(data),
            String::from_utf8_lossy(&ours),
            String::from_utf8_lossy(&upstream)
        );
    }
}

/// Paths the layout input picks from: the kernel's include path and forced
/// includes, so that `#include` lines in the input can resolve.
const LAYOUT_PATHS: [&str; 16] = [
    "include/linux/kconfig.h",
    "include/linux/compiler_types.h",
    "include/linux/compiler-version.h",
    "include/linux/types.h",
    "include/linux/a.h",
    "include/linux/b.h",
    "include/uapi/linux/types.h",
    "include/uapi/linux/a.h",
    "include/generated/autoconf.h",
    "include/generated/uapi/linux/version.h",
    "include/asm-generic/a.h",
    "arch/x86/include/asm/a.h",
    "arch/x86/include/asm/types.h",
    "arch/x86/include/uapi/asm/a.h",
    "arch/x86/include/generated/asm/a.h",
    "include/linux/sub/c.h",
];

/// A header tree from fuzz input: NUL-separated records, each a path
/// choice (first byte; the high bit makes a symlink) and the contents (a
/// symlink's target).
pub fn layout_tree(data: &[u8]) -> HeaderTree {
    let mut t = HeaderTree::default();
    for rec in data.split(|&b| b == 0) {
        let Some((&sel, body)) = rec.split_first() else { continue };
        let path = LAYOUT_PATHS[usize::from(sel & 0x0f)].to_string();
        let node = if sel & 0x80 != 0 {
            Node::Symlink { target: String::from_utf8_lossy(body).into_owned() }
        } else {
            Node::File { mode: FILE_MODE, data: body.to_vec() }
        };
        t.entries.insert(path, node);
    }
    for d in parent_dirs(t.entries.keys().map(String::as_str)) {
        t.entries.entry(d).or_insert(Node::Dir { mode: DIR_MODE });
    }
    t
}

/// The include parser and the layout on arbitrary headers: every regular
/// file is placed exactly once, in both layouts; include order covers every
/// file once.
pub fn layout(data: &[u8]) {
    let tree = layout_tree(data);
    let files: Vec<&str> = tree
        .entries
        .iter()
        .filter(|(_, n)| matches!(n, Node::File { .. }))
        .map(|(p, _)| p.as_str())
        .collect();
    for kind in [LayoutKind::Includes, LayoutKind::Directory] {
        let mut placed: Vec<&str> = plan(&tree, kind).iter().map(|p| p.path).collect();
        placed.sort_unstable();
        assert_eq!(placed, files, "{kind:?} layout must place every file once");
    }
    let g = IncludeGraph::new(&tree);
    let mut order = g.include_order();
    order.sort_unstable();
    assert_eq!(order, (0..g.paths.len()).collect::<Vec<_>>());
    let includers = g.includers();
    assert!(includers.iter().all(|&n| n < g.paths.len().max(1)));
}

/// Reads fuzz input as a stream of small choices; zeros once it runs out.
struct Choices<'a>(&'a [u8]);

impl Choices<'_> {
    fn byte(&mut self) -> u8 {
        let Some((&b, rest)) = self.0.split_first() else { return 0 };
        self.0 = rest;
        b
    }
    fn u32(&mut self) -> u32 {
        u32::from_le_bytes([self.byte(), self.byte(), self.byte(), self.byte()])
    }
    fn bytes(&mut self, n: usize) -> &[u8] {
        let n = n.min(self.0.len());
        let (b, rest) = self.0.split_at(n);
        self.0 = rest;
        b
    }
}

const NAMES: [&str; 12] =
    ["include", "linux", "asm", "a.h", "b.h", "uapi", "x", "types.h", "z", "sub dir", "ü.h", "a"];

/// An arbitrary small tree and pack options from fuzz input.
pub fn roundtrip_case(data: &[u8]) -> (HeaderTree, PackOptions) {
    let mut c = Choices(data);
    let b = c.byte();
    let erofs = c.byte() & 1 == 1;
    let mut opts = PackOptions {
        format: FsFormat::Squashfs,
        block_size: 4096 << (b % 9),
        layout: if b & 0x80 != 0 { LayoutKind::Directory } else { LayoutKind::Includes },
        mtime: c.u32(),
        jobs: 1,
        compressor: [Algorithm::Xz, Algorithm::Zstd, Algorithm::Lz4, Algorithm::Lz4hc]
            [usize::from(b >> 5 & 3)],
        level: Some(u32::from(c.byte() % 7)).filter(|_| b >> 5 & 3 == 0),
        kernel_release: match c.byte() {
            0..=200 => None,
            n => Some(String::from_utf8_lossy(c.bytes(usize::from(n - 200))).into_owned()),
        },
    };
    if erofs {
        // EROFS: lz4 or lz4hc, pclusters of 4 KiB to 1 MiB.
        opts.format = FsFormat::Erofs;
        opts.compressor = if b & 0x20 != 0 { Algorithm::Lz4hc } else { Algorithm::Lz4 };
        opts.level = None;
    }
    let mut t = HeaderTree::default();
    let entries = c.byte() % 24;
    for _ in 0..entries {
        let kind = c.byte();
        let depth = 1 + kind % 4;
        let mut parts = Vec::new();
        for _ in 0..depth {
            let n = c.byte();
            parts.push(if n < 240 {
                NAMES[usize::from(n) % NAMES.len()].to_string()
            } else {
                // Any name, including "", ".", ".." and names of 256 bytes.
                let len = c.byte();
                let raw = c.bytes(usize::from(len));
                let name: String = String::from_utf8_lossy(raw).replace('/', "_");
                if n == 255 {
                    name.repeat(255 / name.len().max(1) + 1)
                } else {
                    name
                }
            });
        }
        let path = parts.join("/");
        let node = match kind >> 6 {
            0 => Node::Dir { mode: u32::from(c.byte()) << 1 | 0o700 },
            1 => {
                let len = usize::from(c.byte());
                Node::Symlink { target: String::from_utf8_lossy(c.bytes(len)).into_owned() }
            }
            2 => {
                let len = usize::from(c.byte()) * 3;
                Node::File { mode: FILE_MODE, data: c.bytes(len).to_vec() }
            }
            _ => {
                // A large file of repeated bytes: multi-block files, cheaply.
                let size = (c.u32() % (3 * opts.block_size + 2)) as usize;
                let pat = c.bytes(8).to_vec();
                let data = if pat.is_empty() {
                    vec![0; size]
                } else {
                    pat.repeat(size / pat.len() + 1)[..size].to_vec()
                };
                Node::File { mode: FILE_MODE, data }
            }
        };
        t.entries.insert(path, node);
    }
    let dirs = parent_dirs(t.entries.keys().map(String::as_str));
    for d in dirs {
        t.entries.entry(d).or_insert(Node::Dir { mode: DIR_MODE });
    }
    (t, opts)
}

/// Whether the writer must accept `tree` (independently of the writer).
fn writable(tree: &HeaderTree, opts: &PackOptions) -> bool {
    let names_ok = tree.entries.keys().all(|p| {
        p.split('/').all(|c| !c.is_empty() && c != "." && c != ".." && c.len() <= 255 && !c.contains('\0'))
    });
    let parents_ok = tree.entries.keys().all(|p| match p.rsplit_once('/') {
        None => true,
        Some((parent, _)) => matches!(tree.entries.get(parent), Some(Node::Dir { .. })),
    });
    let targets_ok = tree.entries.values().all(|n| match n {
        Node::Symlink { target } => (1..=255).contains(&target.len()) && !target.contains('\0'),
        _ => true,
    });
    let release_ok = opts.kernel_release.as_ref().map_or(true, |r| r.len() < 64);
    names_ok && parents_ok && targets_ok && release_ok
}

/// Write -> read: an arbitrary small tree packs (or is refused, exactly
/// when it cannot be written) and reads back equal, through backhand
/// (squashfs) or erofs-rs (EROFS).
pub fn roundtrip(data: &[u8]) {
    let (tree, opts) = roundtrip_case(data);
    let expect_ok = writable(&tree, &opts);
    let packed = match pack(&tree, &opts, &Progress::hidden()) {
        Ok(p) => p,
        Err(e) => {
            assert!(!expect_ok, "pack refused a writable tree: {e:#}\n{tree:?}");
            return;
        }
    };
    assert!(expect_ok, "pack accepted an unwritable tree: {tree:?}");
    let info = inspect(&packed.image)
        .unwrap_or_else(|e| panic!("inspect reads what pack wrote: {e:#}\n{tree:?}\n{opts:?}"));
    let back = HeaderTree::from_image_bytes(&packed.image)
        .unwrap_or_else(|e| panic!("the reader reads what pack wrote: {e:#}\n{tree:?}\n{opts:?}"));
    let mut want = tree.clone();
    for node in want.entries.values_mut() {
        if let Node::Dir { mode } | Node::File { mode, .. } = node {
            *mode &= 0o7777;
        }
    }
    let diffs = compare(&want, &back);
    assert!(diffs.is_empty(), "read back differs: {:?}", &diffs[..diffs.len().min(5)]);
    let s = want.stats();
    assert_eq!((info.files, info.directories, info.symlinks), (s.files, s.dirs, s.symlinks));
    assert_eq!(info.mod_time, opts.mtime);
    let release = opts.kernel_release.as_deref().unwrap_or("");
    if !release.contains('\0') {
        assert_eq!(info.trailer.as_ref().unwrap().kernel_release, release);
    }
}
