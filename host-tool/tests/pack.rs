//! `pack` on small trees, read back with squashfs-tools (an independent
//! reader): selection, stripping, modes, times, reproducibility.

mod common;

use std::fs;
use std::os::unix::fs::symlink;
use std::process::Command;

use common::*;

#[test]
fn selects_the_upstream_header_set_with_upstream_modes() {
    let t = tempdir();
    let tree = built_fake_kernel(&t);
    let img = t.path().join("h.img");
    pack(&tree, &img, &[]);
    let out = t.path().join("x");
    unsquashfs(&img, &out);
    assert_eq!(listing(&out), FAKE_LISTING.iter().map(|s| s.to_string()).collect::<Vec<_>>());
    assert_eq!(
        fs::read_link(out.join("include/dt-bindings/input/linux-event-codes.h")).unwrap().to_str().unwrap(),
        "../../uapi/linux/input-event-codes.h"
    );
    // Stripped as upstream's perl does; SPDX kept.
    assert_eq!(
        fs::read_to_string(out.join("include/linux/kconfig.h")).unwrap(),
        "/* SPDX-License-Identifier: GPL-2.0 */\n#ifndef K\n\n#define K 1\n#endif\n"
    );
    assert_eq!(fs::read_to_string(out.join("include/linux/sched.h")).unwrap(), "// line comment  int y;\n");
    assert_eq!(fs::read_to_string(out.join("arch/x86/include/asm/ptrace.h")).unwrap(), "struct pt_regs; \n");
}

#[test]
fn ids_and_times_are_fixed() {
    let t = tempdir();
    let tree = built_fake_kernel(&t);
    let img = t.path().join("h.img");
    pack(&tree, &img, &["--mtime", "1700000000"]);
    let out = Command::new("unsquashfs").args(["-lln"]).arg(&img).env("TZ", "UTC").output().unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    let entries: Vec<&str> = text.lines().filter(|l| l.contains("squashfs-root")).collect();
    assert_eq!(entries.len(), FAKE_LISTING.len(), "{text}");
    for line in entries {
        // drwxr-xr-x 0/0  ...  2023-11-14 22:13 squashfs-root/...
        let cols: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(cols[1], "0/0", "owner in {line}");
        assert!(line.contains("2023-11-14 22:13"), "time in {line}");
    }
    let json = run(&["inspect", "--json", path_str(&img)]);
    assert!(stdout(&json).contains("\"mod_time\": 1700000000"), "{}", stdout(&json));
}

#[test]
fn time_comes_from_kbuild_build_timestamp_then_source_date_epoch() {
    let t = tempdir();
    let tree = built_fake_kernel(&t);
    let img = t.path().join("h.img");
    let mod_time = |env: &[(&str, &str)]| -> String {
        let mut c = Command::new(bin());
        c.args(["pack", "-q", path_str(&tree), "-o", path_str(&img)]);
        c.env_remove("KBUILD_BUILD_TIMESTAMP").env_remove("SOURCE_DATE_EPOCH");
        for (k, v) in env {
            c.env(k, v);
        }
        let o = c.output().unwrap();
        assert!(o.status.success(), "{}", stderr(&o));
        let j = stdout(&run(&["inspect", "--json", path_str(&img)]));
        j.lines().find(|l| l.contains("\"mod_time\"")).unwrap().trim().to_string()
    };
    assert_eq!(mod_time(&[]), "\"mod_time\": 0,");
    assert_eq!(mod_time(&[("SOURCE_DATE_EPOCH", "1234567")]), "\"mod_time\": 1234567,");
    assert_eq!(
        mod_time(&[
            ("SOURCE_DATE_EPOCH", "1234567"),
            ("KBUILD_BUILD_TIMESTAMP", "Thu Jan  1 00:01:40 UTC 1970")
        ]),
        "\"mod_time\": 100,"
    );
}

/// Copy the fake tree entry by entry, in sorted or reverse order, with one
/// `mtime` for every directory and file.
fn copy_tree(from: &std::path::Path, to: &std::path::Path, reverse: bool, mtime: u64) {
    let mut paths: Vec<String> = listing_as(from, "%P\n").into_iter().filter(|p| !p.is_empty()).collect();
    if reverse {
        paths.reverse();
    }
    let when = std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(mtime);
    copy_entries(from, to, &paths, |_| Some(when));
}

