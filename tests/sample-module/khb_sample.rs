// SPDX-License-Identifier: GPL-2.0

//! Harness check: an out-of-tree Rust module that logs on load and unload.
//! No `author`: 6.12 and 7.3 spell that key differently (kmod/blk_ext.rs).

use kernel::prelude::*;

module! {
    type: Sample,
    name: "khb_sample",
    description: "Test-harness sample: proves out-of-tree Rust modules load",
    license: "GPL",
}

struct Sample;

impl kernel::Module for Sample {
    fn init(_module: &'static ThisModule) -> Result<Self> {
        pr_info!("khb_sample: loaded\n");
        Ok(Sample)
    }
}

impl Drop for Sample {
    fn drop(&mut self) {
        pr_info!("khb_sample: unloaded\n");
    }
}
