//! Where each header's data goes in the image, derived from the tree's own
//! include graph.
//!
//! The kernel's squashfs decompresses a whole fragment block to read one
//! small file from it and keeps only 3 such blocks
//! (`CONFIG_SQUASHFS_FRAGMENT_CACHE_SIZE`). A compile opens ~600 headers in
//! include order, which jumps between directories, so with the usual
//! directory-order fragments it decompresses the same blocks again and again
//! (2.1-2.6x the whole image for one compile). So:
//!
//! - **Hot headers** — included, directly or through others, by at least
//!   [`HOT_MIN_INCLUDERS`] other headers, plus what the kernel's forced
//!   includes pull in — get blocks of their own. Reading one decompresses
//!   exactly its bytes, in any order, and never touches the fragment cache.
//!   They are the core every compile shares (~1,200 of ~6,700 headers, ~98%
//!   of what a compile opens), and they are stored in include order (a
//!   depth-first walk of the include graph), so that headers included
//!   together are stored together.
//! - **The other headers** share fragment blocks in directory order, as
//!   before: a full read in directory order stays sequential (each fragment
//!   block decompressed once), and they compress as well as they did.
//!
//! Blocks of its own cost a small file compression (~0.35 MB on the 6.12
//! headers, +7% image). docs/design.md has the measurements behind the
//! choice and the alternatives that lost.

use std::collections::{BTreeMap, HashMap};

use crate::tree::{HeaderTree, Node};

/// A header at least this many other headers include (transitively) is hot.
pub const HOT_MIN_INCLUDERS: usize = 20;

/// What the kernel's build forces into every compile (`-include` in the top
/// Makefile and scripts/Makefile.lib): they and their includes are read by
/// every kernel-style compile even though no header includes them.
pub const FORCED_INCLUDES: [&str; 3] =
    ["include/linux/compiler-version.h", "include/linux/kconfig.h", "include/linux/compiler_types.h"];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum LayoutKind {
    /// Hot headers in include order with blocks of their own, the rest in
    /// directory-order fragments (the default).
    #[default]
    Includes,
    /// Every file in directory order, small files in fragment blocks (what
    /// mksquashfs does).
    Directory,
}

/// Where one regular file's data goes, in data order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placement<'a> {
    pub path: &'a str,
    /// Blocks of its own instead of a share of a fragment block: reading it
    /// then decompresses exactly its bytes and bypasses the kernel's small
    /// fragment cache.
    pub own_blocks: bool,
    /// Close the current fragment block before this file, even if it has room.
    pub new_fragment: bool,
}

/// Every regular file of `tree`, in path order, in fragments: the layout
/// general tools use (and ours for trees without an include graph).
pub fn directory_plan(tree: &HeaderTree) -> Vec<Placement<'_>> {
    let mut by_dir: BTreeMap<Vec<&[u8]>, &str> = BTreeMap::new();
    for (path, node) in &tree.entries {
        if let Node::File { .. } = node {
            by_dir.insert(path.split('/').map(str::as_bytes).collect(), path);
        }
    }
    by_dir.into_values().map(|path| Placement { path, own_blocks: false, new_fragment: false }).collect()
}

/// The data plan for `tree`: every regular file once, in data order.
pub fn plan(tree: &HeaderTree, kind: LayoutKind) -> Vec<Placement<'_>> {
    let in_dir_order = directory_plan(tree);
    if kind == LayoutKind::Directory {
        return in_dir_order;
    }
    let graph = IncludeGraph::new(tree);
    let hot = graph.hot();
    let mut out: Vec<Placement<'_>> = graph
        .include_order()
        .into_iter()
        .filter(|&f| hot[f])
        .map(|f| Placement { path: graph.paths[f], own_blocks: true, new_fragment: false })
        .collect();
    out.extend(in_dir_order.into_iter().filter(|p| !hot[graph.index[p.path]]));
    out
}

/// `#include` edges between the regular files of a header tree, resolved as
/// the kernel's include path resolves them.
pub struct IncludeGraph<'t> {
    /// Regular files, in directory (walk) order.
    pub paths: Vec<&'t str>,
    pub index: HashMap<&'t str, usize>,
    /// Included files of each file, in the order of the `#include` lines.
    pub edges: Vec<Vec<usize>>,
}

