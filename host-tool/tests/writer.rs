//! The squashfs writer on trees that reach its edges, read back by two
//! independent readers: squashfs-tools' unsquashfs and backhand. (The VM
//! tests mount the same kind of image with the kernel's squashfs.)

mod common;

use std::path::Path;

use common::*;
use kheaders_image::compress::{Algorithm, Compressor};
use kheaders_image::format::{parse_image, BlockFormat, IMAGE_ALIGN};
use kheaders_image::layout::LayoutKind;
use kheaders_image::layout::Placement;
use kheaders_image::pack::{pack, PackOptions};
use kheaders_image::progress::Progress;
use kheaders_image::squashfs::{self, WriteOptions};
use kheaders_image::tree::{HeaderTree, Node, DIR_MODE, FILE_MODE};

fn add_file(t: &mut HeaderTree, path: &str, data: Vec<u8>) {
    t.entries.insert(path.to_string(), Node::File { mode: FILE_MODE, data });
}

fn finish(mut t: HeaderTree) -> HeaderTree {
    for d in kheaders_image::select::parent_dirs(t.entries.keys().map(String::as_str)) {
        t.entries.entry(d).or_insert(Node::Dir { mode: DIR_MODE });
    }
    t
}

/// Deterministic bytes that compress like text, not like zeros.
fn text(seed: u64, len: usize) -> Vec<u8> {
    let words =
        ["struct ", "int ", "unsigned long ", "#define ", "static inline ", "u64 ", "}\n", "{\n", ";\n"];
    let mut x = seed.wrapping_mul(0x9e3779b97f4a7c15) | 1;
    let mut out = Vec::with_capacity(len + 16);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(words[(x % words.len() as u64) as usize].as_bytes());
        out.extend_from_slice(format!("x{}", x % 97).as_bytes());
    }
    out.truncate(len);
    out
}

/// A tree with what the writer must get right: empty files, files of 0, 1,
/// exactly one and several blocks, duplicates, symlinks, names of 1 and 255
/// bytes and odd bytes, a directory with 3,000 entries (index, many
/// headers), deep nesting.
fn edge_tree(block_size: usize) -> HeaderTree {
    let mut t = HeaderTree::default();
    add_file(&mut t, "include/linux/kconfig.h", b"#include <linux/types.h>\n".to_vec());
    add_file(&mut t, "include/linux/types.h", text(1, 3000));
    add_file(&mut t, "include/empty.h", Vec::new());
    add_file(&mut t, "include/also-empty.h", Vec::new());
    add_file(&mut t, "include/one.h", b"x".to_vec());
    add_file(&mut t, "include/block.h", text(2, block_size));
    add_file(&mut t, "include/blocks.h", text(3, block_size * 5 / 2));
    add_file(&mut t, "include/dup-a.h", text(4, 5000));
    add_file(&mut t, "include/dup-b.h", text(4, 5000));
    add_file(&mut t, "include/big-dup-a.h", text(5, block_size + 7));
    add_file(&mut t, "include/big-dup-b.h", text(5, block_size + 7));
    add_file(&mut t, &format!("include/{}", "n".repeat(255)), text(6, 100));
    add_file(&mut t, "include/z", text(7, 10));
    add_file(&mut t, "include/sp ace & ü.h", text(8, 200));
    add_file(&mut t, "include/a/b/c/d/e/f/g/h/deep.h", text(9, 300));
    t.entries.insert("include/link.h".into(), Node::Symlink { target: "linux/types.h".into() });
    t.entries.insert("include/dangling.h".into(), Node::Symlink { target: "../nowhere/x.h".into() });
    t.entries.insert("include/dirlink".into(), Node::Symlink { target: "a/b".into() });
    for i in 0..3000 {
        add_file(
            &mut t,
            &format!("include/many/header-with-a-longish-name-{i:05}.h"),
            text(100 + i, 50 + (i as usize % 400)),
        );
    }
    finish(t)
}

fn write(tree: &HeaderTree, layout: LayoutKind, block_size: u32) -> (Vec<u8>, squashfs::DataStats) {
    write_with(tree, layout, block_size, Algorithm::Xz)
}

fn write_with(
    tree: &HeaderTree,
    layout: LayoutKind,
    block_size: u32,
    compressor: Algorithm,
) -> (Vec<u8>, squashfs::DataStats) {
    let opts = PackOptions {
        block_size,
        layout,
        jobs: 2,
        mtime: 1_700_000_000,
        compressor,
        ..PackOptions::default()
    };
    let p = pack(tree, &opts, &Progress::hidden()).expect("pack");
    let kheaders_image::pack::PackedData::Squashfs(stats) = p.data else { panic!("a squashfs image") };
    (p.image, stats)
}

