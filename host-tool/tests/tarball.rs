//! `pack` with a kheaders tarball as input: the image holds what the tarball
//! holds, as GNU tar and squashfs-tools (independent readers) see both.

mod common;

use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::process::Command;

use common::*;

/// A tarball made by upstream's tar command from the fake tree's header set.
fn fake_tarball(t: &tempfile::TempDir) -> (std::path::PathBuf, std::path::PathBuf) {
    let tree_img = fake_image(t);
    let set = t.path().join("set");
    unsquashfs(&tree_img, &set);
    let tarball = t.path().join("kheaders_data.tar.xz");
    upstream_tar(&set, &tarball, Some("@1700000000"));
    (tree_img, tarball)
}

#[test]
fn a_tarball_of_a_trees_headers_packs_to_that_trees_image() {
    let t = tempdir();
    let (tree_img, tarball) = fake_tarball(&t);
    // The tarball's own time is the default: same tree, same time, same bytes.
    let img = t.path().join("from-tarball.img");
    pack(&tarball, &img, &[]);
    let tree_img_at = t.path().join("tree-at.img");
    pack(&t.path().join("linux"), &tree_img_at, &["--mtime", "1700000000"]);
    assert!(fs::read(&img).unwrap() == fs::read(&tree_img_at).unwrap(), "images differ");
    assert!(fs::read(&img).unwrap() != fs::read(&tree_img).unwrap(), "the time stamp made no difference");
    let o = run(&["verify", path_str(&img), path_str(&tarball)]);
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
    let o = run(&["inspect", "--json", path_str(&img)]);
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["trailer"]["kernel_release"], "6.99.0-test");
}

#[test]
fn every_entry_as_the_tarball_holds_it_nothing_stripped_again() {
    let t = tempdir();
    let set = t.path().join("set");
    unsquashfs(&fake_image(&t), &set);
    // What upstream's stripping can leave (from `//*x*/* y */`): stripping
    // again would remove it. Odd modes and a dangling symlink, too.
    write(&set.join("include/linux/left.h"), "/* y */\n");
    fs::set_permissions(set.join("include/linux/left.h"), fs::Permissions::from_mode(0o600)).unwrap();
    fs::set_permissions(set.join("include/weird.h"), fs::Permissions::from_mode(0o750)).unwrap();
    symlink("../nowhere.h", set.join("include/linux/dangling.h")).unwrap();
    let tarball = t.path().join("k.tar.xz");
    let st = Command::new("tar")
        .args(["--owner=0", "--group=0", "--numeric-owner", "-cJf"])
        .arg(&tarball)
        .arg("-C")
        .arg(&set)
        .arg(".")
        .status()
        .unwrap();
    assert!(st.success());
    let img = t.path().join("h.img");
    pack(&tarball, &img, &[]);
    let (ours, theirs) = (t.path().join("ours"), t.path().join("theirs"));
    unsquashfs(&img, &ours);
    untar(&tarball, &theirs);
    let (a, b) = (listing_as(&ours, "%P %y %m %l\n"), listing_as(&theirs, "%P %y %m %l\n"));
    assert_eq!(a, b);
    assert!(
        a.contains(&"include/linux/left.h f 600 ".to_string())
            && a.contains(&"include/weird.h d 750 ".to_string())
    );
    let diff =
        Command::new("diff").args(["-r", "--no-dereference"]).arg(&theirs).arg(&ours).output().unwrap();
    assert!(diff.status.success(), "{}", String::from_utf8_lossy(&diff.stdout));
    assert_eq!(fs::read(ours.join("include/linux/left.h")).unwrap(), b"/* y */\n");
}

#[test]
fn time_stamp_from_the_tarball_unless_given() {
    let t = tempdir();
    let (_, tarball) = fake_tarball(&t);
    let time = |extra: &[&str], env: Option<&str>| {
        let img = t.path().join("t.img");
        let mut c = Command::new(bin());
        c.args(["pack", "-q", path_str(&tarball), "-o", path_str(&img)]).args(extra);
        if let Some(e) = env {
            c.env("SOURCE_DATE_EPOCH", e);
        }
        assert!(c.status().unwrap().success());
        let o = run(&["inspect", "--json", path_str(&img)]);
        let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
        v["mod_time"].as_u64().unwrap()
    };
    assert_eq!(time(&[], None), 1_700_000_000);
    assert_eq!(time(&[], Some("12345")), 1_700_000_000);
    assert_eq!(time(&["--mtime", "42"], Some("12345")), 42);
}

#[test]
fn a_plain_tar_reads_as_its_xz_does() {
    let t = tempdir();
    let (_, tarball) = fake_tarball(&t);
    let plain = t.path().join("k.tar");
    let st = Command::new("sh")
        .arg("-c")
        .arg(format!("xz -dc {} > {}", path_str(&tarball), path_str(&plain)))
        .status()
        .unwrap();
    assert!(st.success());
    let (a, b) = (t.path().join("a.img"), t.path().join("b.img"));
    pack(&tarball, &a, &[]);
    pack(&plain, &b, &[]);
    assert!(fs::read(&a).unwrap() == fs::read(&b).unwrap());
}