impl<'t> IncludeGraph<'t> {
    pub fn new(tree: &'t HeaderTree) -> IncludeGraph<'t> {
        let paths: Vec<&str> = directory_plan(tree).into_iter().map(|p| p.path).collect();
        let index: HashMap<&str, usize> = paths.iter().enumerate().map(|(i, &p)| (p, i)).collect();
        let search = search_path(tree);
        let resolve = |candidate: String| -> Option<usize> { resolve_in(tree, &index, &candidate) };
        let edges = paths
            .iter()
            .map(|&path| {
                let Some(Node::File { data, .. }) = tree.entries.get(path) else { return Vec::new() };
                let dir = path.rsplit_once('/').map_or("", |(d, _)| d);
                let mut out = Vec::new();
                for (quoted, name) in includes(data) {
                    let local = quoted.then(|| join(dir, name));
                    let found =
                        local.into_iter().chain(search.iter().map(|d| join(d, name))).find_map(&resolve);
                    if let Some(f) = found {
                        out.push(f);
                    }
                }
                out
            })
            .collect();
        IncludeGraph { paths, index, edges }
    }

    /// How many other files include each file, directly or through others.
    pub fn includers(&self) -> Vec<usize> {
        let n = self.paths.len();
        let mut rev = vec![Vec::new(); n];
        for (f, es) in self.edges.iter().enumerate() {
            for &c in es {
                rev[c].push(f);
            }
        }
        let items: Vec<usize> = (0..n).collect();
        crate::parallel::parallel_map(
            &items,
            crate::parallel::default_jobs(),
            |&f| {
                let mut seen = vec![false; n];
                seen[f] = true;
                let mut stack = vec![f];
                let mut count = 0;
                while let Some(x) = stack.pop() {
                    for &p in &rev[x] {
                        if !seen[p] {
                            seen[p] = true;
                            count += 1;
                            stack.push(p);
                        }
                    }
                }
                count
            },
            |_| {},
        )
    }

    /// Hot files: [`HOT_MIN_INCLUDERS`] or more includers, or reachable from
    /// a forced include. Closed under inclusion: an includer of a file
    /// includes what it includes.
    pub fn hot(&self) -> Vec<bool> {
        let mut hot: Vec<bool> = self.includers().into_iter().map(|n| n >= HOT_MIN_INCLUDERS).collect();
        for root in self.forced() {
            for f in self.walk_from(root) {
                hot[f] = true;
            }
        }
        hot
    }

    fn forced(&self) -> Vec<usize> {
        FORCED_INCLUDES.iter().filter_map(|p| self.index.get(p).copied()).collect()
    }

    /// Depth-first pre-order from `root`: the order a preprocessor opens files.
    fn walk_from(&self, root: usize) -> Vec<usize> {
        let mut seen = vec![false; self.paths.len()];
        let mut out = Vec::new();
        self.dfs(root, &mut seen, &mut out);
        out
    }

    fn dfs(&self, root: usize, seen: &mut [bool], out: &mut Vec<usize>) {
        if seen[root] {
            return;
        }
        seen[root] = true;
        out.push(root);
        let mut stack = vec![(root, 0usize)];
        while let Some((f, next)) = stack.last_mut() {
            let f = *f;
            match self.edges[f].get(*next) {
                Some(&c) => {
                    *next += 1;
                    if !seen[c] {
                        seen[c] = true;
                        out.push(c);
                        stack.push((c, 0));
                    }
                }
                None => {
                    stack.pop();
                }
            }
        }
    }

    /// Every file in include order: a depth-first walk from the forced
    /// includes, then from every file in directory order.
    pub fn include_order(&self) -> Vec<usize> {
        let mut seen = vec![false; self.paths.len()];
        let mut out = Vec::with_capacity(self.paths.len());
        for root in self.forced().into_iter().chain(0..self.paths.len()) {
            self.dfs(root, &mut seen, &mut out);
        }
        out
    }
}

/// The kernel's include path for the tree's arch (`LINUXINCLUDE` and
/// `USERINCLUDE` in the top Makefile), relative to the header tree.
fn search_path(tree: &HeaderTree) -> Vec<String> {
    let arch = tree
        .entries
        .keys()
        .find_map(|p| p.strip_prefix("arch/").and_then(|r| r.split_once('/')).map(|(a, _)| a.to_string()));
    let mut dirs = Vec::new();
    if let Some(a) = &arch {
        dirs.push(format!("arch/{a}/include"));
        dirs.push(format!("arch/{a}/include/generated"));
    }
    dirs.push("include".to_string());
    if let Some(a) = &arch {
        dirs.push(format!("arch/{a}/include/uapi"));
        dirs.push(format!("arch/{a}/include/generated/uapi"));
    }
    dirs.push("include/uapi".to_string());
    dirs.push("include/generated/uapi".to_string());
    dirs
}

/// `dir/name`, with `.` and `..` resolved; empty if it leaves the tree.
fn join(dir: &str, name: &str) -> String {
    let mut parts: Vec<&str> = dir.split('/').filter(|s| !s.is_empty()).collect();
    for c in name.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                if parts.pop().is_none() {
                    return String::new();
                }
            }
            c => parts.push(c),
        }
    }
    parts.join("/")
}