/// The tree read back by unsquashfs, as a HeaderTree (symlinks as symlinks).
fn via_unsquashfs(image: &[u8], dir: &Path) -> HeaderTree {
    let img = dir.join("i.img");
    std::fs::write(&img, image).unwrap();
    let out = dir.join("out");
    unsquashfs(&img, &out);
    HeaderTree::from_dir(&out).unwrap()
}

#[test]
fn edge_cases_read_back_identically_with_both_layouts_and_block_sizes() {
    for bs in [4096u32, 131072, 1 << 20] {
        let tree = edge_tree(bs as usize);
        for layout in [LayoutKind::Includes, LayoutKind::Directory] {
            let (image, stats) = write(&tree, layout, bs);
            let what = format!("{layout:?} at {bs}");
            assert_eq!(image.len() as u64 % IMAGE_ALIGN, 0, "{what}");
            let parsed = parse_image(&image).unwrap();
            parsed.check_crc().unwrap();
            assert_eq!(HeaderTree::from_image_bytes(&image).unwrap(), tree, "backhand, {what}");
            let t = tempdir();
            assert_eq!(via_unsquashfs(&image, t.path()), tree, "unsquashfs, {what}");
            // Equal contents share data (empty files have none).
            assert_eq!(stats.duplicate_files, 2, "{what}");
        }
    }
}

/// sha256 of the squashfs bytes (the trailer aside) of `write`'s images of
/// `edge_tree`, as the writer before the format-boundary refactor (commit
/// 32fd8c3) made them: the refactor and later changes must keep them. A new
/// liblzma could change xz's output, and with it these; then re-derive them
/// from a build of that commit with the same liblzma.
const EDGE_SHA256: [(LayoutKind, u32, &str); 6] = [
    (LayoutKind::Directory, 4096, "4e50e5793ec77a4b55ff9b54bab134861fe75282898e34b04ad5c4257a793d85"),
    (LayoutKind::Directory, 131072, "4cf2c18e55dbefd33a94ec93263297fbf6b94fd4090d052c3009c50772528754"),
    (LayoutKind::Directory, 1 << 20, "68652ab6e26bdaf036ee2a4be1f04292ae7dd7dd40f0531a399e9bb327f5d2a7"),
    (LayoutKind::Includes, 4096, "176f9d8f9fce0c859ab071593dd5438af23eb666d0c5024def8902d1626a595a"),
    (LayoutKind::Includes, 131072, "ec9694e268721831744a4185ab642397fcad4e56fdfd80d2d0d4c6a6fbdc740c"),
    (LayoutKind::Includes, 1 << 20, "c6c7286eef9a622366dcbb63539ff494bce280567367c876f2cde4aa542c66a3"),
];

fn sha256(bytes: &[u8]) -> String {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let mut c = Command::new("sha256sum").stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().unwrap();
    c.stdin.take().unwrap().write_all(bytes).unwrap();
    let out = c.wait_with_output().unwrap();
    String::from_utf8(out.stdout).unwrap()[..64].to_string()
}

#[test]
fn xz_images_keep_their_bytes() {
    for (layout, bs, want) in EDGE_SHA256 {
        let (image, _) = write(&edge_tree(bs as usize), layout, bs);
        let used = parse_image(&image).unwrap().squashfs.len();
        assert_eq!(sha256(&image[..used]), want, "{layout:?} at {bs}");
    }
}

#[test]
fn zstd_and_lz4_images_read_back_identically() {
    for (alg, id, code) in [
        (Algorithm::Zstd, 6, BlockFormat::Zstd),
        (Algorithm::Lz4, 5, BlockFormat::Lz4),
        (Algorithm::Lz4hc, 5, BlockFormat::Lz4),
    ] {
        for bs in [4096u32, 131072] {
            let tree = edge_tree(bs as usize);
            for layout in [LayoutKind::Includes, LayoutKind::Directory] {
                let what = format!("{alg:?}, {layout:?} at {bs}");
                let (image, _) = write_with(&tree, layout, bs, alg);
                let parsed = parse_image(&image).unwrap();
                parsed.check_crc().unwrap();
                assert_eq!(parsed.squashfs_superblock().unwrap().compressor.get(), id, "{what}");
                assert_eq!(parsed.trailer.unwrap().compressor.get(), code as u16, "{what}");
                assert_eq!(HeaderTree::from_image_bytes(&image).unwrap(), tree, "backhand, {what}");
                let t = tempdir();
                assert_eq!(via_unsquashfs(&image, t.path()), tree, "unsquashfs, {what}");
                let opts = PackOptions {
                    block_size: bs,
                    layout,
                    jobs: 1,
                    mtime: 1_700_000_000,
                    compressor: alg,
                    ..PackOptions::default()
                };
                assert!(
                    pack(&tree, &opts, &Progress::hidden()).unwrap().image == image,
                    "not reproducible: {what}"
                );
            }
        }
    }
}

