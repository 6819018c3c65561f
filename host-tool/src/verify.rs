//! Compare two header trees: every path, type, mode, symlink target and byte.

use std::fmt;

use crate::select::UTSVERSION_H;
use crate::tree::{HeaderTree, Node};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Difference {
    Missing { path: String, kind: &'static str },
    Extra { path: String, kind: &'static str },
    Kind { path: String, expected: &'static str, actual: &'static str },
    Mode { path: String, expected: u32, actual: u32 },
    Target { path: String, expected: String, actual: String },
    Content { path: String, offset: usize, line: usize, expected_len: usize, actual_len: usize },
}

impl fmt::Display for Difference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Difference::Missing { path, kind } => write!(f, "{path}: {kind} missing from the image"),
            Difference::Extra { path, kind } => {
                write!(f, "{path}: {kind} in the image but not in the reference")
            }
            Difference::Kind { path, expected, actual } => {
                write!(f, "{path}: {expected} in the reference, {actual} in the image")
            }
            Difference::Mode { path, expected, actual } => {
                write!(f, "{path}: mode {expected:04o} in the reference, {actual:04o} in the image")
            }
            Difference::Target { path, expected, actual } => {
                write!(f, "{path}: symlink to {expected:?} in the reference, to {actual:?} in the image")
            }
            Difference::Content { path, offset, line, expected_len, actual_len } => write!(
                f,
                "{path}: contents differ from byte {offset} (line {line}); \
                 {expected_len} bytes in the reference, {actual_len} in the image"
            ),
        }
    }
}

/// Removes from `expected` (the reference) what an image leaves out by design
/// but an upstream tarball may hold: `include/generated/utsversion.h`, which
/// the tarball has or not depending on build order. Returns what it removed.
pub fn drop_build_order_entries(expected: &mut HeaderTree, actual: &HeaderTree) -> Option<&'static str> {
    if actual.entries.contains_key(UTSVERSION_H) {
        return None;
    }
    expected.entries.remove(UTSVERSION_H).map(|_| UTSVERSION_H)
}

/// Differences of `actual` (the image) against `expected` (the reference),
/// in path order.
pub fn compare(expected: &HeaderTree, actual: &HeaderTree) -> Vec<Difference> {
    let mut diffs = Vec::new();
    let mut exp = expected.entries.iter().peekable();
    let mut act = actual.entries.iter().peekable();
    loop {
        match (exp.peek(), act.peek()) {
            (None, None) => break,
            (Some((p, n)), None) => {
                diffs.push(Difference::Missing { path: p.to_string(), kind: n.kind() });
                exp.next();
            }
            (None, Some((p, n))) => {
                diffs.push(Difference::Extra { path: p.to_string(), kind: n.kind() });
                act.next();
            }
            (Some((pe, ne)), Some((pa, na))) => match pe.cmp(pa) {
                std::cmp::Ordering::Less => {
                    diffs.push(Difference::Missing { path: pe.to_string(), kind: ne.kind() });
                    exp.next();
                }
                std::cmp::Ordering::Greater => {
                    diffs.push(Difference::Extra { path: pa.to_string(), kind: na.kind() });
                    act.next();
                }
                std::cmp::Ordering::Equal => {
                    compare_node(pe, ne, na, &mut diffs);
                    exp.next();
                    act.next();
                }
            },
        }
    }
    diffs
}

fn compare_node(path: &str, e: &Node, a: &Node, diffs: &mut Vec<Difference>) {
    let path = path.to_string();
    match (e, a) {
        (Node::Dir { mode: me }, Node::Dir { mode: ma }) => {
            if me != ma {
                diffs.push(Difference::Mode { path, expected: *me, actual: *ma });
            }
        }
        (Node::File { mode: me, data: de }, Node::File { mode: ma, data: da }) => {
            if me != ma {
                diffs.push(Difference::Mode { path: path.clone(), expected: *me, actual: *ma });
            }
            if de != da {
                let offset =
                    de.iter().zip(da.iter()).position(|(x, y)| x != y).unwrap_or(de.len().min(da.len()));
                let line = de[..offset].iter().filter(|&&b| b == b'\n').count() + 1;
                diffs.push(Difference::Content {
                    path,
                    offset,
                    line,
                    expected_len: de.len(),
                    actual_len: da.len(),
                });
            }
        }
        // Symlink permissions are not meaningful on Linux; compare targets only.
        (Node::Symlink { target: te }, Node::Symlink { target: ta }) => {
            if te != ta {
                diffs.push(Difference::Target { path, expected: te.clone(), actual: ta.clone() });
            }
        }
        _ => diffs.push(Difference::Kind { path, expected: e.kind(), actual: a.kind() }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(entries: &[(&str, Node)]) -> HeaderTree {
        HeaderTree { entries: entries.iter().map(|(p, n)| (p.to_string(), n.clone())).collect() }
    }
    fn file(d: &str) -> Node {
        Node::File { mode: 0o644, data: d.as_bytes().to_vec() }
    }

    #[test]
    fn reports_each_kind_of_difference() {
        let e = tree(&[
            ("a", Node::Dir { mode: 0o755 }),
            ("a/gone.h", file("x")),
            ("a/l.h", Node::Symlink { target: "x".into() }),
            ("a/m.h", file("same")),
            ("a/t.h", file("x")),
            ("a/x.h", file("line1\nline2\n")),
        ]);
        let a = tree(&[
            ("a", Node::Dir { mode: 0o700 }),
            ("a/l.h", Node::Symlink { target: "y".into() }),
            ("a/m.h", Node::File { mode: 0o755, data: b"same".to_vec() }),
            ("a/new.h", file("x")),
            ("a/t.h", Node::Dir { mode: 0o755 }),
            ("a/x.h", file("line1\nlinE2\n")),
        ]);
        let d = compare(&e, &a);
        assert_eq!(
            d,
            vec![
                Difference::Mode { path: "a".into(), expected: 0o755, actual: 0o700 },
                Difference::Missing { path: "a/gone.h".into(), kind: "file" },
                Difference::Target { path: "a/l.h".into(), expected: "x".into(), actual: "y".into() },
                Difference::Mode { path: "a/m.h".into(), expected: 0o644, actual: 0o755 },
                Difference::Extra { path: "a/new.h".into(), kind: "file" },
                Difference::Kind { path: "a/t.h".into(), expected: "file", actual: "directory" },
                Difference::Content {
                    path: "a/x.h".into(),
                    offset: 9,
                    line: 2,
                    expected_len: 12,
                    actual_len: 12
                },
            ]
        );
        assert!(compare(&e, &e).is_empty());
        assert!(d[6].to_string().contains("line 2"));
    }

    #[test]
    fn prefix_content_difference_points_at_the_end() {
        let e = tree(&[("f", file("abc"))]);
        let a = tree(&[("f", file("abcdef"))]);
        assert_eq!(
            compare(&e, &a),
            vec![Difference::Content {
                path: "f".into(),
                offset: 3,
                line: 1,
                expected_len: 3,
                actual_len: 6
            }]
        );
    }
}
