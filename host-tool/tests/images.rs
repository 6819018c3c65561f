//! `inspect` and `verify`, and what they do with damaged images.

mod common;

use std::fs;
use std::process::Command;

use common::*;
use kheaders_image::format::{parse_image, BlockFormat, TRAILER_SIZE};
use kheaders_image::inspect::inspect;
use kheaders_image::tree::HeaderTree;

#[test]
fn inspect_reports_superblock_and_counts() {
    let t = tempdir();
    let img = fake_image(&t);
    let o = run(&["inspect", path_str(&img)]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = stdout(&o);
    for want in [
        "squashfs 4.0, xz compression",
        "block size         128 KiB",
        "10 files, 17 directories, 1 symlinks",
        "kernel release     6.99.0-test",
        "checksum           crc32",
    ] {
        assert!(text.contains(want), "{want:?} missing from:\n{text}");
    }
    let o = run(&["inspect", "--json", path_str(&img)]);
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).expect("valid JSON");
    assert_eq!(j["compressor"], "xz");
    assert_eq!(j["files"], 10);
    assert_eq!(j["directories"], 17);
    assert_eq!(j["symlinks"], 1);
    assert_eq!(j["inode_count"], 28);
    assert_eq!(j["file_bytes"].as_u64().unwrap() % 65536, 0);
    assert!(j["ratio"].as_f64().unwrap() > 0.0);
    // unsquashfs agrees with the counts.
    let out = Command::new("unsquashfs").args(["-lln"]).arg(&img).output().unwrap();
    let lines = String::from_utf8_lossy(&out.stdout).lines().filter(|l| l.contains("squashfs-root")).count();
    assert_eq!(lines, 28);
}

