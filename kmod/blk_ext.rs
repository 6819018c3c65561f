// SPDX-License-Identifier: GPL-2.0

//! Safe wrappers for what the Rust block API (and `kernel::error`) of 6.12 and 7.3 lacks. This
//! is the only Rust file that touches `kernel::bindings`; `helpers.c` is its C half (declared in
//! [`c_helpers`]), for the kernel functions that bindgen cannot generate on every architecture.
//!
//! It is also the only Rust file that knows which kernel it is built against: what differs
//! between the two APIs is behind `cfg(khb_api_7_3)`, which `Kbuild` sets for trees after 6.12
//! (docs/design.md, "6.12 and 7.3"), so that `driver.rs` is the same for both:
//!
//! - [`module_with_author!`]: `module!` (7.3 spells the author key `authors: [...]`);
//! - the module pointer in [`DiskOps`] (7.3: a const of `ModuleMetadata`, not a static),
//!   the lock class ([`lock_class`]; 7.3: pinned, with a public `as_ptr`) and
//!   `bvec_iter`'s `bi_bvec_done` ([`bvec_done`]; 7.3: `bi_offset`).
//!
//! The disk is **bio-based**, as `drivers/block/brd.c` is: the kernel's Rust block API has
//! only blk-mq (`kernel::block::mq`), where a read issued under a plug (squashfs reads file
//! data inside readahead's) waits for kblockd to run `queue_rq`. A bio-based disk's
//! `submit_bio` runs in the submitter's context and completes the bio before returning.
//!
//! - [`ReadOnlyDisk`] + [`DiskOps`]: a gendisk from `__blk_alloc_disk()` (what
//!   `blk_alloc_disk()` expands to), read-only at the block layer, `BLKROSET` to read-write
//!   refused, no partition scan, queue limits chosen by the driver ([`DiskLimits`]),
//!   `fops.owner` set so that an open or mounted disk pins the module (6.12's
//!   `GenDiskBuilder` leaves `owner` null: `rmmod` then succeeds under a mount and the next
//!   access oopses), and `fops.submit_bio` calling the driver's [`ServeRead`].
//! - [`BioView`]: a bio's op, position and length, and its data segments mapped one page at
//!   a time as [`Segment`]s (what C gets from `bio_op()`, `bio_for_each_segment()` and
//!   `memcpy_to_page()`).
//!
//! Kernel functions cited in comments are those of Linux 6.12 and, unless a comment says
//! otherwise, unchanged in 7.3 in what the comment relies on.

use core::marker::PhantomData;
use core::ptr::NonNull;

use kernel::bindings;
use kernel::error::{code, from_err_ptr, to_result, Error, Result};
use kernel::ffi::{c_int, c_ulong};
use kernel::page::PAGE_SIZE;
use kernel::prelude::*;
use kernel::types::Opaque;
use kernel::ThisModule;

/// `module!` with one author: `author: "..."` in 6.12, `authors: ["..."]` in 7.3.
#[cfg(not(khb_api_7_3))]
macro_rules! module_with_author {
    (type: $t:ident, name: $n:tt, author: $a:tt, description: $d:tt, license: $l:tt $(,)?) => {
        ::kernel::prelude::module! { type: $t, name: $n, author: $a, description: $d, license: $l, }
    };
}
#[cfg(khb_api_7_3)]
macro_rules! module_with_author {
    (type: $t:ident, name: $n:tt, author: $a:tt, description: $d:tt, license: $l:tt $(,)?) => {
        ::kernel::prelude::module! { type: $t, name: $n, authors: [$a], description: $d, license: $l, }
    };
}
pub(crate) use module_with_author;

/// What a driver of a [`ReadOnlyDisk`] provides: serving one bio, in the
/// context of whoever submitted it (any task; it must not sleep: the disk
/// advertises `BLK_FEAT_NOWAIT`).
pub(crate) trait ServeRead: 'static {
    /// Fill `bio` (or fail it): `Ok` completes it successfully, an error
    /// completes it with `BLK_STS_IOERR`.
    fn serve(bio: &BioView<'_>) -> Result;
}