#[test]
fn lz4_options_say_which_encoder() {
    // The kernel refuses LZ4 images without options (version 1); the flags
    // say whether LZ4HC wrote it, as mksquashfs' -Xhc does.
    let tree = edge_tree(4096);
    for (alg, flags) in [(Algorithm::Lz4, 0u32), (Algorithm::Lz4hc, 1)] {
        let (image, _) = write_with(&tree, LayoutKind::Directory, 4096, alg);
        let sb = parse_image(&image).unwrap().squashfs_superblock().unwrap();
        assert_ne!(sb.flags.get() & 0x0400, 0, "{alg:?}: compressor options flag");
        // After the superblock: an uncompressed 8-byte metadata block.
        assert_eq!(&image[96..98], &(8u16 | 0x8000).to_le_bytes());
        assert_eq!(&image[98..102], &1u32.to_le_bytes());
        assert_eq!(&image[102..106], &flags.to_le_bytes(), "{alg:?}");
    }
    let (image, _) = write_with(&tree, LayoutKind::Directory, 4096, Algorithm::Zstd);
    assert_eq!(
        parse_image(&image).unwrap().squashfs_superblock().unwrap().flags.get() & 0x0400,
        0,
        "zstd: no options"
    );
}

#[test]
fn includes_layout_gives_hot_headers_their_own_blocks() {
    let tree = edge_tree(131072);
    let (_, inc) = write(&tree, LayoutKind::Includes, 131072);
    let (_, dir) = write(&tree, LayoutKind::Directory, 131072);
    // Files of a block or more always have blocks of their own: block.h,
    // blocks.h, big-dup-a.h (big-dup-b.h shares its data). kconfig.h (a
    // forced include) and types.h (which it includes) are hot.
    assert_eq!(dir.own_block_files, 3);
    assert_eq!(inc.own_block_files, 5);
    assert!(inc.fragment_blocks >= 1 && dir.fragment_blocks >= 1);
}

#[test]
fn metadata_is_uncompressed_in_the_includes_layout_only() {
    let tree = edge_tree(131072);
    for (layout, raw) in [(LayoutKind::Includes, true), (LayoutKind::Directory, false)] {
        let (image, _) = write(&tree, layout, 131072);
        let sb = parse_image(&image).unwrap().squashfs_superblock().unwrap();
        assert_eq!(sb.flags.get() & 1 == 1, raw, "SQUASHFS_NOI flag, {layout:?}");
        // The first metadata block of the inode table: bit 15 of its header
        // is "stored uncompressed".
        let at = sb.inode_table.get() as usize;
        let header = u16::from_le_bytes([image[at], image[at + 1]]);
        assert_eq!(header & 0x8000 != 0, raw, "{layout:?}");
    }
}

#[test]
fn same_tree_same_bytes() {
    let tree = edge_tree(131072);
    let a = write(&tree, LayoutKind::Includes, 131072).0;
    let opts = PackOptions { jobs: 1, mtime: 1_700_000_000, ..PackOptions::default() };
    let b = pack(&tree, &opts, &Progress::hidden()).unwrap().image;
    assert!(a == b, "thread count changed the image");
}

#[test]
fn bad_plans_and_names_are_errors() {
    let tree = finish({
        let mut t = HeaderTree::default();
        add_file(&mut t, "include/a.h", b"a".to_vec());
        add_file(&mut t, "include/b.h", b"b".to_vec());
        t
    });
    let xz = Compressor::new(Algorithm::Xz, None, 131072).unwrap();
    let opts = WriteOptions { block_size: 131072, mtime: 0, jobs: 1, compress_metadata: true };
    let p = |path: &'static str| Placement { path, own_blocks: false, new_fragment: false };
    let err = |plan: &[Placement<'_>]| {
        squashfs::write(&tree, plan, &xz, &opts, &Progress::hidden())
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default()
    };
    assert!(err(&[p("include/a.h")]).contains("leaves out include/b.h"));
    assert!(err(&[p("include/a.h"), p("include/a.h"), p("include/b.h")]).contains("twice"));
    assert!(err(&[p("include/a.h"), p("include/b.h"), p("include/c.h")]).contains("not in the tree"));
    assert!(err(&[p("include/a.h"), p("include")]).contains("not a file"));

    let long = finish({
        let mut t = HeaderTree::default();
        add_file(&mut t, &format!("include/{}", "x".repeat(256)), b"a".to_vec());
        t
    });
    let e = pack(&long, &PackOptions::default(), &Progress::hidden()).err().unwrap().to_string();
    assert!(e.contains("256 bytes") && e.contains("at most 255"), "{e}");
}
