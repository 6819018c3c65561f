//! The header tree as data: path -> directory, file bytes or symlink target.
//!
//! Every source the tool deals with becomes one of these: a kernel tree
//! (selected and stripped, what `pack` writes), an extracted directory, an
//! upstream `kheaders` tar.xz, or a squashfs image (what `verify` compares).

use std::collections::BTreeMap;
use std::fs;
use std::io::{Cursor, Read};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Component, Path};

use anyhow::{anyhow, bail, ensure, Context, Result};

use crate::parallel::parallel_map;
use crate::progress::Progress;
use crate::select::{parent_dirs, select_headers, KernelTree, Selected};
use crate::strip::strip_comments;

/// Modes upstream's `tar --mode=u=rw,go=r,a+X` gives: the `X` is evaluated
/// after `u=rw,go=r` cleared every execute bit, so only directories get it.
pub const DIR_MODE: u32 = 0o755;
pub const FILE_MODE: u32 = 0o644;
/// Symlink permissions mean nothing on Linux; 0777 is what they read back as.
pub const SYMLINK_MODE: u32 = 0o777;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Node {
    Dir { mode: u32 },
    File { mode: u32, data: Vec<u8> },
    Symlink { target: String },
}

impl Node {
    pub fn kind(&self) -> &'static str {
        match self {
            Node::Dir { .. } => "directory",
            Node::File { .. } => "file",
            Node::Symlink { .. } => "symlink",
        }
    }
}

/// Paths are relative (`include/linux/sched.h`), `/`-separated, sorted; the
/// root directory itself is implied.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HeaderTree {
    pub entries: BTreeMap<String, Node>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TreeStats {
    pub files: u64,
    /// Including the root.
    pub dirs: u64,
    pub symlinks: u64,
    /// Sum of file sizes.
    pub file_bytes: u64,
}

impl HeaderTree {
    /// The headers of a kernel tree, selected and stripped as upstream does.
    ///
    /// The tree must hold still meanwhile: each file's metadata is compared
    /// before and after it is read, and once everything is read the
    /// selection is made again and every entry compared with what was read,
    /// so that the image is one consistent state of the tree (not half of a
    /// `make headers_install` or a `git checkout`).
    pub fn from_kernel(tree: &KernelTree, jobs: usize, progress: &Progress) -> Result<HeaderTree> {
        let selected = select_headers(tree)?;
        let items: Vec<(&String, &Selected)> = selected.iter().collect();
        let total = items.len() as u64;
        let nodes = parallel_map(
            &items,
            jobs,
            |&(_, sel)| -> Result<(Node, Option<Stamp>)> {
                Ok(match sel {
                    Selected::File(src) => {
                        let (data, stamp) = read_file(src)?;
                        (Node::File { mode: FILE_MODE, data: strip_comments(&data) }, Some(stamp))
                    }
                    Selected::Symlink(src) => {
                        let before = stamp_of(src)?;
                        let target = fs::read_link(src)
                            .with_context(|| format!("reading symlink {}", src.display()))?;
                        let target = target
                            .to_str()
                            .ok_or_else(|| anyhow!("{}: symlink target is not UTF-8", src.display()))?
                            .to_string();
                        ensure!(stamp_of(src)? == before, "{}: {CHANGED}", src.display());
                        (Node::Symlink { target }, Some(before))
                    }
                    Selected::Dir => (Node::Dir { mode: DIR_MODE }, None),
                })
            },
            |done| progress.update("reading headers", done, total),
        );
        let mut entries = BTreeMap::new();
        let mut stamps = Vec::with_capacity(items.len());
        for ((path, sel), node) in items.into_iter().zip(nodes) {
            let (node, stamp) = node?;
            entries.insert(path.clone(), node);
            stamps.push((sel, stamp));
        }
        // The same selection again, and every file and symlink as it was read.
        let again = select_headers(tree)?;
        if let Some(path) = changed_path(&selected, &again) {
            let origin = match selected.get(path).or(again.get(path)) {
                Some(Selected::File(p) | Selected::Symlink(p)) => p.display().to_string(),
                _ => path.to_string(),
            };
            bail!("{origin}: {CHANGED}");
        }
        for (sel, stamp) in stamps {
            if let (Selected::File(src) | Selected::Symlink(src), Some(stamp)) = (sel, stamp) {
                ensure!(
                    fs::symlink_metadata(src).ok().map(|m| Stamp::of(&m)) == Some(stamp),
                    "{}: {CHANGED}",
                    src.display()
                );
            }
        }
        let mut tree = HeaderTree { entries };
        tree.add_parent_dirs();
        Ok(tree)
    }

    fn add_parent_dirs(&mut self) {
        for dir in parent_dirs(self.entries.keys().map(String::as_str)) {
            self.entries.entry(dir).or_insert(Node::Dir { mode: DIR_MODE });
        }
    }

