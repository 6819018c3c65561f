//! Pack a Linux kernel's headers (the `CONFIG_IKHEADERS` set) into a
//! reproducible squashfs-xz image, and inspect or verify such images.
//!
//! The data path: [`select`] picks the files upstream's
//! `kernel/gen_kheaders.sh` picks, [`strip`] removes comments as its perl
//! line does, [`tree`] holds the result, [`pack`] writes squashfs with
//! backhand plus our [`format::Trailer`], and [`output`] puts it on disk
//! atomically.

pub mod format;
pub mod inspect;
pub mod output;
pub mod pack;
pub mod parallel;
pub mod progress;
pub mod select;
pub mod strip;
pub mod time;
pub mod tree;
pub mod verify;