// C macros that bindgen does not generate. `helpers.c` asserts each value at
// build time against the header, so a change fails the build.
/// `BLK_STS_IOERR`, include/linux/blk_types.h.
const BLK_STS_IOERR: bindings::blk_status_t = 10;
/// `BLK_FEAT_IO_STAT`, include/linux/blkdev.h: the queue's `iostats`.
const BLK_FEAT_IO_STAT: bindings::blk_features_t = 1 << 4;
/// `BLK_FEAT_NOWAIT`, include/linux/blkdev.h: `REQ_NOWAIT` bios accepted.
const BLK_FEAT_NOWAIT: bindings::blk_features_t = 1 << 7;

/// A lock class key for the disk's queue, `static`, as `__blk_alloc_disk()` wants.
#[cfg(not(khb_api_7_3))]
fn lock_class() -> *mut bindings::lock_class_key {
    use core::mem::{align_of, size_of};
    use kernel::sync::LockClassKey;
    // `LockClassKey` is `#[repr(transparent)]` over `Opaque<lock_class_key>`
    // (layout checked here); its accessor is crate-private in 6.12.
    kernel::static_assert!(size_of::<LockClassKey>() == size_of::<bindings::lock_class_key>());
    kernel::static_assert!(align_of::<LockClassKey>() == align_of::<bindings::lock_class_key>());
    (kernel::static_lock_class!() as *const LockClassKey)
        .cast_mut()
        .cast::<bindings::lock_class_key>()
}
#[cfg(khb_api_7_3)]
fn lock_class() -> *mut bindings::lock_class_key {
    kernel::static_lock_class!().as_ptr()
}

/// The C half of the module, `helpers.c` (linked into the same `.ko`, see `Kbuild`).
mod c_helpers {
    use kernel::bindings;
    use kernel::ffi::c_ulong;

    // Only pointers to `struct page` cross: the lint's complaint (a field of
    // `struct page` that bindgen gives as an empty struct) is about the pointee,
    // which does not affect how a pointer is passed. `kernel::bindings` allows
    // the lint for the same reason.
    #[allow(improper_ctypes)]
    extern "C" {
        /// `flush_dcache_page(page)`.
        pub(super) fn khb_flush_dcache_page(page: *mut bindings::page);
        /// `nth_page(page, n)`.
        pub(super) fn khb_nth_page(page: *mut bindings::page, n: c_ulong) -> *mut bindings::page;
        /// `init_completion(released)`, and `disk->private_data = released`
        /// for [`khb_free_disk`].
        pub(super) fn khb_disk_release_init(disk: *mut bindings::gendisk, released: *mut bindings::completion);
        /// The disk's `fops->free_disk`: `complete(disk->private_data)`.
        pub(super) fn khb_free_disk(disk: *mut bindings::gendisk);
    }
}

/// `EBADMSG`, which 6.12's `kernel::error::code` does not list (7.3's does).
pub(crate) fn ebadmsg() -> Error {
    Error::from_errno(-(bindings::EBADMSG as c_int))
}

/// The `block_device_operations` of a disk served by `D`: `owner` set, so
/// that an open or mounted disk pins the module; `submit_bio`; BLKROSET to
/// read-write refused; and `free_disk` (below).
///
/// [`DiskOps::TABLE`] is a constant that the compiler promotes to a
/// `'static` in the module's read-only data ([`DiskOps::table`], the pattern
/// of `kernel::miscdevice`'s vtable), so it is module data, as C drivers'
/// tables are. The gendisk may be released after
/// `put_disk()` (a racing opener holds the last reference) and
/// `disk_release()` reads `fops` then: its `free_disk` hook tells
/// [`ReadOnlyDisk`]'s drop that this has happened, so the module (this
/// table and the hooks' code) outlives every use.
struct DiskOps<D>(PhantomData<D>);

/// The module's `ThisModule`: a `static` at the crate root in 6.12, a const
/// of `ModuleMetadata` in 7.3.
#[cfg(not(khb_api_7_3))]
const fn this_module() -> &'static ThisModule {
    &crate::THIS_MODULE
}
#[cfg(khb_api_7_3)]
const fn this_module() -> &'static ThisModule {
    &<crate::LocalModule as kernel::ModuleMetadata>::THIS_MODULE
}

