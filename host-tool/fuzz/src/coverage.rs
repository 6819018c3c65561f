//! Which instrumented edges a corpus reaches, for the coverage table in
//! docs/reliability.md (`scripts/fuzz.sh coverage`): with
//! `KHB_FUZZ_COVERAGE=FILE`, the edge counters of every input are merged
//! (libFuzzer clears them before each run) and, at exit, every edge's
//! address (relative to the executable) and whether it ran go to FILE.
//! libFuzzer's own per-function report needs a sanitizer runtime, which
//! stable Rust does not link.

use std::io::Write;
use std::sync::Mutex;

extern "C" {
    // Bounds of the sections -sanitizer-coverage-inline-8bit-counters and
    // -pc-table emit, defined by the linker: one counter byte per edge, and
    // per edge a (PC, flags) pair.
    static __start___sancov_cntrs: u8;
    static __stop___sancov_cntrs: u8;
    static __start___sancov_pcs: usize;
    static __stop___sancov_pcs: usize;
    fn atexit(f: extern "C" fn()) -> i32;
}

static SEEN: Mutex<Option<Vec<bool>>> = Mutex::new(None);

fn counters() -> &'static [u8] {
    // SAFETY: the linker defines both symbols as the bounds of one section
    // of counter bytes, which lives as long as the program; the bytes may
    // change as code runs, but only on this thread while an input runs, and
    // this is read between inputs.
    unsafe {
        let start = &raw const __start___sancov_cntrs;
        let len = (&raw const __stop___sancov_cntrs).offset_from(start) as usize;
        std::slice::from_raw_parts(start, len)
    }
}

fn pcs() -> &'static [usize] {
    // SAFETY: as in counters(): the linker's bounds of the (PC, flags) table,
    // which is written once at start-up, before any input.
    unsafe {
        let start = &raw const __start___sancov_pcs;
        let len = (&raw const __stop___sancov_pcs).offset_from(start) as usize;
        std::slice::from_raw_parts(start, len)
    }
}

pub(crate) fn init() {
    if std::env::var_os("KHB_FUZZ_COVERAGE").is_some() {
        *SEEN.lock().unwrap() = Some(vec![false; counters().len()]);
        // SAFETY: registers a plain extern "C" function with no arguments,
        // as atexit(3) expects.
        unsafe { atexit(dump) };
    }
}

/// After each input: remember the edges it ran.
pub fn after_input() {
    if let Some(seen) = SEEN.lock().unwrap().as_mut() {
        for (s, &c) in seen.iter_mut().zip(counters()) {
            *s |= c != 0;
        }
    }
}

extern "C" fn dump() {
    let Some(path) = std::env::var_os("KHB_FUZZ_COVERAGE") else { return };
    let seen = SEEN.lock().unwrap_or_else(|e| e.into_inner());
    let Some(seen) = seen.as_ref() else { return };
    // The executable's load address: its first mapping, at file offset 0.
    let exe = std::fs::read_link("/proc/self/exe").unwrap();
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
    let base = maps
        .lines()
        .find(|l| l.ends_with(exe.to_str().unwrap()) && l.split_whitespace().nth(2) == Some("00000000"))
        .and_then(|l| usize::from_str_radix(l.split('-').next()?, 16).ok())
        .expect("executable mapping");
    let mut out = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    for (pair, &s) in pcs().chunks(2).zip(seen) {
        // Entries of functions the linker dropped point nowhere.
        if let Some(pc) = pair[0].checked_sub(base).filter(|&pc| pc > 0) {
            writeln!(out, "{pc:#x} {}", u8::from(s)).unwrap();
        }
    }
    out.flush().unwrap();
}
