//! Which files go into the image: the set upstream `kernel/gen_kheaders.sh`
//! archives.
//!
//! Upstream runs `find include/ arch/$SRCARCH/include/ -name "*.h"` in the
//! source tree and then in the build tree (for `O=` builds), copying with
//! `cpio -pd` so that the build tree wins. `find` does not follow symlinks and
//! `-name` matches every type, so a symlink named `*.h` is kept as a symlink.
//! Directories appear only as parents of selected entries.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

/// A kernel tree to take headers from: the source tree and, for `O=`
/// builds, a separate build tree.
#[derive(Debug, Clone)]
pub struct KernelTree {
    pub source: PathBuf,
    /// `None` when the build happened in the source tree (or never happened).
    pub build: Option<PathBuf>,
    /// `SRCARCH`, the directory name under `arch/`.
    pub arch: String,
}

impl KernelTree {
    /// Resolve a tree from what the user gave.
    ///
    /// `tree` may be a source tree or a build tree: an `O=` build directory
    /// carries a `source` symlink to its source tree, which is followed unless
    /// `source` is given explicitly. The arch defaults to the one the build
    /// tree was built for, then to the host's.
    pub fn resolve(tree: &Path, source: Option<&Path>, arch: Option<&str>) -> Result<KernelTree> {
        let tree = canonical(tree)?;
        let (source, build) = match source {
            Some(src) => {
                let src = canonical(src)?;
                let build = (src != tree).then_some(tree);
                (src, build)
            }
            None => match fs::read_link(tree.join("source")) {
                // `make O=dir` leaves dir/source -> srctree.
                Ok(_) => (canonical(&tree.join("source"))?, Some(tree)),
                Err(_) => (tree, None),
            },
        };
        check_source_tree(&source)?;
        if let Some(b) = &build {
            if !b.join("include").is_dir() && !b.join("Makefile").is_file() {
                bail!("{} is not a kernel build tree (no include/ or Makefile)", b.display());
            }
        }
        let arch = match arch {
            Some(a) => a.to_string(),
            None => built_arch(build.as_deref().unwrap_or(&source))
                .or_else(host_arch)
                .context("cannot tell the kernel arch; pass --arch")?,
        };
        if arch.is_empty() || arch.contains('/') || arch.starts_with('.') {
            bail!("invalid arch {arch:?}");
        }
        if !source.join("arch").join(&arch).join("include").is_dir() {
            bail!("{} has no arch/{arch}/include: wrong --arch?", source.display());
        }
        Ok(KernelTree { source, build, arch })
    }

    /// The tree generated headers live in.
    pub fn build_dir(&self) -> &Path {
        self.build.as_deref().unwrap_or(&self.source)
    }

    /// Whether the tree has been configured (else the image lacks
    /// `include/generated/*`, as upstream's would).
    pub fn is_configured(&self) -> bool {
        self.build_dir().join("include/generated/autoconf.h").is_file()
    }

    /// `UTS_RELEASE` of the build, if it was built far enough to have one.
    pub fn kernel_release(&self) -> Option<String> {
        uts_release(&fs::read_to_string(self.build_dir().join(UTSRELEASE_H)).ok()?)
    }

    /// (tree, header directory) pairs in upstream's order: source first,
    /// then build, so that the build tree wins.
    fn roots(&self) -> Vec<(PathBuf, PathBuf)> {
        let dirs = ["include".to_string(), format!("arch/{}/include", self.arch)];
        let mut trees = vec![self.source.clone()];
        trees.extend(self.build.clone());
        trees.iter().flat_map(|t| dirs.iter().map(move |d| (t.clone(), t.join(d)))).collect()
    }
}

fn canonical(p: &Path) -> Result<PathBuf> {
    fs::canonicalize(p).with_context(|| format!("kernel tree {}", p.display()))
}