impl<D: ServeRead> DiskOps<D> {
    const TABLE: bindings::block_device_operations = {
        // SAFETY: All-zero is a valid `block_device_operations` (no
        // callbacks, null pointers).
        let mut ops: bindings::block_device_operations = unsafe { core::mem::zeroed() };
        ops.owner = this_module().as_ptr();
        ops.submit_bio = Some(submit_bio::<D>);
        ops.set_read_only = Some(refuse_read_write);
        ops.free_disk = Some(c_helpers::khb_free_disk);
        ops
    };

    /// [`Self::TABLE`] as a `'static`: a promoted constant (the compiler
    /// refuses this function if it cannot promote it).
    const fn table() -> &'static bindings::block_device_operations {
        &Self::TABLE
    }
}

/// `BLKROSET` hook: making the disk read-only again is fine, read-write never.
///
/// # Safety
///
/// Called by the block layer only; the arguments are not dereferenced.
unsafe extern "C" fn refuse_read_write(_bdev: *mut bindings::block_device, ro: bool) -> c_int {
    if ro {
        0
    } else {
        -(bindings::EROFS as c_int)
    }
}

/// `fops->submit_bio`: serve `bio` with `D` and complete it, in the
/// submitter's context, as `brd_submit_bio()` does.
///
/// # Safety
///
/// Called by the block layer only: by `__submit_bio()` (block/blk-core.c),
/// for a bio to a disk whose `fops` is [`DiskOps::TABLE`], inside
/// `bio_queue_enter()` .. `blk_queue_exit()`, and only after
/// `submit_bio_noacct()`'s checks (flushes, discards, zeroing and driver
/// ops are ended there: the disk has no write cache and no limits for them).
/// The bio is the driver's until it calls `bio_endio()`.
unsafe extern "C" fn submit_bio<D: ServeRead>(bio: *mut bindings::bio) {
    let result = {
        // SAFETY: By this function's contract `bio` is a valid bio that the
        // driver owns until `bio_endio()` below, which comes after the view's
        // last use (it is dropped at the end of this block).
        let view = unsafe { BioView::new(bio) };
        let acct = view.start_io_acct();
        let result = D::serve(&view);
        view.end_io_acct(acct);
        result
    };
    if result.is_err() {
        // SAFETY: `bio` is valid and ours (see above). This is what
        // `bio_io_error()` does in C. The only other writer is a chained
        // child completing on another CPU (`__bio_chain_endio()`, block/bio.c),
        // which writes an error only while the field is 0, so either error
        // is kept; a volatile write is the kernel's `WRITE_ONCE`.
        unsafe { core::ptr::addr_of_mut!((*bio).bi_status).write_volatile(BLK_STS_IOERR) };
    }
    // SAFETY: `bio` is valid and ours; completing it hands it back (it may be
    // freed at once), so it is not touched after this.
    unsafe { bindings::bio_endio(bio) };
}

/// The queue limits [`ReadOnlyDisk::add`] sets; every other limit is the
/// block layer's default (`blk_validate_limits()`, block/blk-settings.c):
/// no discard, no write-zeroes, no write cache, non-rotational.
pub(crate) struct DiskLimits {
    /// Logical and physical block size: a power of two from 512 to `PAGE_SIZE`.
    pub(crate) block_size: u32,
    /// Largest I/O, in 512-byte sectors: at least one page and one block.
    /// The block layer's soft limit (`max_sectors`) is this, capped at
    /// `BLK_DEF_MAX_SECTORS_CAP` (1280 KiB). A bio-based disk gets bios as
    /// they were built (nothing splits them for it); the limits are what it
    /// advertises: to readahead (`io_pages` is `max_sectors`) and to drivers
    /// stacked on it (device mapper).
    pub(crate) max_hw_sectors: u32,
    /// Most data segments in one I/O (at least 1).
    pub(crate) max_segments: u16,
    /// Largest data segment in bytes: at least `PAGE_SIZE`.
    pub(crate) max_segment_size: u32,
}