#[test]
fn verify_passes_on_identical_and_names_each_difference() {
    let t = tempdir();
    let img = fake_image(&t);
    let dir = t.path().join("x");
    unsquashfs(&img, &dir);
    let o = run(&["verify", path_str(&img), path_str(&dir)]);
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
    assert!(stdout(&o).contains("matches") && stdout(&o).contains("10 files"), "{}", stdout(&o));

    write(&dir.join("include/linux/sched.h"), "// line comment  int Y;\n");
    fs::remove_file(dir.join("include/linux/exec.h")).unwrap();
    write(&dir.join("include/linux/extra.h"), "x");
    fs::set_permissions(
        dir.join("include/linux/kconfig.h"),
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    let o = run(&["verify", path_str(&img), path_str(&dir)]);
    assert_eq!(o.status.code(), Some(1));
    let text = stdout(&o);
    for want in [
        "include/linux/exec.h: file in the image but not in the reference",
        "include/linux/extra.h: file missing from the image",
        "include/linux/kconfig.h: mode 0600 in the reference, 0644 in the image",
        "include/linux/sched.h: contents differ from byte 21 (line 1)",
    ] {
        assert!(text.contains(want), "{want:?} missing from:\n{text}");
    }
    assert!(stderr(&o).contains("differs from") && stderr(&o).contains("4 place(s)"), "{}", stderr(&o));
}

#[test]
fn verify_against_a_tarball_made_like_upstream() {
    let t = tempdir();
    let img = fake_image(&t);
    let dir = t.path().join("x");
    unsquashfs(&img, &dir);
    let tarball = t.path().join("h.tar.xz");
    let make_tarball = || upstream_tar(&dir, &tarball, None);
    make_tarball();
    let o = run(&["verify", path_str(&img), path_str(&tarball)]);
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
    assert!(!stdout(&o).contains("note:"), "{}", stdout(&o));

    // Upstream's tarball holds utsversion.h when the vmlinux link wrote it
    // first (seen on arm64): not a difference. Anything else still is.
    fs::create_dir_all(dir.join("include/generated")).unwrap();
    fs::write(dir.join("include/generated/utsversion.h"), "#define UTS_VERSION \"#1\"\n").unwrap();
    make_tarball();
    let o = run(&["verify", path_str(&img), path_str(&tarball)]);
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
    assert!(stdout(&o).contains("include/generated/utsversion.h is not compared"), "{}", stdout(&o));
    fs::write(dir.join("include/generated/other.h"), "int x;\n").unwrap();
    make_tarball();
    let o = run(&["verify", path_str(&img), path_str(&tarball)]);
    assert!(!o.status.success(), "{}{}", stdout(&o), stderr(&o));
    assert!(stdout(&o).contains("include/generated/other.h: file missing from the image"), "{}", stdout(&o));
}

#[test]
fn damaged_images_are_errors_never_panics() {
    let t = tempdir();
    let img = fake_image(&t);
    let good = fs::read(&img).unwrap();
    assert!(inspect(&good).is_ok());
    let sq_len = parse_image(&good).unwrap().squashfs.len();

    // Every single-byte flip and every truncation: with the trailer the CRC
    // catches all of them; without it (a plain squashfs), the parser must
    // still never panic.
    let plain = &good[..sq_len];
    let mut plain_errors = 0;
    for i in 0..good.len() {
        let mut bad = good.clone();
        bad[i] ^= 0x5a;
        let trailer = good.len() - TRAILER_SIZE;
        let in_padding = i >= sq_len && i < trailer;
        // A damaged trailer magic leaves a plain squashfs: fine to inspect,
        // but reported as carrying no trailer (the module refuses it).
        let in_magic = i >= trailer && i < trailer + 8;
        match std::panic::catch_unwind(|| inspect(&bad)) {
            Ok(Ok(info)) => {
                assert!(in_padding || in_magic, "flip at {i} went unnoticed");
                assert_eq!(info.trailer.is_none(), in_magic, "flip at {i}");
            }
            Ok(Err(_)) => assert!(!in_padding && !in_magic, "flip at {i} in padding refused"),
            Err(_) => panic!("inspect panicked on a flip at {i}"),
        }
        if i < sq_len {
            let mut bad = plain.to_vec();
            bad[i] ^= 0x5a;
            let r =
                std::panic::catch_unwind(|| inspect(&bad).and_then(|_| HeaderTree::from_image_bytes(&bad)));
            match r {
                Ok(Err(_)) => plain_errors += 1,
                Ok(Ok(_)) => {}
                Err(_) => panic!("panicked on a plain image with a flip at {i}"),
            }
        }
    }
    assert!(plain_errors > 0);
    for len in (0..good.len()).step_by(7) {
        match std::panic::catch_unwind(|| inspect(&good[..len])) {
            Ok(Err(_)) => assert!(len < sq_len, "cut after the squashfs data ({len}) refused"),
            // Cut after the squashfs data: a plain squashfs, and said so.
            Ok(Ok(info)) => assert!(len >= sq_len && info.trailer.is_none(), "truncated to {len} passed"),
            Err(_) => panic!("inspect panicked on a cut at {len}"),
        }
    }

    // Through the CLI: exit 1 with one error line.
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("empty", vec![]),
        ("truncated", good[..sq_len / 2].to_vec()),
        ("not squashfs", b"hello world, this is not an image".repeat(10)),
        ("flipped", {
            let mut b = good.clone();
            b[200] ^= 1;
            b
        }),
    ];
    for (name, bytes) in cases {
        let p = t.path().join(format!("{name}.img"));
        fs::write(&p, bytes).unwrap();
        for cmd in [vec!["inspect", path_str(&p)], vec!["verify", path_str(&p), path_str(t.path())]] {
            let o = run(&cmd);
            assert_eq!(o.status.code(), Some(1), "{name} {cmd:?}: {}", stderr(&o));
            assert!(stderr(&o).starts_with("kheaders-image: error: "), "{name}: {}", stderr(&o));
            assert_eq!(stderr(&o).lines().count(), 1, "{name}: {}", stderr(&o));
        }
    }
}