/// The file a path names, following symlinks inside the tree (a few levels).
fn resolve_in(tree: &HeaderTree, index: &HashMap<&str, usize>, path: &str) -> Option<usize> {
    let mut path = path.to_string();
    for _ in 0..8 {
        if let Some(&i) = index.get(path.as_str()) {
            return Some(i);
        }
        let Some(Node::Symlink { target }) = tree.entries.get(&path) else { return None };
        let dir = path.rsplit_once('/').map_or("", |(d, _)| d);
        path = if target.starts_with('/') { return None } else { join(dir, target) };
    }
    None
}

/// `#include <name>` and `#include "name"` lines (and `#include_next`), as
/// (quoted, name). Conditionals are not evaluated: every line counts.
fn includes(data: &[u8]) -> Vec<(bool, &str)> {
    let mut out = Vec::new();
    for line in data.split(|&b| b == b'\n') {
        let rest = trim_start(line);
        let Some(rest) = rest.strip_prefix(b"#") else { continue };
        let rest = trim_start(rest);
        let Some(rest) = rest.strip_prefix(b"include") else { continue };
        let rest = rest.strip_prefix(b"_next").unwrap_or(rest);
        let rest = trim_start(rest);
        let (quoted, close) = match rest.first() {
            Some(b'<') => (false, b'>'),
            Some(b'"') => (true, b'"'),
            _ => continue,
        };
        let Some(end) = rest[1..].iter().position(|&b| b == close) else { continue };
        if let Ok(name) = std::str::from_utf8(&rest[1..1 + end]) {
            if !name.is_empty() {
                out.push((quoted, name.trim()));
            }
        }
    }
    out
}