impl DiskLimits {
    /// The checks `blk_validate_limits()` makes on these fields (it would
    /// fail them with EINVAL, some after a `WARN_ON_ONCE`), made here first:
    /// 6.12's. 7.3 accepts more (block sizes up to 64 KiB with THP, segments
    /// from `BLK_MIN_SEGMENT_SIZE`, 4 KiB), so what passes here passes there.
    fn check(&self) -> Result {
        let page = PAGE_SIZE as u64;
        let bs = u64::from(self.block_size);
        let max_bytes = u64::from(self.max_hw_sectors) * 512;
        if !self.block_size.is_power_of_two()
            || !(512..=page).contains(&bs)
            || max_bytes < page
            || max_bytes < bs
            || self.max_segments == 0
            || u64::from(self.max_segment_size) < page
        {
            return Err(code::EINVAL);
        }
        Ok(())
    }
}

/// A registered, read-only, bio-based disk served by `D`. Deleted on drop.
///
/// # Invariants
///
/// - `disk` points to a gendisk that `__blk_alloc_disk()` allocated and
///   `device_add_disk()` added successfully, and that has not been deleted
///   (`del_gendisk()`) or put (`put_disk()`): this value owns the reference
///   `__blk_alloc_disk()` returned.
/// - `(*disk).fops` points to `DiskOps::<D>::TABLE`, whose `free_disk`
///   completes `(*disk).private_data`, which points to `released`, an
///   initialized completion.
pub(crate) struct ReadOnlyDisk<D: ServeRead> {
    disk: NonNull<bindings::gendisk>,
    /// Completed by `disk_release()` (through `free_disk`) after its last
    /// read of `fops`. Boxed: its address is in the gendisk.
    released: KBox<Opaque<bindings::completion>>,
    _driver: PhantomData<D>,
}

// SAFETY: The gendisk is owned by this value and only touched in `add` and
// `drop` (which may run on any thread: the C functions it calls only require
// process context); the block layer synchronizes everything else. `D` is
// never instantiated (its functions are called from `submit_bio`).
unsafe impl<D: ServeRead> Send for ReadOnlyDisk<D> {}
// SAFETY: No `&self` method touches the gendisk.
unsafe impl<D: ServeRead> Sync for ReadOnlyDisk<D> {}

