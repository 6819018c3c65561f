//! The kernel-build side of the image: `kmod/pack-image.sh` (the Kbuild step
//! that packs the headers, out of tree and in a kernel tree) and
//! `scripts/integrate-kernel.sh` (kmod/ into a kernel source tree), run on
//! small trees. The real kernel builds are in scripts/build-kernel.sh and the
//! VM tests.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, SystemTime};

use common::*;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

/// `kmod/pack-image.sh OUT TOOL x86 TREE [SRCTREE] --`, with extra environment.
fn pack_script(out: &Path, tool: &str, tree: &Path, srctree: Option<&Path>, env: &[(&str, &str)]) -> Output {
    let mut c = Command::new("sh");
    c.arg(repo().join("kmod/pack-image.sh")).arg(out).arg(tool).arg("x86").arg(tree);
    if let Some(s) = srctree {
        c.arg(s);
    }
    c.arg("--");
    c.env_remove("KBUILD_BUILD_TIMESTAMP").env_remove("SOURCE_DATE_EPOCH");
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().unwrap()
}

fn packed(o: &Output) -> bool {
    assert!(o.status.success(), "pack-image.sh failed: {}", stderr(o));
    stdout(o).contains("GEN")
}

fn mtime(p: &Path) -> SystemTime {
    fs::metadata(p).unwrap().modified().unwrap()
}

fn touch_later(p: &Path) {
    let later = mtime(p) + Duration::from_secs(10);
    fs::File::options().append(true).open(p).unwrap().set_modified(later).unwrap();
}

/// What `kheaders-image pack` gives for `tree` (the oracle for the script's output).
fn direct_pack(t: &tempfile::TempDir, tree: &Path, extra: &[&str]) -> Vec<u8> {
    let img = t.path().join("direct.img");
    let mut args = vec!["--arch", "x86"];
    args.extend_from_slice(extra);
    pack(tree, &img, &args);
    fs::read(img).unwrap()
}

#[test]
fn pack_step_packs_when_headers_change_and_not_otherwise() {
    let t = tempdir();
    let tree = built_fake_kernel(&t);
    let img = t.path().join("out/kheaders.img");
    fs::create_dir_all(img.parent().unwrap()).unwrap();

    assert!(packed(&pack_script(&img, bin(), &tree, None, &[])), "first run must pack");
    assert_eq!(
        fs::read(&img).unwrap(),
        direct_pack(&t, &tree, &[]),
        "image differs from kheaders-image pack"
    );
    let first = mtime(&img);

    // Nothing changed: no pack, the image is not rewritten.
    assert!(!packed(&pack_script(&img, bin(), &tree, None, &[])), "packed although nothing changed");
    assert_eq!(mtime(&img), first);

    // A header touched, its bytes unchanged: packed again, same bytes, file left alone
    // (so nothing that embeds it is rebuilt).
    touch_later(&tree.join("include/linux/sched.h"));
    assert!(packed(&pack_script(&img, bin(), &tree, None, &[])), "a touched header must be checked");
    assert_eq!(mtime(&img), first, "identical image rewritten");

    // A header changed: a new image, equal to what the tool packs now.
    write(&tree.join("include/linux/sched.h"), "int changed;\n");
    assert!(packed(&pack_script(&img, bin(), &tree, None, &[])));
    let now = direct_pack(&t, &tree, &[]);
    assert_eq!(fs::read(&img).unwrap(), now);

    // A header removed, one added.
    fs::remove_file(tree.join("include/linux/exec.h")).unwrap();
    write(&tree.join("include/linux/new.h"), "int n;\n");
    assert!(packed(&pack_script(&img, bin(), &tree, None, &[])));
    assert_eq!(fs::read(&img).unwrap(), direct_pack(&t, &tree, &[]));

    // The image replaced behind its back (make KHEADERS_IMAGE=... wrote it): packed again.
    fs::write(&img, b"another image").unwrap();
    assert!(packed(&pack_script(&img, bin(), &tree, None, &[])));
    assert_eq!(fs::read(&img).unwrap(), direct_pack(&t, &tree, &[]));

    // Another time stamp for the image: packed again, with it.
    let o = pack_script(&img, bin(), &tree, None, &[("KBUILD_BUILD_TIMESTAMP", "2024-01-01 UTC")]);
    assert!(packed(&o));
    assert_eq!(fs::read(&img).unwrap(), direct_pack(&t, &tree, &["--mtime", "2024-01-01 UTC"]));
    assert!(files_in(img.parent().unwrap()).iter().all(|p| !p.to_string_lossy().ends_with(".tmp")));
}

