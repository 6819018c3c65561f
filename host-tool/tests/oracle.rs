//! The oracle: on a real 6.12 tree, the image read back by squashfs-tools
//! equals upstream's own kheaders tarball of the same tree, file by file.
//!
//! The tree is `$KHB_KERNEL_TREE` (a kernel build, whose
//! `kernel/kheaders_data.tar.xz` upstream made during the build; the README's
//! test command sets it). Without it, Debian's linux-source-6.12 is extracted
//! and upstream's `kernel/gen_kheaders.sh` is run on it, as Kbuild would.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, SystemTime};

use common::*;

struct RealKernel {
    tree: PathBuf,
    tarball: PathBuf,
    _tmp: Option<tempfile::TempDir>,
}

fn real_kernel() -> &'static RealKernel {
    static K: OnceLock<RealKernel> = OnceLock::new();
    K.get_or_init(|| {
        if let Some(tree) = std::env::var_os("KHB_KERNEL_TREE") {
            let tree = PathBuf::from(tree);
            let tarball = tree.join("kernel/kheaders_data.tar.xz");
            assert!(tarball.is_file(), "{} missing: not a build with CONFIG_IKHEADERS", tarball.display());
            return RealKernel { tree, tarball, _tmp: None };
        }
        let src = Path::new("/usr/src/linux-source-6.12.tar.xz");
        assert!(
            src.is_file(),
            "no kernel tree to test against: set KHB_KERNEL_TREE to a kernel build, \
             or install linux-source-6.12 (scripts/setup.sh)"
        );
        let tmp = tempdir();
        let tree = tmp.path().join("linux");
        fs::create_dir(&tree).unwrap();
        let st = Command::new("tar")
            .arg("-xf")
            .arg(src)
            .arg("-C")
            .arg(&tree)
            .arg("--strip-components=1")
            .status()
            .unwrap();
        assert!(st.success());
        // Upstream's script, run the way kernel/Makefile runs it.
        let st = Command::new("sh")
            .args(["kernel/gen_kheaders.sh", "kernel/kheaders_data.tar.xz"])
            .current_dir(&tree)
            .env("SRCARCH", "x86")
            .env("XZ", "xz")
            .env_remove("building_out_of_srctree")
            .env_remove("KBUILD_BUILD_TIMESTAMP")
            .status()
            .unwrap();
        assert!(st.success(), "gen_kheaders.sh failed");
        let tarball = tree.join("kernel/kheaders_data.tar.xz");
        RealKernel { tree, tarball, _tmp: Some(tmp) }
    })
}

/// Path, type, mode, symlink target of every entry.
fn full_listing(dir: &Path) -> Vec<String> {
    listing_as(dir, "%P %y %m %l\n")
}

/// The image, as unsquashfs extracts it, equals the tarball as GNU tar
/// extracts it (but the reference's `utsversion.h` if `drop_utsversion`),
/// and our `verify` agrees. Returns (files, directories, symlinks).
fn assert_image_equals_tarball(img: &Path, tarball: &Path, drop_utsversion: bool) -> (usize, usize, usize) {
    let t = tempdir();
    let ours = t.path().join("ours");
    unsquashfs(img, &ours);
    let theirs = t.path().join("upstream");
    untar(tarball, &theirs);
    if drop_utsversion {
        let _ = fs::remove_file(theirs.join(kheaders_image::select::UTSVERSION_H));
    }

    let (a, b) = (full_listing(&ours), full_listing(&theirs));
    let only_ours: Vec<_> = a.iter().filter(|l| !b.contains(l)).take(10).collect();
    let only_theirs: Vec<_> = b.iter().filter(|l| !a.contains(l)).take(10).collect();
    assert!(a == b, "entries differ:\n only in the image: {only_ours:#?}\n only upstream: {only_theirs:#?}");

    let diff =
        Command::new("diff").args(["-r", "--no-dereference", "-q"]).arg(&theirs).arg(&ours).output().unwrap();
    assert!(diff.status.success(), "contents differ:\n{}", String::from_utf8_lossy(&diff.stdout));

    let files = a.iter().filter(|l| l.split(' ').nth(1) == Some("f")).count();
    let links = a.iter().filter(|l| l.split(' ').nth(1) == Some("l")).count();
    assert!(files > 5000, "only {files} files: not the IKHEADERS set");
    assert!(links >= 4, "the dt-bindings symlinks are missing");
    // Our own verify agrees with the independent readers.
    let o = run(&["verify", path_str(img), path_str(tarball)]);
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
    (files, a.len() - files - links, links)
}

#[test]
fn image_equals_upstream_tarball_file_by_file() {
    let k = real_kernel();
    let t = tempdir();
    let img = t.path().join("kheaders.img");
    pack(&k.tree, &img, &[]);
    // In the tarball or not by build order, never in an image from a tree (design.md).
    let (files, dirs, links) = assert_image_equals_tarball(&img, &k.tarball, true);
    eprintln!(
        "oracle: {files} files, {dirs} directories, {links} symlinks identical; image {} B, upstream tar.xz {} B",
        fs::metadata(&img).unwrap().len(),
        fs::metadata(&k.tarball).unwrap().len()
    );
}