impl<D: ServeRead> ReadOnlyDisk<D> {
    /// Allocate the disk `name` (at most 31 bytes, no NUL) of
    /// `capacity_sectors` 512-byte sectors, with `limits`, and add it to the
    /// system.
    pub(crate) fn add(name: &str, capacity_sectors: u64, limits: &DiskLimits) -> Result<Self> {
        let name = name.as_bytes();
        if name.len() > 31 || name.contains(&0) {
            return Err(code::EINVAL);
        }
        limits.check()?;

        // SAFETY: `queue_limits` is plain data (integers, no pointers that C
        // follows when zero); zero means "default" for every field we do not
        // set.
        let mut lim: bindings::queue_limits = unsafe { core::mem::zeroed() };
        lim.logical_block_size = limits.block_size;
        lim.physical_block_size = limits.block_size;
        lim.max_hw_sectors = limits.max_hw_sectors;
        lim.max_segments = limits.max_segments;
        lim.max_segment_size = limits.max_segment_size;
        // What `blk_mq_alloc_queue()` sets for a blk-mq disk, and a bio-based
        // one must ask for: I/O statistics (`/sys/block/*/stat` counts only
        // what `submit_bio` accounts), and `REQ_NOWAIT` (io_uring, RWF_NOWAIT),
        // which `submit_bio` honours: it never sleeps.
        lim.features = BLK_FEAT_IO_STAT | BLK_FEAT_NOWAIT;

        let released = KBox::new(Opaque::uninit(), GFP_KERNEL)?;
        // SAFETY: `lim` is valid for the call; `blk_alloc_queue()` copies it
        // (`q->limits = *lim`) after validating it, and keeps no pointer. The
        // lock class key is a `static`. `NUMA_NO_NODE`: any node.
        let disk = from_err_ptr(unsafe {
            bindings::__blk_alloc_disk(&mut lim, bindings::NUMA_NO_NODE, lock_class())
        })?;
        let disk = NonNull::new(disk).ok_or(code::ENOMEM)?;
        let d = disk.as_ptr();

        // SAFETY: `d` is a valid gendisk that is not yet visible to anyone
        // else (not added), so plain writes to its fields are fine.
        // `DiskOps::<D>::table()` is `'static`. `fops` must be set
        // before `device_add_disk()`, which marks the disk bio-based
        // (`BD_HAS_SUBMIT_BIO`) when `fops->submit_bio` is set (7.3 fails
        // without it). `released` is valid, writable memory for a
        // completion, boxed (it does not move) and kept with the disk until
        // after its release. The name is at most 31 bytes, and `disk_name`
        // (32 bytes) is zeroed by `__alloc_disk_node()` (`kzalloc_node()`), so
        // it stays NUL-terminated.
        unsafe {
            (*d).fops = DiskOps::<D>::table();
            c_helpers::khb_disk_release_init(d, released.get());
            (*d).flags |= bindings::GENHD_FL_NO_PART as c_int;
            for (dst, &src) in (*d).disk_name.iter_mut().zip(name) {
                *dst = src as _;
            }
            bindings::set_capacity(d, capacity_sectors);
            bindings::set_disk_ro(d, true);
        }

        // SAFETY: `d` is a fully set up gendisk allocated above, not added yet.
        if let Err(e) = to_result(unsafe {
            bindings::device_add_disk(core::ptr::null_mut(), d, core::ptr::null_mut())
        }) {
            // SAFETY: Not added (`GD_ADDED` unset). Ours is the last
            // reference: nothing can take one before `add_disk_final()`, which
            // makes the disk openable (`bdev_add()`) and announces it, and
            // every failure of `device_add_disk()` comes before it. So
            // `put_disk()` releases it here; `disk_release()` frees the queue
            // (`blk_put_queue()`) and, the disk never having been added, does
            // not call `free_disk`, so nothing waits for `released`.
            unsafe { bindings::put_disk(d) };
            return Err(e);
        }
        // INVARIANT: allocated, added, neither deleted nor put; `fops` is
        // `DiskOps::<D>::TABLE`; `private_data` is `released`, initialized by
        // `khb_disk_release_init()`.
        Ok(ReadOnlyDisk {
            disk,
            released,
            _driver: PhantomData,
        })
    }
}

impl<D: ServeRead> Drop for ReadOnlyDisk<D> {
    fn drop(&mut self) {
        // SAFETY: By the type invariants the disk is added and not yet
        // deleted or put, and this is the only place that does either, once.
        // `del_gendisk()` requires process context (it sleeps), which `drop`
        // of a module's data has; it does not require the disk to be closed:
        // it unhashes the block device so that new opens fail, marks the disk
        // dead and freezes the queue, waiting until every `submit_bio` call
        // has returned (`__submit_bio()` holds a queue reference around it;
        // they only copy from `'static` data), and leaves it frozen, the disk
        // owning its queue (`GD_OWNS_QUEUE`), so that new bios fail in
        // `bio_queue_enter()` without reaching the driver.
        // `put_disk()` drops our reference; whoever drops the last one
        // (we, or an opener that failed on the dead disk) runs
        // `disk_release()`, which reads `fops` and then, the disk having been
        // added, calls `free_disk`, which completes `released`. Waiting for
        // that keeps the module, and so `fops`, alive until then; the wait is
        // short, since an open disk pins the module (rmmod never gets here).
        // No module code runs after the wake-up: `khb_free_disk` jumps to
        // `complete()`, which returns into `disk_release()` (helpers.c).
        // `released` is freed only after this body, once `complete()` has let
        // go of it (a completion may be freed as soon as its waiter returns).
        unsafe {
            bindings::del_gendisk(self.disk.as_ptr());
            bindings::put_disk(self.disk.as_ptr());
            bindings::wait_for_completion(self.released.get());
        }
    }
}

