//! A kheaders tarball as input: upstream's `kernel/kheaders_data.tar.xz`, as
//! `/sys/kernel/kheaders.tar.xz` serves it.
//!
//! [`read`] gives the tree the archive extracts to (what `verify` compares);
//! [`for_pack`] adds what `pack` needs and refuses what the image could not
//! hold faithfully. The bytes are taken as they are, never stripped again:
//! upstream's stripping is not idempotent (`//*x*/* y */` strips to
//! `/* y */`, which strips to nothing), so stripping twice would change
//! headers.

use std::fs;
use std::io::{Cursor, Read};
use std::path::Path;

use anyhow::{anyhow, bail, ensure, Context, Result};

use crate::select::{parent_dirs, uts_release, UTSRELEASE_H};
use crate::tree::{normalize, HeaderTree, Node, DIR_MODE, MAX_FILE_SIZE};

const XZ_MAGIC: &[u8] = b"\xfd7zXZ\0";
const BLOCK: usize = 512;

/// What an archive extracts to, and what the tree alone does not say.
#[derive(Debug, Default)]
pub struct Tarball {
    pub tree: HeaderTree,
    /// Mode of the archive's own root entry (`./`), if it has one.
    pub root_mode: Option<u32>,
    /// Newest entry time (upstream: all the same with `KBUILD_BUILD_TIMESTAMP`).
    pub newest_mtime: u64,
    /// The first entry not owned by uid 0 and gid 0: (path, uid, gid).
    pub non_root_owner: Option<(String, u64, u64)>,
}

/// What `pack` takes from a tarball.
#[derive(Debug)]
pub struct PackInput {
    pub tree: HeaderTree,
    /// `SRCARCH`: the one `arch/*/include` the tarball holds.
    pub arch: String,
    /// `UTS_RELEASE` from `include/generated/utsrelease.h`, if there.
    pub release: Option<String>,
    /// The image's time stamp unless `--mtime` is given: the tarball's
    /// newest, so that the same tarball gives the same image anywhere.
    pub mtime: u32,
}

/// Whether `pack` should treat `input` as a tarball: a regular file (sysfs'
/// `kheaders.tar.xz` is one). Not a device: it would be read whole.
pub fn is_tarball(input: &Path) -> bool {
    fs::metadata(input).is_ok_and(|m| m.is_file())
}

/// A `.tar.xz` (or plain `.tar`) file.
pub fn read(path: &Path) -> Result<Tarball> {
    let ctx = || format!("reading {}", path.display());
    let mut f = fs::File::open(path).with_context(ctx)?;
    // The first block tells; no need to read a large file that is no tarball.
    let mut raw = Vec::new();
    (&mut f).take(BLOCK as u64).read_to_end(&mut raw).with_context(ctx)?;
    if looks_like_tarball(&raw) {
        f.read_to_end(&mut raw).with_context(ctx)?;
    }
    parse(&raw).with_context(|| format!("{}", path.display()))
}

fn looks_like_tarball(head: &[u8]) -> bool {
    head.starts_with(XZ_MAGIC) || head.get(257..262) == Some(b"ustar")
}

/// The archive in `raw`: xz-compressed or not.
pub fn parse(raw: &[u8]) -> Result<Tarball> {
    if !looks_like_tarball(raw) {
        bail!("not a kheaders tarball (neither .tar.xz nor .tar)")
    } else if raw.starts_with(XZ_MAGIC) {
        let mut tar = Vec::new();
        // Multi-stream, as xz(1) and `tar -J` read it; checks every stream's
        // check and refuses a cut-off stream or trailing garbage.
        liblzma::read::XzDecoder::new_multi_decoder(raw).read_to_end(&mut tar).context("bad xz data")?;
        parse_tar(&tar)
    } else {
        parse_tar(raw)
    }
}