fn trim_start(s: &[u8]) -> &[u8] {
    let n = s.iter().take_while(|b| **b == b' ' || **b == b'\t').count();
    &s[n..]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tree::{DIR_MODE, FILE_MODE};

    fn tree(files: &[(&str, &str)]) -> HeaderTree {
        let mut t = HeaderTree::default();
        for (p, c) in files {
            t.entries.insert(p.to_string(), Node::File { mode: FILE_MODE, data: c.as_bytes().to_vec() });
        }
        let dirs = crate::select::parent_dirs(t.entries.keys().map(String::as_str));
        for d in dirs {
            t.entries.insert(d, Node::Dir { mode: DIR_MODE });
        }
        t
    }

    #[test]
    fn include_lines() {
        let src = b"#include <linux/a.h>\n  #  include \"b.h\"\n#include_next <c.h>\n#define X <d.h>\n#include MACRO\n#include <e.h";
        assert_eq!(includes(src), vec![(false, "linux/a.h"), (true, "b.h"), (false, "c.h")]);
    }

    #[test]
    fn joins_stay_inside_the_tree() {
        assert_eq!(join("include/linux", "../uapi/x.h"), "include/uapi/x.h");
        assert_eq!(join("include", "./a/b.h"), "include/a/b.h");
        assert_eq!(join("include", "../../x.h"), "");
    }

    #[test]
    fn resolves_like_the_kernel_include_path() {
        let t = tree(&[
            ("arch/x86/include/asm/a.h", "#include <asm-generic/a.h>\n#include <linux/b.h>\n"),
            ("include/asm-generic/a.h", ""),
            (
                "include/linux/b.h",
                "#include \"c.h\"\n#include <uapi/linux/d.h>\n#include <linux/d.h>\n#include <asm/a.h>\n",
            ),
            ("include/linux/c.h", ""),
            ("include/uapi/linux/d.h", ""),
            ("arch/x86/include/generated/asm/e.h", "#include <asm-generic/a.h>\n"),
        ]);
        let g = IncludeGraph::new(&t);
        let names = |f: &str| -> Vec<&str> { g.edges[g.index[f]].iter().map(|&i| g.paths[i]).collect() };
        assert_eq!(names("arch/x86/include/asm/a.h"), ["include/asm-generic/a.h", "include/linux/b.h"]);
        // "c.h" is local; <linux/d.h> falls through to include/uapi; <asm/a.h> is the arch's.
        assert_eq!(
            names("include/linux/b.h"),
            [
                "include/linux/c.h",
                "include/uapi/linux/d.h",
                "include/uapi/linux/d.h",
                "arch/x86/include/asm/a.h"
            ]
        );
        assert_eq!(names("arch/x86/include/generated/asm/e.h"), ["include/asm-generic/a.h"]);
    }

    #[test]
    fn includers_count_transitive_includers_once() {
        // a -> b -> c, a -> c, d -> c, and a cycle c -> b.
        let t = tree(&[
            ("include/a.h", "#include \"b.h\"\n#include \"c.h\"\n"),
            ("include/b.h", "#include \"c.h\"\n"),
            ("include/c.h", "#include \"b.h\"\n"),
            ("include/d.h", "#include \"c.h\"\n"),
        ]);
        let g = IncludeGraph::new(&t);
        let n = g.includers();
        let of = |p: &str| n[g.index[p]];
        assert_eq!(
            (of("include/a.h"), of("include/b.h"), of("include/c.h"), of("include/d.h")),
            (0, 3, 3, 0)
        );
    }

    #[test]
    fn include_order_is_depth_first_from_forced_includes() {
        let t = tree(&[
            ("include/a.h", "#include \"z.h\"\n"),
            ("include/linux/kconfig.h", "#include <y.h>\n"),
            ("include/y.h", ""),
            ("include/z.h", "#include \"y.h\"\n#include \"x.h\"\n"),
            ("include/x.h", ""),
        ]);
        let g = IncludeGraph::new(&t);
        let order: Vec<&str> = g.include_order().into_iter().map(|i| g.paths[i]).collect();
        assert_eq!(
            order,
            ["include/linux/kconfig.h", "include/y.h", "include/a.h", "include/z.h", "include/x.h"]
        );
        // Everything reachable from a forced include is hot, nothing else here.
        let hot = g.hot();
        let hot: Vec<&str> = (0..hot.len()).filter(|&i| hot[i]).map(|i| g.paths[i]).collect();
        assert_eq!(hot, ["include/linux/kconfig.h", "include/y.h"]);
    }

    #[test]
    fn plan_puts_hot_files_first_with_own_blocks() {
        let mut files = vec![("include/linux/kconfig.h".to_string(), String::new())];
        // core.h has HOT_MIN_INCLUDERS includers.
        files.push(("include/core.h".to_string(), "#include \"leaf.h\"\n".to_string()));
        files.push(("include/leaf.h".to_string(), String::new()));
        for i in 0..HOT_MIN_INCLUDERS {
            files.push((format!("include/user{i:02}.h"), "#include \"core.h\"\n".to_string()));
        }
        let refs: Vec<(&str, &str)> = files.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
        let t = tree(&refs);
        let p = plan(&t, LayoutKind::Includes);
        assert_eq!(p.len(), files.len());
        let own: Vec<&str> = p.iter().filter(|x| x.own_blocks).map(|x| x.path).collect();
        assert_eq!(own, ["include/linux/kconfig.h", "include/core.h", "include/leaf.h"]);
        assert!(p[..3].iter().all(|x| x.own_blocks) && p[3..].iter().all(|x| !x.own_blocks));
        // The rest in directory order.
        let rest: Vec<&str> = p[3..].iter().map(|x| x.path).collect();
        let mut sorted = rest.clone();
        sorted.sort();
        assert_eq!(rest, sorted);
        let d = plan(&t, LayoutKind::Directory);
        assert!(d.iter().all(|x| !x.own_blocks));
    }
}