#[test]
fn pack_step_follows_the_source_tree_of_an_o_build() {
    let t = tempdir();
    let src = t.path().join("src");
    fake_kernel(&src, false);
    let obj = t.path().join("obj");
    fake_o_build(&src, &obj);
    let img = t.path().join("kheaders.img");
    assert!(packed(&pack_script(&img, bin(), &obj, Some(&src), &[])));
    assert!(!packed(&pack_script(&img, bin(), &obj, Some(&src), &[])));
    // utsversion.h is generated when vmlinux is linked, after the pack: ignored.
    write(&obj.join("include/generated/utsversion.h"), "#define UTS_VERSION \"#2\"\n");
    assert!(!packed(&pack_script(&img, bin(), &obj, Some(&src), &[])), "utsversion.h triggered a pack");
    write(&src.join("include/linux/kconfig.h"), "int in_the_source_tree;\n");
    assert!(
        packed(&pack_script(&img, bin(), &obj, Some(&src), &[])),
        "a source-tree header change was missed"
    );
    let unpacked = t.path().join("x");
    unsquashfs(&img, &unpacked);
    assert_eq!(
        fs::read_to_string(unpacked.join("include/linux/kconfig.h")).unwrap(),
        "int in_the_source_tree;\n"
    );
    assert!(unpacked.join("include/generated/utsrelease.h").is_file());
}

#[test]
fn pack_step_finds_the_tool_on_path() {
    let t = tempdir();
    let tree = built_fake_kernel(&t);
    let img = t.path().join("kheaders.img");
    let dir = Path::new(bin()).parent().unwrap();
    let path = format!("{}:{}", dir.display(), std::env::var("PATH").unwrap());
    assert!(packed(&pack_script(&img, "kheaders-image", &tree, None, &[("PATH", &path)])));
    assert_eq!(fs::read(&img).unwrap(), direct_pack(&t, &tree, &[]));
}

#[test]
fn pack_step_without_the_tool_fails_with_one_line_and_keeps_the_image() {
    let t = tempdir();
    let tree = built_fake_kernel(&t);
    let img = t.path().join("kheaders.img");
    fs::write(&img, b"the previous image").unwrap();
    let o = pack_script(&img, "kheaders-image-that-is-not-installed", &tree, None, &[]);
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert_eq!(err.lines().count(), 1, "expected one line: {err}");
    for needle in ["not found", "cargo install --path host-tool", "KHEADERS_TOOL="] {
        assert!(err.contains(needle), "'{needle}' missing from: {err}");
    }
    assert_eq!(fs::read(&img).unwrap(), b"the previous image");
    assert_eq!(files_in(t.path()).len(), 2, "left files behind: {:?}", files_in(t.path()));
}

/// A kernel source tree as far as the integration looks at it.
fn fake_source(root: &Path, version: &str) {
    write(&root.join("Makefile"), &format!("kernelversion:\n\t@echo {version}\n"));
    write(&root.join("Kbuild"), "obj-y += drivers/\n");
    write(
        &root.join("drivers/block/Kconfig"),
        "menuconfig BLK_DEV\n\tbool \"Block devices\"\n\nif BLK_DEV\n\nconfig ZRAM\n\ttristate \"zram\"\n\nendif # BLK_DEV\n",
    );
    write(&root.join("drivers/block/Makefile"), "obj-$(CONFIG_ZRAM) += zram/\n");
}

fn integrate(tree: &Path) -> Output {
    Command::new(repo().join("scripts/integrate-kernel.sh")).arg(tree).output().unwrap()
}

/// Path, inode, size, time and content hash of every entry: any write shows.
fn fingerprint(dir: &Path) -> Vec<String> {
    let mut v = listing_as(dir, "%P %y %i %s %T@\n");
    let sums = Command::new("sh")
        .arg("-c")
        .arg("cd \"$1\" && find . -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum")
        .arg("sh")
        .arg(dir)
        .output()
        .unwrap();
    v.extend(stdout(&sums).lines().map(str::to_string));
    v
}