#[test]
fn missing_or_unreadable_inputs() {
    let t = tempdir();
    let img = fake_image(&t);
    let o = run(&["inspect", "/nonexistent.img"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("/nonexistent.img"));
    let o = run(&["verify", path_str(&img), "/nonexistent-ref"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("/nonexistent-ref"), "{}", stderr(&o));
    let junk = t.path().join("junk.tar.xz");
    fs::write(&junk, b"\xfd7zXZ\0garbage").unwrap();
    let o = run(&["verify", path_str(&img), path_str(&junk)]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("bad xz data"), "{}", stderr(&o));
}

fn mksquashfs(dir: &std::path::Path, out: &std::path::Path, comp: &str) {
    let st = Command::new("mksquashfs")
        .arg(dir)
        .arg(out)
        .args(["-comp", comp, "-noappend", "-all-root", "-quiet", "-no-progress"])
        .status()
        .unwrap();
    assert!(st.success(), "mksquashfs -comp {comp}");
}

#[test]
fn seal_adds_the_trailer_to_an_image_made_elsewhere() {
    let t = tempdir();
    let img = fake_image(&t);
    let dir = t.path().join("x");
    unsquashfs(&img, &dir);
    let plain = t.path().join("plain.sqfs");
    mksquashfs(&dir, &plain, "xz");
    let sealed = t.path().join("sealed.img");
    let o = run(&["seal", path_str(&plain), "-o", path_str(&sealed), "--release", "6.99.0-x"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let bytes = fs::read(&sealed).unwrap();
    assert_eq!(bytes.len() % 65536, 0);
    let info = inspect(&bytes).unwrap();
    let tr = info.trailer.expect("trailer");
    assert_eq!(tr.kernel_release, "6.99.0-x");
    assert_eq!((info.files, info.symlinks), (10, 1));
    let o = run(&["verify", path_str(&sealed), path_str(&dir)]);
    assert!(o.status.success(), "{}", stdout(&o));
    // Sealing twice is refused; an output is not written.
    let again = t.path().join("again.img");
    let o = run(&["seal", path_str(&sealed), "-o", path_str(&again)]);
    assert!(
        !o.status.success() && stderr(&o).contains("already has a kheaders-image trailer"),
        "{}",
        stderr(&o)
    );
    assert!(!again.exists());
    // Another compressor backhand reads: counted, named in the trailer.
    let lz4 = t.path().join("lz4.sqfs");
    mksquashfs(&dir, &lz4, "lz4");
    let o = run(&["seal", path_str(&lz4), "-o", path_str(&sealed)]);
    assert!(o.status.success(), "{}", stderr(&o));
    let info = inspect(&fs::read(&sealed).unwrap()).unwrap();
    assert_eq!((info.compressor.as_str(), info.files, info.symlinks), ("lz4", 10, 1));
    // One it does not read: sealed, with counts it cannot know.
    let gzip = t.path().join("gzip.sqfs");
    mksquashfs(&dir, &gzip, "gzip");
    let o = run(&["seal", path_str(&gzip), "-o", path_str(&sealed)]);
    assert!(
        o.status.success() && stderr(&o).contains("a gzip image: file counts recorded as 0"),
        "{}",
        stderr(&o)
    );
    let gzip_sealed = fs::read(&sealed).unwrap();
    let p = parse_image(&gzip_sealed).unwrap();
    p.check_crc().unwrap();
    assert_eq!(p.squashfs_superblock().unwrap().compressor.get(), 1);
    assert_eq!(p.trailer.unwrap().compressor.get(), BlockFormat::Gzip as u16);
}

#[test]
fn version_1_trailers_are_still_read_and_version_2_is_checked() {
    use kheaders_image::format::Trailer;
    use zerocopy::FromBytes;
    let t = tempdir();
    let v2 = fs::read(fake_image(&t)).unwrap();
    let with = |f: &dyn Fn(&mut Trailer)| {
        let mut b = v2.clone();
        let at = b.len() - TRAILER_SIZE;
        let tr = Trailer::mut_from_bytes(&mut b[at..]).unwrap();
        f(tr);
        tr.seal();
        b
    };
    let p = parse_image(&v2).unwrap().trailer.unwrap();
    assert_eq!((p.version.get(), p.format.get(), p.compressor.get()), (2, 1, BlockFormat::Xz as u16));
    // What kheaders-image wrote before version 2: the same bytes but these.
    let v1 = with(&|tr| {
        tr.version = 1.into();
        tr.format = 0.into();
        tr.compressor = 0.into();
    });
    assert_eq!(inspect(&v1).unwrap().trailer.unwrap().version, 1);
    let err = |b: &[u8]| parse_image(b).unwrap_err().to_string();
    assert_eq!(
        err(&with(&|tr| tr.compressor = (BlockFormat::Zstd as u16).into())),
        "image trailer says zstd blocks, the superblock's compressor is 4"
    );
    assert_eq!(err(&with(&|tr| tr.format = 9.into())), "image trailer names an unknown filesystem format 9");
    assert_eq!(err(&with(&|tr| tr.format = 2.into())), "image trailer says EROFS, but the image is squashfs");
    assert_eq!(err(&with(&|tr| tr.version = 3.into())), "image trailer version 3 unsupported");
}
