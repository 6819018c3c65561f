//! Comment stripping, byte-for-byte what upstream `kernel/gen_kheaders.sh` does:
//!
//! ```text
//! perl -pi -e 'BEGIN {undef $/;}; s/\/\*((?!SPDX).)*?\*\///smg;'
//! ```
//!
//! The whole file is one string (`$/` undefined) and `.` matches any byte
//! (`/s`). At every position the regex tries to match `/*`, then lazily any
//! bytes, each of which must not start `SPDX`, up to the first `*/`. If a
//! `SPDX` comes before that `*/`, or no `*/` follows, the attempt fails and the
//! engine moves on by one byte. Upstream is not C-aware: markers inside string
//! literals or `//` comments count as comment markers too. We reproduce that,
//! because the goal is the same bytes as upstream's archive, not better C.

/// Returns `input` with comments removed as upstream's perl expression does.
pub fn strip_comments(input: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(input.len());
    // Once a scan ran off the end without `*/`, no later `/*` can match either,
    // so stop looking: keeps pathological inputs linear.
    let mut no_terminator_after = usize::MAX;
    let mut copied_up_to = 0;
    let mut i = 0;
    while let Some(found) = find(&input[i..], b"/*") {
        let start = i + found;
        if start >= no_terminator_after {
            break;
        }
        match comment_end(input, start + 2) {
            Scan::End(end) => {
                out.extend_from_slice(&input[copied_up_to..start]);
                copied_up_to = end;
                i = end;
            }
            Scan::Spdx => i = start + 1,
            Scan::Unterminated => {
                no_terminator_after = start;
                i = start + 1;
            }
        }
    }
    out.extend_from_slice(&input[copied_up_to..]);
    out
}

enum Scan {
    /// The comment ends just before this offset (after its `*/`).
    End(usize),
    /// `SPDX` occurs before the closing `*/`: the comment is kept.
    Spdx,
    /// No `*/` follows.
    Unterminated,
}

fn comment_end(input: &[u8], body: usize) -> Scan {
    let close = find(&input[body..], b"*/").map(|o| body + o);
    let spdx = close.and_then(|c| find(&input[body..c], b"SPDX"));
    match (close, spdx) {
        (None, _) => Scan::Unterminated,
        (Some(_), Some(_)) => Scan::Spdx,
        (Some(c), None) => Scan::End(c + 2),
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::strip_comments;
    use std::io::Write;
    use std::process::{Command, Stdio};

    /// Upstream's exact command, run on `input`: the oracle for these tests.
    fn perl(input: &[u8]) -> Vec<u8> {
        let mut child = Command::new("perl")
            .args(["-p", "-e", r"BEGIN {undef $/;}; s/\/\*((?!SPDX).)*?\*\///smg;"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("perl must be installed (it builds every kernel)");
        child.stdin.take().unwrap().write_all(input).unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success());
        out.stdout
    }

    fn check(input: &str, expected: &str) {
        let ours = strip_comments(input.as_bytes());
        assert_eq!(String::from_utf8_lossy(&ours), expected, "ours, input {input:?}");
        let upstream = perl(input.as_bytes());
        assert_eq!(String::from_utf8_lossy(&upstream), expected, "perl, input {input:?}");
    }

    #[test]
    fn plain_comments_go() {
        check("int a; /* one */ int b;\n", "int a;  int b;\n");
        check("/**/x/***/y/* * / */z", "xyz");
        check("a/*\n * multi\n * line\n */b\n", "ab\n");
    }

    #[test]
    fn spdx_comments_stay() {
        check(
            "/* SPDX-License-Identifier: GPL-2.0 */\n/* gone */x\n",
            "/* SPDX-License-Identifier: GPL-2.0 */\nx\n",
        );
        check("/*SPDX*/", "/*SPDX*/");
        // SPDX after the first `*/` does not protect the first comment.
        check("/* a */ /* SPDX */", " /* SPDX */");
        // A later `/*` inside a kept SPDX comment starts its own match.
        check("/* SPDX /* inner */ tail", "/* SPDX  tail");
        check("/* SPD X */", "");
    }

    #[test]
    fn markers_in_strings_and_line_comments_count() {
        // Upstream is not C-aware: this eats code, and so must we.
        check("char *s = \"/*\"; int x; /* c */ y", "char *s = \" y");
        check("// a /* b\nint x;\n/* c */z", "// a z");
        check("// only */ here\n", "// only */ here\n");
        check("a = b /*/ c */ d", "a = b  d");
    }

    #[test]
    fn nested_looking_and_unterminated() {
        check("/* outer /* inner */ still */", " still */");
        check("x /* never closed", "x /* never closed");
        check("/* a */ /* open", " /* open");
        check("/", "/");
        check("", "");
        check("*/ stray", "*/ stray");
    }

    #[test]
    fn binary_bytes_and_newlines() {
        let input = b"a\xff/*\x00\n\xfe*/b\r\n";
        assert_eq!(strip_comments(input), perl(input));
        assert_eq!(strip_comments(input), b"a\xffb\r\n");
    }

    #[test]
    fn spdx_in_an_unterminated_comment() {
        check("a /* SPDX x", "a /* SPDX x");
        check("/* a */ /* SPDX /* b", " /* SPDX /* b");
    }

    #[test]
    fn long_comment_has_no_length_limit() {
        let input = format!("a/*{}*/b", "x".repeat(200_000));
        check(&input, "ab");
    }
}
