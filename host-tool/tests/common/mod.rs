//! Shared helpers for the CLI tests: a small fake kernel tree and ways to
//! run the binary and independent readers (squashfs-tools, GNU tar).

#![allow(dead_code)]

use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::SystemTime;

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_kheaders-image")
}

pub fn run(args: &[&str]) -> Output {
    Command::new(bin()).args(args).output().expect("run kheaders-image")
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn write(path: &Path, content: &str) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, content).unwrap();
}

/// A tree with every case the selection must get right; `built` adds what a
/// build leaves (generated headers, the utsrelease, an arch marker).
pub fn fake_kernel(root: &Path, built: bool) {
    write(&root.join("Kbuild"), "obj-y += kernel/\n");
    write(&root.join("Makefile"), "VERSION = 6\n");
    write(
        &root.join("include/linux/kconfig.h"),
        "/* SPDX-License-Identifier: GPL-2.0 */\n#ifndef K\n/* drop me */\n#define K 1\n#endif\n",
    );
    write(
        &root.join("include/linux/sched.h"),
        "// line comment /* not closed here\nint x; /* gone */ int y;\n",
    );
    write(&root.join("include/linux/notes.txt"), "not a header\n");
    write(&root.join("include/linux/impl.c"), "int z;\n");
    write(&root.join("include/uapi/linux/input-event-codes.h"), "#define KEY_A 30 /* a */\n");
    write(&root.join("include/weird.h/inner.h"), "/* in a directory named *.h */\n");
    write(&root.join("include/nothing-here/readme"), "no headers below\n");
    write(&root.join("arch/x86/include/asm/ptrace.h"), "struct pt_regs; /**/\n");
    write(&root.join("arch/x86/include/uapi/asm/unistd.h"), "#define __NR_read 0\n");
    write(&root.join("arch/arm64/include/asm/other.h"), "/* another arch */\n");
    write(&root.join("kernel/internal.h"), "/* outside the header dirs */\n");
    fs::create_dir_all(root.join("include/dt-bindings/input")).unwrap();
    symlink(
        "../../uapi/linux/input-event-codes.h",
        root.join("include/dt-bindings/input/linux-event-codes.h"),
    )
    .unwrap();
    // An executable header: upstream's --mode makes it 0644 anyway.
    let exe = root.join("include/linux/exec.h");
    write(&exe, "#define EXEC 1\n");
    fs::set_permissions(&exe, fs::Permissions::from_mode(0o755)).unwrap();
    if built {
        write(&root.join("include/generated/autoconf.h"), "#define CONFIG_X 1\n");
        write(&root.join("include/generated/utsrelease.h"), "#define UTS_RELEASE \"6.99.0-test\"\n");
        write(&root.join("include/generated/utsversion.h"), "#define UTS_VERSION \"#1 SMP\"\n");
        write(&root.join("arch/x86/include/generated/asm/syscalls_64.h"), "__SYSCALL(0, sys_read)\n");
    }
}

/// What the fake tree's image must hold: (path, type, mode) as `find -printf '%P %y %m'`.
pub const FAKE_LISTING: &[&str] = &[
    " d 755",
    "arch d 755",
    "arch/x86 d 755",
    "arch/x86/include d 755",
    "arch/x86/include/asm d 755",
    "arch/x86/include/asm/ptrace.h f 644",
    "arch/x86/include/generated d 755",
    "arch/x86/include/generated/asm d 755",
    "arch/x86/include/generated/asm/syscalls_64.h f 644",
    "arch/x86/include/uapi d 755",
    "arch/x86/include/uapi/asm d 755",
    "arch/x86/include/uapi/asm/unistd.h f 644",
    "include d 755",
    "include/dt-bindings d 755",
    "include/dt-bindings/input d 755",
    "include/dt-bindings/input/linux-event-codes.h l 777",
    "include/generated d 755",
    "include/generated/autoconf.h f 644",
    "include/generated/utsrelease.h f 644",
    "include/linux d 755",
    "include/linux/exec.h f 644",
    "include/linux/kconfig.h f 644",
    "include/linux/sched.h f 644",
    "include/uapi d 755",
    "include/uapi/linux d 755",
    "include/uapi/linux/input-event-codes.h f 644",
    "include/weird.h d 755",
    "include/weird.h/inner.h f 644",
];

/// `find DIR -printf '%P %y %m\n'`, sorted: an independent view of a tree.
pub fn listing(dir: &Path) -> Vec<String> {
    listing_as(dir, "%P %y %m\n")
}

/// `find DIR -printf FORMAT` (one line per entry), sorted.
pub fn listing_as(dir: &Path, format: &str) -> Vec<String> {
    let out = Command::new("find").arg(dir).args(["-printf", format]).output().unwrap();
    assert!(out.status.success());
    let mut lines: Vec<String> = String::from_utf8(out.stdout).unwrap().lines().map(str::to_string).collect();
    lines.sort();
    lines
}

