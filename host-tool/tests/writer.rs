//! The squashfs writer on trees that reach its edges, read back by two
//! independent readers: squashfs-tools' unsquashfs and backhand. (The VM
//! tests mount the same kind of image with the kernel's squashfs.)

mod common;

use std::path::Path;

use common::*;
use kheaders_image::format::{parse_image, IMAGE_ALIGN};
use kheaders_image::layout::LayoutKind;
use kheaders_image::pack::{pack, PackOptions};
use kheaders_image::progress::Progress;
use kheaders_image::squashfs::{self, Placement, WriteOptions};
use kheaders_image::tree::{HeaderTree, Node, DIR_MODE, FILE_MODE};
use kheaders_image::xz::Xz;

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
    let opts = PackOptions { block_size, layout, jobs: 2, mtime: 1_700_000_000, ..PackOptions::default() };
    let p = pack(tree, &opts, &Progress::hidden()).expect("pack");
    (p.image, p.data)
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
        let sb = parse_image(&image).unwrap().superblock;
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
    let xz = Xz::for_block_size(131072, 6);
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