fn check_source_tree(src: &Path) -> Result<()> {
    if !src.is_dir() {
        bail!("{} is not a directory", src.display());
    }
    for marker in ["Kbuild", "include/linux/kconfig.h", "arch"] {
        if !src.join(marker).exists() {
            bail!("{} is not a kernel source tree (no {marker})", src.display());
        }
    }
    Ok(())
}

/// After a build only the built arch has `arch/<arch>/include/generated`.
fn built_arch(tree: &Path) -> Option<String> {
    let mut found = fs::read_dir(tree.join("arch"))
        .ok()?
        .filter_map(|e| e.ok())
        .filter(|e| e.path().join("include/generated").is_dir())
        .filter_map(|e| e.file_name().to_str().map(str::to_string));
    let arch = found.next()?;
    found.next().is_none().then_some(arch)
}

/// `SRCARCH` for the machine we run on, as the kernel's top Makefile maps it.
fn host_arch() -> Option<String> {
    let arch = match std::env::consts::ARCH {
        "x86" | "x86_64" => "x86",
        "aarch64" => "arm64",
        "arm" => "arm",
        "riscv32" | "riscv64" => "riscv",
        "powerpc" | "powerpc64" => "powerpc",
        "s390x" => "s390",
        "loongarch64" => "loongarch",
        "mips" | "mips64" => "mips",
        "sparc64" => "sparc",
        _ => return None,
    };
    Some(arch.to_string())
}

/// Where a built tree (and its kheaders tarball) says which release it is.
pub const UTSRELEASE_H: &str = "include/generated/utsrelease.h";

/// The `UTS_RELEASE` string of a `utsrelease.h`.
pub fn uts_release(text: &str) -> Option<String> {
    let rest = text.split("UTS_RELEASE").nth(1)?;
    let start = rest.find('"')? + 1;
    let len = rest[start..].find('"')?;
    Some(rest[start..start + len].to_string())
}

/// Never selected (docs/design.md, "Selection"). Upstream's tarball has it or
/// not depending on whether the vmlinux link had written it when
/// `gen_kheaders.sh` ran: parallel make decides.
pub const UTSVERSION_H: &str = "include/generated/utsversion.h";

/// One selected entry: where it is on disk and what it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selected {
    File(PathBuf),
    Symlink(PathBuf),
    /// A directory itself named `*.h` (upstream's `find` matches it).
    Dir,
}

/// Select the header set of `tree`: image path (`include/linux/sched.h`) to
/// origin, sorted by path. Parent directories are implied, not listed.
pub fn select_headers(tree: &KernelTree) -> Result<BTreeMap<String, Selected>> {
    let mut selected = BTreeMap::new();
    for (base, root) in tree.roots() {
        // Followed if a symlink: upstream runs `find include/` (trailing slash).
        match fs::metadata(&root) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => bail!("{} is not a directory", root.display()),
            // A build tree need not have arch/*/include; upstream's find
            // would complain and go on.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e).with_context(|| format!("reading {}", root.display())),
        }
        walk(&root, &base, &mut selected)?;
    }
    // Generated at vmlinux link time, after upstream archived the headers;
    // gen_kheaders.sh calls it "unneeded for kheaders". Leaving it out makes
    // the set independent of how far the build had got.
    selected.remove(UTSVERSION_H);
    if selected.is_empty() {
        bail!("no *.h files under {}/include", tree.source.display());
    }
    Ok(selected)
}