    /// Everything below `root` on disk (symlinks not followed).
    pub fn from_dir(root: &Path) -> Result<HeaderTree> {
        let mut tree = HeaderTree::default();
        if !fs::metadata(root).with_context(|| format!("{}", root.display()))?.is_dir() {
            bail!("{} is not a directory", root.display());
        }
        fn walk(dir: &Path, rel: &str, tree: &mut HeaderTree) -> Result<()> {
            for entry in fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
                let entry = entry.with_context(|| format!("reading {}", dir.display()))?;
                let path = entry.path();
                let name = entry.file_name();
                let name =
                    name.to_str().ok_or_else(|| anyhow!("{}: file name is not UTF-8", path.display()))?;
                let rel = if rel.is_empty() { name.to_string() } else { format!("{rel}/{name}") };
                let meta = fs::symlink_metadata(&path).with_context(|| format!("stat {}", path.display()))?;
                let mode = meta.permissions().mode() & 0o7777;
                let node = if meta.is_dir() {
                    walk(&path, &rel, tree)?;
                    Node::Dir { mode }
                } else if meta.is_file() {
                    let data = fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
                    Node::File { mode, data }
                } else if meta.is_symlink() {
                    let target = fs::read_link(&path)?;
                    let target = target
                        .to_str()
                        .ok_or_else(|| anyhow!("{}: symlink target is not UTF-8", path.display()))?;
                    Node::Symlink { target: target.to_string() }
                } else {
                    bail!("{}: unsupported file type", path.display());
                };
                tree.entries.insert(rel, node);
            }
            Ok(())
        }
        walk(root, "", &mut tree)?;
        Ok(tree)
    }

    /// What a `.tar.xz` (or plain `.tar`) archive such as upstream's
    /// `kheaders_data.tar.xz` extracts to.
    pub fn from_tarball(path: &Path) -> Result<HeaderTree> {
        Ok(crate::tarball::read(path)?.tree)
    }

    /// The content of an image: squashfs read with backhand, EROFS with
    /// erofs-rs (independent readers, not our writers' code).
    pub fn from_image_bytes(image: &[u8]) -> Result<HeaderTree> {
        if crate::format::is_erofs(image) {
            return Self::from_erofs_bytes(image);
        }
        let reader = catch_panics(|| backhand::FilesystemReader::from_reader(Cursor::new(image)))
            .and_then(|r| r.map_err(|e| anyhow!("{e}")))
            .context("not a readable squashfs image")?;
        let mut tree = HeaderTree::default();
        for node in reader.files() {
            let Some(rel) = normalize(&node.fullpath) else {
                bail!("unsafe path {:?} in image", node.fullpath);
            };
            let mode = u32::from(node.header.permissions) & 0o7777;
            let entry = match &node.inner {
                backhand::InnerNode::Dir(_) => Node::Dir { mode },
                backhand::InnerNode::File(f) => {
                    let mut data = Vec::with_capacity(f.file_len());
                    catch_panics(|| reader.file(f).reader().read_to_end(&mut data))
                        .and_then(|r| r.map_err(anyhow::Error::from))
                        .with_context(|| format!("reading {rel} from the image"))?;
                    Node::File { mode, data }
                }
                backhand::InnerNode::Symlink(s) => {
                    let target = s.link.to_str().ok_or_else(|| anyhow!("{rel}: non-UTF-8 symlink"))?;
                    Node::Symlink { target: target.to_string() }
                }
                _ => bail!("{rel}: device, FIFO or socket in image"),
            };
            if !rel.is_empty() {
                tree.entries.insert(rel, entry);
            }
        }
        Ok(tree)
    }

    fn from_erofs_bytes(image: &[u8]) -> Result<HeaderTree> {
        use erofs_rs::backend::SliceImage;
        let e = |e: erofs_rs::Error| anyhow!("{e}");
        let fs = catch_panics(|| erofs_rs::EroFS::new(SliceImage::new(image)))?
            .map_err(e)
            .context("not a readable EROFS image")?;
        let mut tree = HeaderTree::default();
        let walk = fs.walk_dir("/").map_err(e).context("reading the root directory")?;
        for entry in walk {
            let entry = catch_panics(|| entry)?.map_err(e).context("reading a directory")?;
            let path = entry.dir_entry.path();
            let name = entry.dir_entry.file_name();
            if name == b"." || name == b".." {
                continue;
            }
            let Some(rel) = path.to_str().and_then(|p| normalize(Path::new(p))) else {
                bail!("unsafe or non-UTF-8 path {:?} in image", path);
            };
            let inode = entry.inode;
            let mode = inode.permissions().mode() & 0o7777;
            let node = if inode.is_dir() {
                Node::Dir { mode }
            } else if inode.is_file() {
                let file = fs.open_inode_file(inode).map_err(e)?;
                let mut data = vec![0u8; file.size() as usize];
                let mut done = 0;
                while done < data.len() {
                    let n = catch_panics(|| file.read_at(&mut data[done..], done as u64))?
                        .map_err(anyhow::Error::from)
                        .with_context(|| format!("reading {rel} from the image"))?;
                    ensure!(n > 0, "{rel}: the image ends before its {} bytes", data.len());
                    done += n;
                }
                Node::File { mode, data }
            } else if inode.is_symlink() {
                let target = fs.read_link_inode(inode).map_err(e)?;
                let target = target.to_str().ok_or_else(|| anyhow!("{rel}: non-UTF-8 symlink"))?;
                Node::Symlink { target: target.to_string() }
            } else {
                bail!("{rel}: device, FIFO or socket in image");
            };
            ensure!(tree.entries.insert(rel.clone(), node).is_none(), "{rel} twice in the image");
        }
        Ok(tree)
    }

    pub fn stats(&self) -> TreeStats {
        let mut s = TreeStats { dirs: 1, ..TreeStats::default() };
        for node in self.entries.values() {
            match node {
                Node::Dir { .. } => s.dirs += 1,
                Node::File { data, .. } => {
                    s.files += 1;
                    s.file_bytes += data.len() as u64;
                }
                Node::Symlink { .. } => s.symlinks += 1,
            }
        }
        s
    }
}