/// What a bio asks for.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    Read,
    /// Anything else (a write, from a kernel user such as device mapper:
    /// `bio_check_ro()` only warns), with `REQ_OP_*`.
    Other(u32),
}

/// I/O accounting started for a bio ([`BioView::start_io_acct`]): the start
/// time, or `None` with the queue's `iostats` off.
struct IoAcct(Option<c_ulong>);

/// A view of a bio the driver owns, in `submit_bio`, for reading its fields
/// and filling its data buffers.
///
/// Fields are read one at a time through the raw pointer, and no
/// `&bindings::bio` is made: a shared reference to the C struct would
/// promise that no field changes while it lives, and other CPUs may write
/// fields of a bio the driver owns (`__bi_remaining`, and `bi_status` of a
/// chained parent, when a child completes).
///
/// # Invariants
///
/// For `'a`, `bio` points to a valid bio handed to `fops->submit_bio` and
/// not yet completed with `bio_endio()`, in the call of [`submit_bio`] that
/// made the view. While the driver owns it, nothing changes `bi_opf`,
/// `bi_bdev`, `bi_iter`, `bi_io_vec` or its vector (the block layer is done
/// with them once it calls the driver, and they change again only in
/// `bio_endio()`'s callbacks).
pub(crate) struct BioView<'a> {
    bio: *const bindings::bio,
    _borrow: PhantomData<&'a ()>,
}

impl<'a> BioView<'a> {
    /// # Safety
    ///
    /// `bio` is a bio that `fops->submit_bio` got, and `bio_endio()` is not
    /// called on it during `'a`.
    unsafe fn new(bio: *const bindings::bio) -> Self {
        // INVARIANT: By the safety requirements.
        BioView {
            bio,
            _borrow: PhantomData,
        }
    }

    /// `bio_op(bio)`.
    pub(crate) fn op(&self) -> Op {
        // SAFETY: By the type invariants `bio` is valid for `'a` and
        // `bi_opf` does not change meanwhile; one field is read, no
        // reference to the struct is made.
        let opf = unsafe { core::ptr::addr_of!((*self.bio).bi_opf).read() };
        match opf & ((1 << bindings::REQ_OP_BITS) - 1) {
            bindings::req_op_REQ_OP_READ => Op::Read,
            other => Op::Other(other),
        }
    }

    /// `bio->bi_iter`, a copy.
    fn iter(&self) -> bindings::bvec_iter {
        // SAFETY: As in `op()`, for `bi_iter`.
        unsafe { core::ptr::addr_of!((*self.bio).bi_iter).read() }
    }

    /// `bio->bi_iter.bi_sector`: first 512-byte sector (of the disk: it has
    /// no partitions).
    pub(crate) fn sector(&self) -> u64 {
        self.iter().bi_sector
    }

    /// `bio->bi_iter.bi_size`: length in bytes.
    pub(crate) fn bytes(&self) -> u32 {
        self.iter().bi_size
    }

    /// `bio_start_io_acct(bio)` where the queue's `iostats` is on (as
    /// `blk_queue_io_stat()` is checked by pmem and device mapper).
    fn start_io_acct(&self) -> IoAcct {
        // SAFETY: By the type invariants `bio` is valid and `bi_bdev`
        // (this disk's whole-disk `block_device`, whose `bd_disk` is the
        // gendisk, whose `queue` lives until `disk_release()`) does not change.
        // `limits` of the queue change only while it is frozen
        // (`queue_limits_commit_update_frozen()`, the sysfs path; nothing else
        // commits limits of this queue after `__blk_alloc_disk()`), which
        // waits for the queue reference `__submit_bio()` holds around our
        // call. One field is read, no reference to a struct is made.
        let io_stat = unsafe {
            let q = (*(*(*self.bio).bi_bdev).bd_disk).queue;
            core::ptr::addr_of!((*q).limits.features).read() & BLK_FEAT_IO_STAT != 0
        };
        if !io_stat {
            return IoAcct(None);
        }
        // SAFETY: `bio` is valid (type invariants); `bio_start_io_acct()`
        // reads `bi_bdev` and `bi_opf` and updates the disk's per-CPU stats.
        let start = unsafe { bindings::bio_start_io_acct(self.bio.cast_mut()) };
        IoAcct(Some(start))
    }