fn parse_tar(data: &[u8]) -> Result<Tarball> {
    let bad = "bad tar archive";
    let mut archive = tar::Archive::new(Cursor::new(data));
    let mut out = Tarball::default();
    let mut end = 0u64;
    for entry in archive.entries().context(bad)? {
        let mut entry = entry.context(bad)?;
        let raw_path = entry.path_bytes().into_owned();
        let shown = String::from_utf8_lossy(&raw_path).into_owned();
        let rel = std::str::from_utf8(&raw_path)
            .map_err(|_| anyhow!("{shown:?}: file name is not valid UTF-8"))
            .and_then(|p| normalize(Path::new(p)).ok_or_else(|| anyhow!("unsafe path {p:?} in archive")))?;
        let header = entry.header();
        let mode = header.mode().context(bad)? & 0o7777;
        let (uid, gid) = (header.uid().context(bad)?, header.gid().context(bad)?);
        if (uid, gid) != (0, 0) && out.non_root_owner.is_none() {
            out.non_root_owner = Some((rel.clone(), uid, gid));
        }
        out.newest_mtime = out.newest_mtime.max(header.mtime().context(bad)?);
        let size = entry.size();
        end = entry.raw_file_position() + size.div_ceil(BLOCK as u64) * BLOCK as u64;
        let node = match header.entry_type() {
            tar::EntryType::Directory => Node::Dir { mode },
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                ensure!(
                    size <= MAX_FILE_SIZE,
                    "{rel}: {size} bytes; squashfs files as we write them hold at most {MAX_FILE_SIZE}"
                );
                // Not `size` ahead: a damaged header may claim any size.
                let mut data = Vec::new();
                entry.read_to_end(&mut data).context(bad)?;
                ensure!(data.len() as u64 == size, "{rel}: cut off ({} of {size} bytes)", data.len());
                Node::File { mode, data }
            }
            tar::EntryType::Symlink => {
                let target =
                    entry.link_name_bytes().ok_or_else(|| anyhow!("{rel}: symlink without target"))?;
                let target = std::str::from_utf8(&target)
                    .map_err(|_| anyhow!("{rel}: symlink target is not UTF-8"))?;
                Node::Symlink { target: target.to_string() }
            }
            other => bail!("{rel}: {}, not a file, directory or symlink", type_name(other)),
        };
        if rel.is_empty() {
            ensure!(matches!(node, Node::Dir { .. }), "the archive's root is a {}", node.kind());
            ensure!(out.root_mode.replace(mode).is_none(), "the root directory is in the archive twice");
        } else if let Some(old) = out.tree.entries.insert(rel.clone(), node) {
            // Extraction would keep the last: refuse rather than pick one.
            bail!("{rel} is in the archive twice (a {} first)", old.kind());
        }
    }
    // The tar reader stops quietly at the end of the data too, so a tar cut
    // between two entries would read as complete: require the end marker
    // (two zero blocks, as every tar writer ends).
    let end = usize::try_from(end).unwrap_or(usize::MAX);
    ensure!(
        data.get(end..end.saturating_add(2 * BLOCK)).is_some_and(|z| z.iter().all(|&b| b == 0)),
        "{bad}: cut off (no end-of-archive marker after the last entry)"
    );
    // Entries below a symlink or file would extract through it, or not at all.
    for dir in parent_dirs(out.tree.entries.keys().map(String::as_str)) {
        match out.tree.entries.get(&dir) {
            None => {
                // Extraction creates missing parents (0755 under umask 022).
                out.tree.entries.insert(dir, Node::Dir { mode: DIR_MODE });
            }
            Some(Node::Dir { .. }) => {}
            Some(n) => bail!("{dir} is a {} in the archive, and entries are below it", n.kind()),
        }
    }
    Ok(out)
}

fn type_name(t: tar::EntryType) -> String {
    match t {
        tar::EntryType::Link => "a hard link".into(),
        tar::EntryType::Char => "a character device".into(),
        tar::EntryType::Block => "a block device".into(),
        tar::EntryType::Fifo => "a FIFO".into(),
        tar::EntryType::GNUSparse => "a sparse file".into(),
        other => format!("an entry of tar type {:?}", other.as_byte() as char),
    }
}

/// Read `path` for `pack`: the tree, its arch and release; `arch` (from
/// `--arch`) must agree with the tarball.
pub fn for_pack(path: &Path, arch: Option<&str>) -> Result<PackInput> {
    let t = read(path)?;
    check_for_pack(t, arch).with_context(|| format!("{}", path.display()))
}