fn walk(dir: &Path, base: &Path, out: &mut BTreeMap<String, Selected>) -> Result<()> {
    let entries = fs::read_dir(dir).with_context(|| format!("reading directory {}", dir.display()))?;
    for entry in entries {
        let entry = entry.with_context(|| format!("reading directory {}", dir.display()))?;
        let path = entry.path();
        let ty = entry.file_type().with_context(|| format!("stat {}", path.display()))?;
        let name = entry.file_name();
        // upstream's tar: --exclude=".__afs*" --exclude=".nfs*" (anywhere).
        if name.as_bytes().starts_with(b".nfs") || name.as_bytes().starts_with(b".__afs") {
            continue;
        }
        let is_header = name.as_bytes().ends_with(b".h");
        if is_header {
            let rel = image_path(&path, base)?;
            let sel = if ty.is_file() {
                Selected::File(path.clone())
            } else if ty.is_symlink() {
                Selected::Symlink(path.clone())
            } else if ty.is_dir() {
                Selected::Dir
            } else {
                bail!("{} is a {}, not a file or symlink", path.display(), kind_name(&ty));
            };
            out.insert(rel, sel);
        }
        if ty.is_dir() {
            walk(&path, base, out)?;
        }
    }
    Ok(())
}

fn kind_name(ty: &fs::FileType) -> &'static str {
    if ty.is_fifo() {
        "FIFO"
    } else if ty.is_char_device() {
        "character device"
    } else if ty.is_block_device() {
        "block device"
    } else if ty.is_socket() {
        "socket"
    } else {
        "special file"
    }
}

/// Path inside the image, relative to the tree; must be UTF-8 because the
/// consumers (tar, C include paths, our tooling) treat it as text.
fn image_path(path: &Path, base: &Path) -> Result<String> {
    let rel = path.strip_prefix(base).expect("walked below base");
    match rel.to_str() {
        Some(s) => Ok(s.to_string()),
        None => bail!("{}: file name is not valid UTF-8", path.display()),
    }
}

/// Every ancestor directory of the selected paths (not the root).
pub fn parent_dirs<'a>(paths: impl Iterator<Item = &'a str>) -> Vec<String> {
    let mut dirs = std::collections::BTreeSet::new();
    for p in paths {
        let mut cur = Path::new(p);
        while let Some(parent) = cur.parent() {
            if parent.as_os_str().is_empty() {
                break;
            }
            if !dirs.insert(parent.to_str().expect("utf-8 checked").to_string()) {
                break;
            }
            cur = parent;
        }
    }
    dirs.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parents_of_selected_paths() {
        let dirs = parent_dirs(
            ["include/linux/a.h", "include/linux/b.h", "arch/x86/include/asm/c.h", "top.h"].into_iter(),
        );
        assert_eq!(
            dirs,
            ["arch", "arch/x86", "arch/x86/include", "arch/x86/include/asm", "include", "include/linux"]
        );
    }

    #[test]
    fn arch_of_a_built_tree() {
        let t = tempfile::tempdir().unwrap();
        fs::create_dir_all(t.path().join("arch/arm64/include/generated")).unwrap();
        fs::create_dir_all(t.path().join("arch/x86/include/asm")).unwrap();
        assert_eq!(built_arch(t.path()).as_deref(), Some("arm64"));
        // Two built arches: ambiguous, so no answer.
        fs::create_dir_all(t.path().join("arch/x86/include/generated")).unwrap();
        assert_eq!(built_arch(t.path()), None);
        assert_eq!(built_arch(&t.path().join("nonexistent")), None);
    }

    #[test]
    fn host_arch_is_a_kernel_srcarch() {
        if cfg!(target_arch = "x86_64") {
            assert_eq!(host_arch().as_deref(), Some("x86"));
        }
        assert!(host_arch().is_some_and(|a| !a.contains('/')));
    }

    #[test]
    fn release_from_utsrelease_h() {
        let t = tempfile::tempdir().unwrap();
        fs::create_dir_all(t.path().join("include/generated")).unwrap();
        let kt = KernelTree { source: t.path().to_path_buf(), build: None, arch: "x86".into() };
        assert_eq!(kt.kernel_release(), None);
        fs::write(t.path().join("include/generated/utsrelease.h"), "#define UTS_RELEASE \"6.12.0-rc1+\"\n")
            .unwrap();
        assert_eq!(kt.kernel_release().as_deref(), Some("6.12.0-rc1+"));
        assert!(!kt.is_configured());
    }
}