    /// `bio_end_io_acct(bio, start)` (a static inline) for [`start_io_acct`]:
    /// counts the I/O, its sectors (`bi_iter.bi_size`, which the driver does
    /// not advance) and time.
    ///
    /// [`start_io_acct`]: BioView::start_io_acct
    fn end_io_acct(&self, acct: IoAcct) {
        if let IoAcct(Some(start)) = acct {
            // SAFETY: `bio` is valid (type invariants) and accounting was
            // started on it; `bio_end_io_acct()` is this call with the bio's
            // own `bi_bdev`, the one `bio_start_io_acct()` counted it on.
            unsafe {
                let bdev = core::ptr::addr_of!((*self.bio).bi_bdev).read();
                bindings::bio_end_io_acct_remapped(self.bio.cast_mut(), start, bdev)
            }
        }
    }

    /// Call `f` on each data segment of a read bio in order, split so that
    /// none crosses a page (like `bio_for_each_segment()`). Returns the
    /// number of bytes visited; stops at the first error from `f`. Fails with
    /// EIO for any other op (their buffers are data to write out, not to be
    /// overwritten) and on a vector that breaks the block layer's own rules.
    pub(crate) fn for_each_segment(
        &self,
        mut f: impl FnMut(&Segment<'_>) -> Result,
    ) -> Result<u64> {
        if self.op() != Op::Read {
            return Err(EIO);
        }
        let page_size = PAGE_SIZE as u32;
        let mut total = 0u64;
        // A copy: the bio's own iterator stays as it is, for the accounting
        // (`bio_sectors()`) and for the submitter.
        let mut iter = self.iter();
        // SAFETY: As in `op()`, for `bi_io_vec`.
        let vecs = unsafe { core::ptr::addr_of!((*self.bio).bi_io_vec).read() };
        let mut done = bvec_done(&iter);
        while iter.bi_size > 0 {
            // SAFETY: While `bi_size` is non-zero, `bi_idx` indexes a valid
            // `bio_vec` of this bio's vector (the invariant
            // `bio_for_each_segment()` relies on too), which does not change
            // while the driver owns the bio (type invariants).
            let bv = unsafe { vecs.add(iter.bi_idx as usize).read() };
            let left_in_bvec = bv.bv_len.checked_sub(done).ok_or(EIO)?;
            // Offset from the start of `bv_page`; a multi-page bvec goes
            // past the first page.
            let offset = bv.bv_offset.checked_add(done).ok_or(EIO)?;
            let in_page = offset % page_size;
            let len = left_in_bvec.min(iter.bi_size).min(page_size - in_page);
            if len == 0 {
                return Err(EIO);
            }
            // Which page: a bio_vec is one physically contiguous range, so
            // its n-th page is `nth_page(bv_page, n)`. 6.12's own segment
            // walk (`bio_for_each_segment()` -> `bvec_iter_page()`,
            // include/linux/bvec.h) computes `bv_page + n` instead, relying
            // on the rule stated at `struct bio_vec` that the two are equal
            // for every page a bvec covers. The block layer keeps that rule
            // where it builds multi-page bvecs: `bvec_try_merge_page()`
            // (block/bio.c) merges a page into a bvec only if it is
            // physically contiguous *and* `bv_page + bv_end / PAGE_SIZE ==
            // page + off / PAGE_SIZE`, and for direct I/O
            // `get_contig_folio_len()` (block/bio.c; 7.3: lib/iov_iter.c)
            // joins only pages with `pages[j] == pages[j - 1] + 1`. A bvec
            // added in one piece (`bio_add_folio()` -> `folio_page()`,
            // which is `nth_page()`; 7.3: `+ n`)
            // lies within one folio, whose struct pages are one array
            // unless the folio is larger than a memory section (a gigantic
            // hugetlb page) on SPARSEMEM without VMEMMAP: the case where
            // `bv_page + n` would be wrong and `nth_page()` is not. So we
            // call `nth_page()` (through `helpers.c`, it is a macro): equal
            // to `bv_page + n` wherever the C walk is right, and right in
            // that case too; on SPARSEMEM_VMEMMAP and FLATMEM it is that
            // addition. 7.3 has no `nth_page()` (gone in 6.18) and states
            // the rule outright at `struct bio_vec` ("All pages within a
            // bio_vec starting from @bv_page are contiguous and can simply
            // be iterated"); `khb_nth_page()` is `bv_page + n` there.
            // SAFETY: `bv_page` is a valid page and `offset / PAGE_SIZE`
            // pages after it are within the bvec (`offset < bv_offset +
            // bv_len`), physically contiguous with it: `khb_nth_page()` only
            // computes, it dereferences nothing.
            let page =
                unsafe { c_helpers::khb_nth_page(bv.bv_page, (offset / page_size) as c_ulong) };
            // SAFETY: `page` is a valid page of the bio's buffer.
            let addr = unsafe { bindings::kmap_local_page(page) }.cast::<u8>();
            // SAFETY: `in_page < PAGE_SIZE`: the result stays within the
            // mapped page.
            let ptr = unsafe { addr.add(in_page as usize) };
            // INVARIANT: `[ptr, ptr + len)` is within the page just mapped
            // (`len <= PAGE_SIZE - in_page`), which is part of the data
            // buffer of a read bio (checked above); it stays mapped until
            // `kunmap_local` below, after the segment is gone.
            let seg = Segment {
                ptr,
                len: len as usize,
                _page: PhantomData,
            };
            let r = f(&seg);
            // SAFETY: `page` is a valid page; after the CPU wrote to it
            // through a kernel mapping, before unmapping, as
            // `memcpy_to_page()` does (include/linux/highmem.h). A no-op
            // on x86.
            unsafe { c_helpers::khb_flush_dcache_page(page) };
            // SAFETY: `addr` came from `kmap_local_page()` just above, no
            // other local mapping was made since (they nest), and the
            // segment that pointed into it is gone.
            unsafe { bindings::kunmap_local(addr.cast()) };
            r?;
            total += u64::from(len);
            iter.bi_size -= len;
            done += len;
            if done == bv.bv_len {
                iter.bi_idx += 1;
                done = 0;
            }
        }
        Ok(total)
    }
}

/// Bytes of the current bvec that `iter` has done: `bi_bvec_done` in 6.12,
/// renamed `bi_offset` in 7.3 (same meaning, include/linux/bvec.h).
#[cfg(not(khb_api_7_3))]
fn bvec_done(iter: &bindings::bvec_iter) -> u32 {
    iter.bi_bvec_done
}
#[cfg(khb_api_7_3)]
fn bvec_done(iter: &bindings::bvec_iter) -> u32 {
    iter.bi_offset
}

/// One mapped piece of a read bio's buffer, within one page.
///
/// Only written through raw copies: the memory may be a user buffer
/// (`O_DIRECT`) that other threads touch meanwhile, or appear in two
/// segments of one bio, so no `&mut [u8]` to it may exist.
///
/// # Invariants
///
/// For `'a`, `[ptr, ptr + len)` is mapped, writable kernel memory within one
/// page of the data buffer of a read bio the driver owns. No Rust
/// reference to that memory exists.
pub(crate) struct Segment<'a> {
    ptr: *mut u8,
    len: usize,
    _page: PhantomData<&'a mut u8>,
}

impl Segment<'_> {
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Fill the segment: `src` first, zeros for the rest (`src` longer than
    /// the segment is cut).
    pub(crate) fn fill_from(&self, src: &[u8]) {
        let n = src.len().min(self.len);
        // SAFETY: By the type invariants `[ptr, ptr + len)` is mapped and
        // writable, and no reference to it exists; `n <= len`, so both writes
        // stay in it. `src` is Rust memory (the image), not the bio's
        // buffer, so the ranges do not overlap.
        unsafe {
            core::ptr::copy_nonoverlapping(src.as_ptr(), self.ptr, n);
            core::ptr::write_bytes(self.ptr.add(n), 0, self.len - n);
        }
    }
}
