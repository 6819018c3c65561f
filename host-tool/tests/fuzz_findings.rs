//! Every input the fuzzers found a problem with (`fuzz-findings/TARGET/*`),
//! replayed through the same check the fuzz target runs (one copy of each
//! check: the fuzz crate's `checks.rs`, included here). See
//! docs/reliability.md for what each one was and its fix.

#[allow(dead_code)]
#[path = "../fuzz/src/checks.rs"]
mod checks;

use std::path::Path;

fn replay(target: &str, check: fn(&[u8])) -> usize {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz-findings").join(target);
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        let data = std::fs::read(&path).unwrap();
        if let Err(e) = std::panic::catch_unwind(|| check(&data)) {
            std::panic::resume_unwind(Box::new(format!(
                "{}: {:?}",
                path.display(),
                e.downcast_ref::<String>()
            )));
        }
        n += 1;
    }
    n
}

#[test]
fn image_findings() {
    assert!(replay("image", checks::image) > 0);
}

#[test]
fn roundtrip_findings() {
    assert!(replay("roundtrip", checks::roundtrip) > 0);
}
