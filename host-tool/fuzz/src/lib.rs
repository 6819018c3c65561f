//! Fuzz targets for `kheaders-image`: see `fuzz_targets/`, [`checks`] and
//! `scripts/fuzz.sh`.

use std::alloc::{GlobalAlloc, Layout, System};

pub mod checks;
pub mod coverage;

/// Called once before the first input.
///
/// libfuzzer-sys makes every panic abort, including those the tool catches
/// on purpose (backhand's, as errors: `tree::catch_panics`); those go on as
/// errors unless `KHB_FUZZ_STRICT` is set, which reports them too.
pub fn init() {
    if std::env::var_os("KHB_FUZZ_STRICT").is_none() {
        kheaders_image::tree::quiet_caught_panics();
    }
    coverage::init();
}

/// Refuses any single allocation larger than this: without a sanitizer,
/// libFuzzer only sees memory that is touched, and a small hostile image
/// that makes the tool reserve gigabytes is a finding.
const MAX_ALLOC: usize = 512 << 20;

struct BoundedAlloc;

// SAFETY: every call is passed on unchanged to the system allocator, which
// upholds GlobalAlloc's contract; only oversized requests are refused first
// (by aborting, which never returns a bad pointer).
unsafe impl GlobalAlloc for BoundedAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        check(layout.size());
        // SAFETY: the caller's layout, as GlobalAlloc::alloc requires.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        check(layout.size());
        // SAFETY: as in alloc.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: ptr was allocated by System with this layout (alloc above).
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        check(new_size);
        // SAFETY: ptr/layout come from this allocator, new_size from the caller
        // under realloc's contract.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

fn check(size: usize) {
    if size > MAX_ALLOC {
        // No allocation here: we are inside the allocator.
        let _ = std::io::Write::write_all(
            &mut std::io::stderr(),
            b"==kheaders-fuzz== single allocation over 512 MiB: a hostile input makes the tool reserve too much\n",
        );
        std::process::abort();
    }
}

#[global_allocator]
static ALLOC: BoundedAlloc = BoundedAlloc;