/// The EROFS image of the same tree, read by erofs-rs (our `verify`),
/// equals upstream's tarball, and packing again gives the same bytes.
#[test]
fn erofs_image_equals_upstream_tarball_and_is_reproducible() {
    let k = real_kernel();
    let t = tempdir();
    let (a, b) = (t.path().join("a.img"), t.path().join("b.img"));
    pack(&k.tree, &a, &["--format", "erofs"]);
    pack(&k.tree, &b, &["--format", "erofs", "-j", "1"]);
    let o = run(&["verify", path_str(&a), path_str(&k.tarball)]);
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
    let j = stdout(&run(&["inspect", "--json", path_str(&a)]));
    assert!(j.contains("\"format\": \"erofs\""), "{j}");
    assert!(j.contains("\"pcluster_size\": 32768"), "{j}");
    assert!(fs::read(&a).unwrap() == fs::read(&b).unwrap(), "EROFS images of one tree differ");
    eprintln!(
        "oracle (erofs): image {} B, upstream tar.xz {} B",
        fs::metadata(&a).unwrap().len(),
        fs::metadata(&k.tarball).unwrap().len()
    );
}

#[test]
fn image_from_upstream_tarball_holds_every_entry_of_it() {
    let k = real_kernel();
    let t = tempdir();
    let img = t.path().join("from-tarball.img");
    pack(&k.tarball, &img, &[]);
    // Everything, utsversion.h too if the tarball has it.
    let (files, dirs, links) = assert_image_equals_tarball(&img, &k.tarball, false);
    // Without utsversion.h the header sets are the same, and so is the
    // image (the same layout from the same include graph), at the same time.
    let has_utsversion = {
        let list = Command::new("tar").arg("-tJf").arg(&k.tarball).output().unwrap();
        String::from_utf8_lossy(&list.stdout).lines().any(|l| l == "./include/generated/utsversion.h")
    };
    if !has_utsversion {
        let time = stdout(&run(&["inspect", "--json", path_str(&img)]));
        let time: serde_json::Value = serde_json::from_str(&time).unwrap();
        let tree_img = t.path().join("from-tree.img");
        pack(&k.tree, &tree_img, &["--mtime", &time["mod_time"].to_string()]);
        assert!(
            fs::read(&img).unwrap() == fs::read(&tree_img).unwrap(),
            "tarball and tree gave different images"
        );
    }
    eprintln!("oracle (tarball input): {files} files, {dirs} directories, {links} symlinks identical; same image as the tree's: {}", !has_utsversion);
}

/// Copy `include/`, `arch/<arch>/include/` and the markers of a kernel tree,
/// in `reverse` order or not, giving every file its own time from `seed`.
/// An `O=` build directory is merged onto its source tree (its `source`
/// link), build tree last, as upstream's `cpio -pd` does.
fn copy_headers(tree: &Path, to: &Path, reverse: bool, seed: u64) {
    let mut layers = vec![tree.to_path_buf()];
    if let Ok(src) = fs::canonicalize(tree.join("source")) {
        layers.insert(0, src);
    }
    let mut x = seed;
    for (i, layer) in layers.iter().enumerate() {
        let mut paths = Vec::new();
        for top in ["include", "arch/x86/include"] {
            let out = Command::new("find").arg(top).current_dir(layer).output().unwrap();
            paths.extend(String::from_utf8(out.stdout).unwrap().lines().map(str::to_string));
        }
        paths.sort();
        if reverse {
            paths.reverse();
        }
        if i == 0 {
            paths.insert(0, "Kbuild".to_string());
        }
        // The build tree's own files replace the source tree's.
        for p in &paths {
            let dst = to.join(p);
            if i > 0 && fs::symlink_metadata(&dst).is_ok_and(|m| !m.is_dir()) {
                fs::remove_file(&dst).unwrap();
            }
        }
        copy_entries(layer, to, &paths, |dst| {
            dst.is_file().then(|| {
                x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                SystemTime::UNIX_EPOCH + Duration::from_secs(x >> 34)
            })
        });
    }
}

#[test]
fn copies_with_shuffled_times_and_order_pack_to_the_same_bytes() {
    let k = real_kernel();
    let t = tempdir();
    let (a, b) = (t.path().join("a"), t.path().join("b"));
    copy_headers(&k.tree, &a, false, 1);
    copy_headers(&k.tree, &b, true, 2);
    let (ia, ib, io) = (t.path().join("a.img"), t.path().join("b.img"), t.path().join("o.img"));
    pack(&a, &ia, &["--arch", "x86", "-j", "1"]);
    pack(&b, &ib, &["--arch", "x86", "-j", "2"]);
    pack(&k.tree, &io, &["--arch", "x86"]);
    let (ba, bb, bo) = (fs::read(&ia).unwrap(), fs::read(&ib).unwrap(), fs::read(&io).unwrap());
    assert!(ba == bb, "two copies gave different images ({} vs {} bytes)", ba.len(), bb.len());
    assert!(ba == bo, "a copy and the tree itself gave different images");
}