fn check_for_pack(t: Tarball, want_arch: Option<&str>) -> Result<PackInput> {
    // The image stores one owner (0) and a 0755 root: anything else would be lost.
    if let Some((path, uid, gid)) = &t.non_root_owner {
        bail!("{path} is owned by {uid}:{gid}; an image stores every entry as 0:0 (kheaders tarballs are made with --owner=0 --group=0)");
    }
    if let Some(mode) = t.root_mode.filter(|&m| m != DIR_MODE) {
        bail!("the root directory has mode {mode:04o}; an image's root is {DIR_MODE:04o}");
    }
    let tree = t.tree;
    ensure!(
        matches!(tree.entries.get("include"), Some(Node::Dir { .. })),
        "not a kheaders tarball: no include/ directory"
    );
    let arches: Vec<&str> = tree
        .entries
        .keys()
        .filter_map(|p| p.strip_prefix("arch/")?.split_once('/').map(|(a, _)| a))
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    // The include graph resolves <asm/...> against the one arch (layout.rs).
    let arch = match arches[..] {
        [a] if tree.entries.contains_key(&format!("arch/{a}/include")) => a.to_string(),
        [] => bail!("not a kheaders tarball: no arch/*/include directory"),
        [a] => bail!("not a kheaders tarball: arch/{a} has no include/ directory"),
        _ => bail!("holds headers of several arches ({}); a kheaders tarball has one", arches.join(", ")),
    };
    if let Some(want) = want_arch.filter(|&w| w != arch) {
        bail!("holds arch/{arch}/include, not arch/{want}: wrong --arch?");
    }
    let release = match tree.entries.get(UTSRELEASE_H) {
        Some(Node::File { data, .. }) => Some(
            std::str::from_utf8(data)
                .ok()
                .and_then(uts_release)
                .ok_or_else(|| anyhow!("{UTSRELEASE_H} has no UTS_RELEASE"))?,
        ),
        _ => None,
    };
    let mtime = u32::try_from(t.newest_mtime).map_err(|_| {
        anyhow!("entry time {} does not fit an image's 32-bit time stamp; pass --mtime", t.newest_mtime)
    })?;
    Ok(PackInput { tree, arch, release, mtime })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::strip::strip_comments;
    use crate::tree::FILE_MODE;

    /// One archive entry to craft: path, type, mode, data or link target.
    struct E<'a>(&'a str, tar::EntryType, u32, &'a [u8]);

    /// The names go in as they are (`./`, `..`), past the builder's checks.
    fn tar_of(entries: &[E<'_>], owner: u64) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (i, E(path, ty, mode, data)) in entries.iter().enumerate() {
            let mut h = tar::Header::new_gnu();
            h.as_old_mut().name[..path.len()].copy_from_slice(path.as_bytes());
            h.set_entry_type(*ty);
            h.set_mode(*mode);
            h.set_uid(owner);
            h.set_gid(0);
            h.set_mtime(1_700_000_000 + i as u64);
            let body: &[u8] = if *ty == F { data } else { &[] };
            if matches!(ty, L | tar::EntryType::Link) {
                h.set_link_name(std::str::from_utf8(data).unwrap()).unwrap();
            }
            h.set_size(body.len() as u64);
            h.set_cksum();
            b.append(&h, body).unwrap();
        }
        b.into_inner().unwrap()
    }

    fn xz(data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        liblzma::read::XzEncoder::new(data, 6).read_to_end(&mut out).unwrap();
        out
    }

    use tar::EntryType::{Directory as D, Regular as F, Symlink as L};

    /// A small kheaders-like archive, as upstream's tar lays one out.
    fn good() -> Vec<E<'static>> {
        vec![
            E("./", D, 0o755, b""),
            E("./arch/", D, 0o755, b""),
            E("./arch/x86/", D, 0o755, b""),
            E("./arch/x86/include/", D, 0o755, b""),
            E("./arch/x86/include/asm/", D, 0o755, b""),
            E("./arch/x86/include/asm/a.h", F, 0o644, b"#include <linux/b.h>\n"),
            E("./include/", D, 0o755, b""),
            E("./include/generated/", D, 0o755, b""),
            E("./include/generated/utsrelease.h", F, 0o644, b"#define UTS_RELEASE \"6.12.0-t\"\n"),
            E("./include/linux/", D, 0o755, b""),
            // Already stripped by upstream; still holds a comment.
            E("./include/linux/b.h", F, 0o644, b"/* y */\n"),
            E("./include/linux/l.h", L, 0o777, b"b.h"),
        ]
    }

    #[test]
    fn reads_every_entry_as_it_is() {
        let t = parse(&xz(&tar_of(&good(), 0))).unwrap();
        assert_eq!(t.root_mode, Some(0o755));
        assert_eq!(t.newest_mtime, 1_700_000_011);
        assert_eq!(t.tree.entries.len(), 11);
        assert_eq!(
            t.tree.entries["include/linux/b.h"],
            Node::File { mode: FILE_MODE, data: b"/* y */\n".to_vec() }
        );
        assert_eq!(t.tree.entries["include/linux/l.h"], Node::Symlink { target: "b.h".into() });
        // Plain tar reads the same.
        assert_eq!(parse(&tar_of(&good(), 0)).unwrap().tree, t.tree);
        let p = check_for_pack(t, Some("x86")).unwrap();
        assert_eq!(
            (p.arch.as_str(), p.release.as_deref(), p.mtime),
            ("x86", Some("6.12.0-t"), 1_700_000_011)
        );
    }

    #[test]
    fn stripping_again_would_change_headers() {
        // Why tarball bytes are taken as they are (perl agrees: strip.rs tests).
        let once = strip_comments(b"//*x*/* y */\n");
        assert_eq!(once, b"/* y */\n");
        assert_eq!(strip_comments(&once), b"\n");
    }

    #[test]
    fn missing_parents_are_made_as_extraction_makes_them() {
        let t = parse(&tar_of(
            &[E("include/linux/b.h", F, 0o600, b"x"), E("arch/x86/include/a.h", F, 0o644, b"")],
            0,
        ))
        .unwrap();
        assert_eq!(t.tree.entries["include/linux"], Node::Dir { mode: DIR_MODE });
        assert_eq!(t.tree.entries["include/linux/b.h"], Node::File { mode: 0o600, data: b"x".to_vec() });
        assert_eq!(t.root_mode, None);
        assert_eq!(check_for_pack(t, None).unwrap().release, None);
    }

    fn err(raw: &[u8]) -> String {
        format!("{:#}", parse(raw).unwrap_err())
    }

    fn pack_err(entries: &[E<'_>], owner: u64, arch: Option<&str>) -> String {
        format!("{:#}", check_for_pack(parse(&tar_of(entries, owner)).unwrap(), arch).unwrap_err())
    }

    #[test]
    fn odd_entries_are_refused() {
        for (ty, what) in [
            (tar::EntryType::Link, "hard link"),
            (tar::EntryType::Char, "character device"),
            (tar::EntryType::Block, "block device"),
            (tar::EntryType::Fifo, "FIFO"),
        ] {
            let mut es = good();
            es.push(E("./include/linux/odd.h", ty, 0o644, b"include/linux/b.h"));
            let e = err(&tar_of(&es, 0));
            assert!(e.contains("include/linux/odd.h") && e.contains(what), "{e}");
        }
        let mut es = good();
        es.push(E("./include/linux/b.h", F, 0o644, b"again"));
        assert!(err(&tar_of(&es, 0)).contains("include/linux/b.h is in the archive twice"));
        let mut es = good();
        es.push(E("./include/linux/l.h/c.h", F, 0o644, b""));
        assert!(err(&tar_of(&es, 0)).contains("include/linux/l.h is a symlink"));
        assert!(err(&tar_of(&[E("../x.h", F, 0o644, b"")], 0)).contains("unsafe path"));
        assert!(err(&tar_of(&[E("./", F, 0o644, b"")], 0)).contains("root is a file"));
        assert!(err(b"#include <linux/kconfig.h>\n")
            .contains("not a kheaders tarball (neither .tar.xz nor .tar)"));
    }

    #[test]
    fn what_an_image_cannot_hold_is_refused() {
        assert!(pack_err(&good(), 1000, None).contains("owned by 1000:0"));
        let mut es = good();
        es[0].2 = 0o700;
        assert!(pack_err(&es, 0, None).contains("root directory has mode 0700"));
        assert!(pack_err(&good(), 0, Some("arm64")).contains("not arch/arm64: wrong --arch?"));
        let mut es = good();
        es.push(E("./arch/arm64/include/b.h", F, 0o644, b""));
        assert!(pack_err(&es, 0, None).contains("several arches (arm64, x86)"));
        assert!(pack_err(&good()[6..], 0, None).contains("no arch/*/include"));
        assert!(pack_err(&good()[..6], 0, None).contains("no include/"));
        let mut es = good();
        es[8].3 = b"#define UTS_VERSION 1\n";
        assert!(pack_err(&es, 0, None).contains("utsrelease.h has no UTS_RELEASE"));
    }

    #[test]
    fn damage_and_truncation_are_errors() {
        let tar = tar_of(&good(), 0);
        let packed = xz(&tar);
        // Every cut of the xz stream, and a flipped byte anywhere in it.
        for len in 0..packed.len() {
            assert!(parse(&packed[..len]).is_err(), "xz cut at {len} of {} read", packed.len());
        }
        for i in (0..packed.len()).step_by(7) {
            let mut bad = packed.clone();
            bad[i] ^= 0x55;
            assert!(parse(&bad).is_err(), "xz with byte {i} flipped read");
        }
        let mut trailing = packed.clone();
        trailing.extend_from_slice(b"garbage");
        assert!(err(&trailing).contains("bad xz data"));
        // A plain tar cut at a block boundary, even between two entries.
        for len in (BLOCK..tar.len()).step_by(BLOCK) {
            assert!(parse(&tar[..len]).is_err(), "tar cut at {len} of {} read", tar.len());
        }
        let e = err(&xz(&tar[..tar.len() - 2 * BLOCK]));
        assert!(e.contains("no end-of-archive marker"), "{e}");
        // A file's data cut short inside an intact xz stream.
        // (the end: b.h header, its data block, l.h header, end marker)
        let e = err(&xz(&tar[..tar.len() - 4 * BLOCK + 4]));
        assert!(e.contains("include/linux/b.h: cut off (") && e.contains("(4 of 8 bytes)"), "{e}");
    }
}