/// What `make O=obj` leaves beside the source tree `src`: generated headers,
/// a build-tree `include/linux/sched.h` that overrides the source's, a
/// Makefile and the `source` link.
pub fn fake_o_build(src: &Path, obj: &Path) {
    write(&obj.join("include/generated/autoconf.h"), "#define CONFIG_Y 1\n");
    write(&obj.join("include/generated/utsrelease.h"), "#define UTS_RELEASE \"6.99.0-obj\"\n");
    write(&obj.join("include/linux/sched.h"), "/* build tree */ int from_build;\n");
    write(&obj.join("arch/x86/include/generated/uapi/asm/unistd_64.h"), "#define __NR_write 1\n");
    write(&obj.join("Makefile"), "include source/Makefile\n");
    symlink(src, obj.join("source")).unwrap();
}

/// The fake tree, built, in `t`.
pub fn built_fake_kernel(t: &tempfile::TempDir) -> PathBuf {
    let tree = t.path().join("linux");
    fake_kernel(&tree, true);
    tree
}

/// The image of the built fake tree, in `t`.
pub fn fake_image(t: &tempfile::TempDir) -> PathBuf {
    let tree = built_fake_kernel(t);
    let img = t.path().join("h.img");
    pack(&tree, &img, &[]);
    img
}

/// Copy `paths` (relative, in this order: the order changes directory order
/// on disk) from `from` to `to`, symlinks as symlinks; then give each
/// directory and file the time `mtime` returns for it, if any.
pub fn copy_entries(
    from: &Path,
    to: &Path,
    paths: &[String],
    mut mtime: impl FnMut(&Path) -> Option<SystemTime>,
) {
    for p in paths {
        let (src, dst) = (from.join(p), to.join(p));
        fs::create_dir_all(dst.parent().unwrap()).unwrap();
        let meta = fs::symlink_metadata(&src).unwrap();
        if meta.is_dir() {
            fs::create_dir_all(&dst).unwrap();
        } else if meta.file_type().is_symlink() {
            symlink(fs::read_link(&src).unwrap(), &dst).unwrap();
        } else {
            fs::copy(&src, &dst).unwrap();
        }
    }
    // After all copies: adding an entry changes its directory's time.
    for p in paths {
        let dst = to.join(p);
        if fs::symlink_metadata(&dst).unwrap().file_type().is_symlink() {
            continue;
        }
        if let Some(when) = mtime(&dst) {
            fs::File::open(&dst).unwrap().set_modified(when).unwrap();
        }
    }
}

/// Extract an image with squashfs-tools' unsquashfs.
pub fn unsquashfs(image: &Path, dest: &Path) {
    let out = Command::new("unsquashfs")
        .args(["-no-progress", "-quiet", "-d"])
        .arg(dest)
        .arg(image)
        .output()
        .expect("unsquashfs (squashfs-tools) must be installed; run scripts/setup.sh");
    assert!(out.status.success(), "unsquashfs: {}", String::from_utf8_lossy(&out.stderr));
}

/// `pack` a tree into `out`; panics with the tool's message on failure.
pub fn pack(tree: &Path, out: &Path, extra: &[&str]) {
    let mut args = vec!["pack", "-q"];
    args.extend_from_slice(extra);
    args.push(tree.to_str().unwrap());
    args.push("-o");
    args.push(out.to_str().unwrap());
    let o = run(&args);
    assert!(o.status.success(), "pack failed: {}", stderr(&o));
}

pub fn tempdir() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

pub fn path_str(p: &Path) -> &str {
    p.to_str().unwrap()
}

pub fn files_in(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
    v.sort();
    v
}

/// Archive `dir` into `out` (xz) with GNU tar as upstream's
/// `kernel/gen_kheaders.sh` does (its flags; `--mtime` as with
/// `KBUILD_BUILD_TIMESTAMP`, else each file's own).
pub fn upstream_tar(dir: &Path, out: &Path, mtime: Option<&str>) {
    let st = Command::new("tar")
        .args(mtime.map(|m| format!("--mtime={m}")))
        .args([
            "--owner=0",
            "--group=0",
            "--sort=name",
            "--numeric-owner",
            "--mode=u=rw,go=r,a+X",
            "-I",
            "xz",
            "-cf",
        ])
        .arg(out)
        .arg("-C")
        .arg(dir)
        .arg(".")
        .status()
        .unwrap();
    assert!(st.success(), "GNU tar failed");
}

/// Extract a tar(.xz) with GNU tar into `dest` (created).
pub fn untar(tarball: &Path, dest: &Path) {
    fs::create_dir_all(dest).unwrap();
    let st = Command::new("tar").arg("-xf").arg(tarball).arg("-C").arg(dest).status().unwrap();
    assert!(st.success(), "tar -x {} failed", tarball.display());
}