#[test]
fn integration_adds_the_driver_and_a_second_run_changes_nothing() {
    let t = tempdir();
    let tree = t.path().join("linux");
    fake_source(&tree, "6.12.117");
    let o = integrate(&tree);
    assert!(o.status.success(), "{}", stderr(&o));

    let dir = tree.join("drivers/block/kheaders_blk");
    let mut want: Vec<String> = [
        "Kbuild",
        "Kconfig",
        "blk_ext.rs",
        "crc32.rs",
        "driver.rs",
        "helpers.c",
        "image.rs",
        "pack-image.sh",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    want.sort();
    let got: Vec<String> =
        files_in(&dir).iter().map(|p| p.file_name().unwrap().to_string_lossy().into_owned()).collect();
    assert_eq!(got, want);
    for f in &want {
        assert_eq!(
            fs::read(dir.join(f)).unwrap(),
            fs::read(repo().join("kmod").join(f)).unwrap(),
            "{f} is not kmod/{f}"
        );
    }
    let kconfig = fs::read_to_string(tree.join("drivers/block/Kconfig")).unwrap();
    let at = kconfig.find("source \"drivers/block/kheaders_blk/Kconfig\"").expect("Kconfig not sourced");
    assert!(at < kconfig.rfind("endif # BLK_DEV").unwrap(), "sourced outside if BLK_DEV:\n{kconfig}");
    let makefile = fs::read_to_string(tree.join("drivers/block/Makefile")).unwrap();
    assert!(makefile.starts_with("obj-$(CONFIG_ZRAM) += zram/\n"));
    assert!(makefile.lines().any(|l| l == "obj-$(CONFIG_KHEADERS_BLK)\t+= kheaders_blk/"), "{makefile}");

    // Build outputs in the directory (an in-tree build without O=) survive a re-run.
    fs::write(dir.join("kheaders.img"), b"built").unwrap();
    fs::write(dir.join("kheaders_blk.mod.c"), b"generated").unwrap();
    let before = fingerprint(&tree);
    let o = integrate(&tree);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("nothing changed"), "{}", stderr(&o));
    assert_eq!(fingerprint(&tree), before, "the second run changed the tree");

    // A source kmod/ no longer has is removed; a changed one is replaced.
    fs::write(dir.join("old.rs"), b"// gone from kmod/").unwrap();
    fs::write(dir.join("driver.rs"), b"// edited").unwrap();
    assert!(integrate(&tree).status.success());
    assert!(!dir.join("old.rs").exists());
    assert_eq!(fs::read(dir.join("driver.rs")).unwrap(), fs::read(repo().join("kmod/driver.rs")).unwrap());
    assert_eq!(fs::read(dir.join("kheaders.img")).unwrap(), b"built");
}

#[test]
fn integration_never_writes_through_shared_inodes() {
    let t = tempdir();
    let shared = t.path().join("shared");
    fake_source(&shared, "6.12.117");
    let before = fingerprint(&shared);
    let copy = t.path().join("copy");
    let o = Command::new("cp").arg("-al").arg(&shared).arg(&copy).output().unwrap();
    assert!(o.status.success());
    assert!(integrate(&copy).status.success());
    assert_eq!(fingerprint(&shared), before, "the shared tree changed through a hard link");
    assert!(fs::read_to_string(copy.join("drivers/block/Makefile")).unwrap().contains("kheaders_blk/"));
}

#[test]
fn integration_refuses_what_is_not_a_kernel_tree_and_warns_on_other_versions() {
    let t = tempdir();
    let o = integrate(t.path());
    assert!(!o.status.success());
    assert_eq!(stderr(&o).lines().count(), 1, "{}", stderr(&o));
    assert!(stderr(&o).contains("is not a kernel source tree"), "{}", stderr(&o));

    let tree = t.path().join("linux");
    fake_source(&tree, "6.14.0");
    let o = integrate(&tree);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("warning: ") && stderr(&o).contains("tested on 6.12"), "{}", stderr(&o));
}