#[test]
fn reproducible_across_mtimes_directory_order_and_jobs() {
    let t = tempdir();
    let orig = t.path().join("orig");
    fake_kernel(&orig, true);
    let a = t.path().join("a");
    let b = t.path().join("b");
    copy_tree(&orig, &a, false, 1_000_000);
    copy_tree(&orig, &b, true, 1_600_000_000);
    let (ia, ib, ic) = (t.path().join("a.img"), t.path().join("b.img"), t.path().join("c.img"));
    pack(&a, &ia, &["-j", "1"]);
    pack(&b, &ib, &["-j", "3"]);
    pack(&orig, &ic, &[]);
    let (ba, bb, bc) = (fs::read(&ia).unwrap(), fs::read(&ib).unwrap(), fs::read(&ic).unwrap());
    assert!(ba == bb && bb == bc, "images differ: {} / {} / {} bytes", ba.len(), bb.len(), bc.len());
    // Different content must give different bytes (the test can fail).
    write(&b.join("include/linux/sched.h"), "changed\n");
    pack(&b, &ib, &[]);
    assert_ne!(fs::read(&ib).unwrap(), ba);
}

#[test]
fn build_tree_wins_and_source_link_is_followed() {
    let t = tempdir();
    let src = t.path().join("src");
    fake_kernel(&src, false);
    let obj = t.path().join("obj");
    fake_o_build(&src, &obj);
    let img = t.path().join("h.img");
    pack(&obj, &img, &[]);
    let out = t.path().join("x");
    unsquashfs(&img, &out);
    assert_eq!(fs::read_to_string(out.join("include/linux/sched.h")).unwrap(), " int from_build;\n");
    assert!(
        out.join("arch/x86/include/generated/uapi/asm/unistd_64.h").is_file(),
        "arch taken from the build tree"
    );
    assert!(out.join("include/linux/kconfig.h").is_file(), "source headers kept");
    let j = stdout(&run(&["inspect", "--json", path_str(&img)]));
    assert!(j.contains("\"kernel_release\": \"6.99.0-obj\""), "{j}");
    // The same with --source instead of the link.
    fs::remove_file(obj.join("source")).unwrap();
    let img2 = t.path().join("h2.img");
    pack(&obj, &img2, &["--source", path_str(&src)]);
    assert_eq!(fs::read(&img).unwrap(), fs::read(&img2).unwrap());
}

#[test]
fn block_size_and_arch_options() {
    let t = tempdir();
    let tree = t.path().join("linux");
    fake_kernel(&tree, false); // unbuilt: arch comes from --arch or the host
    let img = t.path().join("h.img");
    let o = run(&["pack", path_str(&tree), "-o", path_str(&img), "--arch", "arm64", "-b", "1M"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("warning:") && stderr(&o).contains("not configured"), "{}", stderr(&o));
    let out = t.path().join("x");
    unsquashfs(&img, &out);
    assert!(out.join("arch/arm64/include/asm/other.h").is_file());
    assert!(!out.join("arch/x86").exists());
    let j = stdout(&run(&["inspect", "--json", path_str(&img)]));
    assert!(j.contains("\"block_size\": 1048576") && j.contains("\"xz_dictionary_size\": 1048576"), "{j}");
}

#[test]
fn crc32_in_the_module_matches_the_host_tool() {
    #[path = "../../kmod/crc32.rs"]
    mod kmod_crc32;
    let mut data = Vec::new();
    let mut x = 0x1234_5678u32;
    for len in [0usize, 1, 7, 8, 9, 63, 64, 65, 4096, 100_003] {
        data.clear();
        for _ in 0..len {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            data.push(x as u8);
        }
        assert_eq!(kmod_crc32::crc32(&data), crc32fast::hash(&data), "len {len}");
    }
    assert_eq!(kmod_crc32::crc32(b"123456789"), 0xcbf4_3926);
}

#[test]
fn header_dir_symlinks_are_followed_and_nfs_leftovers_skipped() {
    let t = tempdir();
    let tree = built_fake_kernel(&t);
    // `find arch/x86/include/` follows a symlinked start directory.
    let real = t.path().join("x86-include");
    fs::rename(tree.join("arch/x86/include"), &real).unwrap();
    symlink(&real, tree.join("arch/x86/include")).unwrap();
    // tar --exclude=".nfs*" --exclude=".__afs*" in gen_kheaders.sh.
    write(&tree.join("include/linux/.nfs000000000012345600000001.h"), "stale\n");
    write(&tree.join("include/.__afs1234/x.h"), "stale\n");
    let img = t.path().join("h.img");
    pack(&tree, &img, &[]);
    let out = t.path().join("x");
    unsquashfs(&img, &out);
    assert_eq!(listing(&out), FAKE_LISTING.iter().map(|s| s.to_string()).collect::<Vec<_>>());
}