/// Largest file `pack` takes: a basic squashfs file inode (the only kind
/// we write) records the size in 32 bits.
pub const MAX_FILE_SIZE: u64 = u32::MAX as u64;

const CHANGED: &str = "changed while the tree was being packed; pack again once it is stable";

/// What an entry on disk was when it was read: any write, replacement,
/// truncation or rename in between changes one of these.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Stamp {
    dev: u64,
    ino: u64,
    mode: u32,
    size: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

impl Stamp {
    fn of(m: &fs::Metadata) -> Stamp {
        Stamp {
            dev: m.dev(),
            ino: m.ino(),
            mode: m.mode(),
            size: m.size(),
            mtime: (m.mtime(), m.mtime_nsec()),
            ctime: (m.ctime(), m.ctime_nsec()),
        }
    }
}

fn stamp_of(path: &Path) -> Result<Stamp> {
    let m = fs::symlink_metadata(path).with_context(|| format!("stat {}", path.display()))?;
    Ok(Stamp::of(&m))
}

/// A file's bytes, refused if squashfs cannot hold them or if the file
/// changed while it was read.
fn read_file(src: &Path) -> Result<(Vec<u8>, Stamp)> {
    let ctx = || format!("reading {}", src.display());
    let mut f = fs::File::open(src).with_context(ctx)?;
    let before = Stamp::of(&f.metadata().with_context(ctx)?);
    ensure!(
        before.size <= MAX_FILE_SIZE,
        "{}: {} bytes; squashfs files as we write them hold at most {MAX_FILE_SIZE}",
        src.display(),
        before.size
    );
    let mut data = Vec::with_capacity(before.size as usize);
    // One byte more than the size, so that a file that grew shows.
    (&mut f).take(before.size + 1).read_to_end(&mut data).with_context(ctx)?;
    let after = Stamp::of(&f.metadata().with_context(ctx)?);
    ensure!(before == after && data.len() as u64 == before.size, "{}: {CHANGED}", src.display());
    Ok((data, before))
}

/// The first path whose selection differs (added, removed, other origin or type).
fn changed_path<'a>(a: &'a BTreeMap<String, Selected>, b: &'a BTreeMap<String, Selected>) -> Option<&'a str> {
    let differs = |x: &'a BTreeMap<String, Selected>, y: &BTreeMap<String, Selected>| {
        x.iter().find(|(p, s)| y.get(*p) != Some(s)).map(|(p, _)| p.as_str())
    };
    differs(a, b).or_else(|| differs(b, a))
}

/// `./include/x.h`, `/include/x.h` -> `include/x.h`; `.`, `/` -> ``. Refuses `..`.
pub(crate) fn normalize(p: &Path) -> Option<String> {
    let mut parts = Vec::new();
    for c in p.components() {
        match c {
            Component::RootDir | Component::CurDir => {}
            Component::Normal(s) => parts.push(s.to_str()?),
            Component::ParentDir | Component::Prefix(_) => return None,
        }
    }
    Some(parts.join("/"))
}

thread_local! {
    /// Inside [`catch_panics`] on this thread.
    static CATCHING: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// backhand is a general parser; a hostile image must give an error here,
/// never take the process down.
pub(crate) fn catch_panics<T>(f: impl FnOnce() -> T) -> Result<T> {
    let outer = CATCHING.with(|c| c.replace(true));
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
    CATCHING.with(|c| c.set(outer));
    r.map_err(|_| anyhow!("corrupted image (the squashfs reader gave up)"))
}

/// Keep the panic hook quiet for panics [`catch_panics`] turns into errors
/// (the CLI then prints one error line, not a backtrace notice too); every
/// other panic goes to the hook installed before.
pub fn quiet_caught_panics() {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if !CATCHING.with(|c| c.get()) {
            previous(info);
        }
    }));
}
