//! Pack a Linux kernel's headers (the `CONFIG_IKHEADERS` set) into a
//! reproducible squashfs image, and inspect or verify such images.
//!
//! The data path: [`select`] picks the files upstream's
//! `kernel/gen_kheaders.sh` picks, [`strip`] removes comments as its perl
//! line does, [`tree`] holds the result (or [`tarball`] reads it from a kheaders
//! tarball), [`layout`] decides where each
//! header's data goes (from the include graph), [`squashfs`] writes the
//! filesystem with [`compress`]ed blocks, [`pack`] adds our [`format::Trailer`], and
//! [`output`] puts it on disk atomically. backhand reads images back
//! ([`tree`], for `inspect` and `verify`): an independent reader.

pub mod compress;
pub mod erofs;
pub mod format;
pub mod hierarchy;
pub mod inspect;
pub mod layout;
pub mod output;
pub mod pack;
pub mod parallel;
pub mod progress;
pub mod select;
pub mod squashfs;
pub mod strip;
pub mod tarball;
pub mod time;
pub mod tree;
pub mod verify;
