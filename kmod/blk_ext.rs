// SPDX-License-Identifier: GPL-2.0

//! Safe wrappers for what the Rust block API (and `kernel::error`) of 6.12 and 7.3 lacks. This
//! is the only Rust file that touches `kernel::bindings`; `helpers.c` is its C half (declared in
//! [`c_helpers`]), for the kernel functions that bindgen cannot generate on every architecture.
//!
//! It is also the only Rust file that knows which kernel it is built against: what differs
//! between the two APIs is behind `cfg(khb_api_7_3)`, which `Kbuild` sets for trees after 6.12
//! (docs/design.md, "6.12 and 7.3"), so that `driver.rs` is the same for both:
//!
//! - [`ServeRead`] + [`Queue`]: the blk-mq `Operations` (7.3 adds `QueueData` and `complete`);
//! - [`module_with_author!`]: `module!` (7.3 spells the author key `authors: [...]`);
//! - the module pointer in [`DISK_OPS`] (7.3: a const of `ModuleMetadata`, not a static),
//!   the lock class ([`lock_class`]; 7.3: pinned, with a public `as_ptr`), the queue's
//!   `queuedata` ([`queue_data`]) and `bvec_iter`'s `bi_bvec_done` ([`bvec_done`]; 7.3:
//!   `bi_offset`).
//!
//! - [`DiskOps`] + [`ReadOnlyDisk`]: like `GenDiskBuilder` + `GenDisk`, but read-only at
//!   the block layer, `BLKROSET` to read-write refused, no partition scan, queue limits
//!   chosen by the driver ([`DiskLimits`]), and `fops.owner` set so that an open or
//!   mounted disk pins the module (6.12's builder leaves `owner` null: `rmmod` then
//!   succeeds under a mount and the next access oopses).
//! - [`tag_set_without_default_scheduler`]: `TagSet::new` plus
//!   `BLK_MQ_F_NO_SCHED_BY_DEFAULT`, which 6.12's `TagSet::new` cannot set.
//! - [`RequestView`]: a request's op, position and length, and its data
//!   segments mapped one page at a time as [`Segment`]s (what C gets from
//!   `blk_rq_pos()`, `req_op()`, `rq_for_each_segment()` and `memcpy_to_page()`).
//!
//! Shaped after the out-of-tree upstream work (`Request::sector()`, segment
//! iteration) so that the driver can move to it when the kernel grows it.
//!
//! Kernel functions cited in comments are those of Linux 6.12 and, unless a comment says
//! otherwise, unchanged in 7.3 in what the comment relies on.

use core::marker::PhantomData;
use core::mem::{align_of, size_of};
use core::ptr::NonNull;

use kernel::bindings;
use kernel::block::mq::{Operations, Request, TagSet};
use kernel::error::{code, from_err_ptr, to_result, Error, Result};
use kernel::ffi::{c_int, c_ulong, c_void};
use kernel::page::PAGE_SIZE;
use kernel::prelude::*;
#[cfg(khb_api_7_3)]
use kernel::sync::aref::ARef;
use kernel::sync::Arc;
#[cfg(not(khb_api_7_3))]
use kernel::types::ARef;
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

/// What a driver of a [`ReadOnlyDisk`] provides: serving one request.
pub(crate) trait ServeRead: Send + Sync + 'static {
    /// Fill `rq` (or fail it): `Ok` ends it successfully, an error ends it
    /// with that error.
    fn serve(rq: &RequestView<'_>) -> Result;
}

/// The blk-mq operations of a disk served by `D`.
pub(crate) struct Queue<D>(PhantomData<D>);

/// `queue_rq` for both APIs: serve the request and end it.
fn queue_rq<D: ServeRead>(rq: ARef<Request<Queue<D>>>) -> Result {
    // On error the ARef is dropped unended and the block layer completes
    // the request with the error.
    D::serve(&RequestView::new(&rq))?;
    Request::end_ok(rq).map_err(|_| EIO)
}

#[cfg(not(khb_api_7_3))]
#[vtable]
impl<D: ServeRead> Operations for Queue<D> {
    fn queue_rq(rq: ARef<Request<Self>>, _is_last: bool) -> Result {
        queue_rq(rq)
    }

    fn commit_rqs() {}
}

/// 7.3's callbacks borrow `QueueData` from the queue's `queuedata`: `()`
/// here, which [`ReadOnlyDisk::add`] puts there ([`queue_data`]).
#[cfg(khb_api_7_3)]
#[vtable]
impl<D: ServeRead> Operations for Queue<D> {
    type QueueData = ();

    fn queue_rq((): (), rq: ARef<Request<Self>>, _is_last: bool) -> Result {
        queue_rq(rq)
    }

    fn commit_rqs((): ()) {}

    /// Reached only through `Request::complete()`, which this driver never
    /// calls: requests are ended in `queue_rq`.
    fn complete(rq: ARef<Request<Self>>) {
        let _ = Request::end_ok(rq);
    }
}

/// The `queuedata` of the disk's queue. 6.12 reads none. 7.3's `Operations`
/// callbacks pass `T::QueueData::borrow(queuedata)` to the driver, which
/// requires a pointer from `into_foreign()`: that of `()` (a dangling
/// pointer, nothing owned, so nothing to take back on drop).
#[cfg(not(khb_api_7_3))]
fn queue_data() -> *mut c_void {
    core::ptr::null_mut()
}
#[cfg(khb_api_7_3)]
fn queue_data() -> *mut c_void {
    kernel::types::ForeignOwnable::into_foreign(())
}

/// A lock class key for the disk's queue, `static`, as `__blk_mq_alloc_disk()` wants.
#[cfg(not(khb_api_7_3))]
fn lock_class() -> *mut bindings::lock_class_key {
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

// Layout checks for the pointer casts below: each cast relies on the Rust type
// being `#[repr(transparent)]` over (an `Opaque` of) the C type, which 6.12
// and 7.3 document but do not export an accessor for. A change of layout
// fails the build instead of corrupting memory.
//
// `TagSet<T>` and `Request<T>` are generic, so they are checked per `T` by
// [`Layout`], whose constants are evaluated (at compile time) when the
// functions that use them are instantiated. (`LockClassKey`: in
// [`lock_class`].)
struct Layout<T>(PhantomData<T>);

impl<T: Operations> Layout<T> {
    /// `TagSet<T>` -> `blk_mq_tag_set`.
    const TAG_SET: () = assert!(
        size_of::<TagSet<T>>() == size_of::<bindings::blk_mq_tag_set>()
            && align_of::<TagSet<T>>() == align_of::<bindings::blk_mq_tag_set>()
    );
    /// `Request<T>` -> `request`.
    const REQUEST: () = assert!(
        size_of::<Request<T>>() == size_of::<bindings::request>()
            && align_of::<Request<T>>() == align_of::<bindings::request>()
    );
}

/// The C tag set behind `set`. 6.12 and 7.3 keep `TagSet::raw_tag_set()` crate-private.
fn raw_tag_set<T: Operations>(set: &TagSet<T>) -> *mut bindings::blk_mq_tag_set {
    let () = Layout::<T>::TAG_SET;
    // `TagSet<T>` is `#[repr(transparent)]` over `Opaque<blk_mq_tag_set>` (plus
    // a `PhantomData`), and `Opaque<U>` has the layout of `U`: same address.
    // The C struct is inside an `UnsafeCell` (`Opaque`), so writing through a
    // pointer derived from `&TagSet` is allowed where the C rules allow it.
    (set as *const TagSet<T>).cast_mut().cast()
}

/// `EBADMSG`, which 6.12's `kernel::error::code` does not list (7.3's does).
pub(crate) fn ebadmsg() -> Error {
    Error::from_errno(-(bindings::EBADMSG as c_int))
}

/// [`TagSet::new`], then `BLK_MQ_F_NO_SCHED_BY_DEFAULT` on the tag set: a
/// queue on it starts with no I/O scheduler ("none").
///
/// Without the flag, a queue with one hardware queue gets mq-deadline where
/// the kernel has it (`elevator_get_default()`, block/elevator.c; 7.3:
/// `elevator_set_default()`), which for a memory copy only adds locking and
/// reordering. `TagSet::new` has no flags argument (6.12 sets
/// `BLK_MQ_F_SHOULD_MERGE`, 7.3, where merging is the default, none), so the
/// flag is set right after `blk_mq_alloc_tag_set()`; it is read when a disk
/// is added (`device_add_disk()` -> `elevator_init_mq()` ->
/// `elevator_get_default()`; 7.3: `device_add_disk()` ->
/// `blk_register_queue()` -> `elevator_set_default()`) and copied into each
/// `hctx->flags` when a queue is allocated (`blk_mq_alloc_hctx()`,
/// block/blk-mq.c), both of which come later. `blk_mq_alloc_tag_set()`
/// itself reads only other bits (6.12: `BLOCKING`, `TAG_HCTX_SHARED`, the
/// allocation policy; 7.3: `BLOCKING`). A user can still choose a scheduler
/// through sysfs.
pub(crate) fn tag_set_without_default_scheduler<D: ServeRead>(
    nr_hw_queues: u32,
    num_tags: u32,
    num_maps: u32,
) -> impl PinInit<TagSet<Queue<D>>, Error> {
    TagSet::new(nr_hw_queues, num_tags, num_maps).pin_chain(|set| {
        let raw = raw_tag_set(&set);
        // SAFETY: `pin_chain` runs this after `TagSet::new` initialized the tag
        // set (`blk_mq_alloc_tag_set()` succeeded), so `raw` points to a valid
        // `blk_mq_tag_set`. We hold the only reference (`Pin<&mut>`), and no
        // request queue uses the set yet (a queue is attached only by
        // `blk_mq_alloc_queue()`, and `blk_mq_alloc_tag_set()` puts the set on
        // no global list), so nothing in C reads or writes `flags`
        // concurrently; the write is to one field, not through a reference to
        // the whole struct.
        unsafe { (*raw).flags |= bindings::BLK_MQ_F_NO_SCHED_BY_DEFAULT };
        Ok(())
    })
}

/// The disk's `block_device_operations`: `owner` set, so that an open or
/// mounted disk pins the module, and BLKROSET to read-write refused.
///
/// A `static` of the module ([`DISK_OPS`]), as C drivers have. The gendisk may be
/// released after `put_disk()` (a racing opener holds the last reference)
/// and `disk_release()` reads `fops` then: its `free_disk` hook tells
/// [`ReadOnlyDisk`]'s drop that this has happened, so the module (this table
/// and the hook's code) outlives every use.
#[repr(transparent)]
struct DiskOps(bindings::block_device_operations);

// SAFETY: Never mutated after construction; the C side only reads it.
unsafe impl Sync for DiskOps {}

/// The module's disk operations. `module!` gives the module's `ThisModule`
/// as a `static` at the crate root in 6.12, as a const of
/// `ModuleMetadata` in 7.3.
#[cfg(not(khb_api_7_3))]
static DISK_OPS: DiskOps = DiskOps::new(&crate::THIS_MODULE);
#[cfg(khb_api_7_3)]
static DISK_OPS: DiskOps =
    DiskOps::new(&<crate::LocalModule as kernel::ModuleMetadata>::THIS_MODULE);

impl DiskOps {
    const fn new(owner: &ThisModule) -> Self {
        // SAFETY: All-zero is a valid `block_device_operations` (no
        // callbacks, null pointers).
        let mut ops: bindings::block_device_operations = unsafe { core::mem::zeroed() };
        ops.owner = owner.as_ptr();
        ops.set_read_only = Some(refuse_read_write);
        ops.free_disk = Some(c_helpers::khb_free_disk);
        DiskOps(ops)
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

/// The queue limits [`ReadOnlyDisk::add`] sets; every other limit is the
/// block layer's default (`blk_validate_limits()`, block/blk-settings.c):
/// no discard, no write-zeroes, no write cache, non-rotational.
pub(crate) struct DiskLimits {
    /// Logical and physical block size: a power of two from 512 to `PAGE_SIZE`.
    pub(crate) block_size: u32,
    /// Largest request, in 512-byte sectors: at least one page and one block.
    /// The block layer's soft limit (`max_sectors`, what file system I/O is
    /// split at) is this, capped at `BLK_DEF_MAX_SECTORS_CAP` (1280 KiB).
    pub(crate) max_hw_sectors: u32,
    /// Most data segments in one request (at least 1).
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

/// A registered, read-only blk-mq disk. Deleted on drop.
///
/// # Invariants
///
/// - `disk` points to a gendisk that `__blk_mq_alloc_disk()` allocated on
///   `_tagset` and `device_add_disk()` added successfully, and that has not
///   been deleted (`del_gendisk()`) or put (`put_disk()`): this value owns
///   the reference `__blk_mq_alloc_disk()` returned.
/// - `(*disk).fops` points to [`DISK_OPS`], whose `free_disk`
///   completes `(*disk).private_data`, which points to `released`, an
///   initialized completion.
/// - `_tagset` is the tag set the disk's queue was allocated on.
/// - The queue's `queuedata` is [`queue_data()`]: for 7.3, the `()` that
///   [`Queue`]'s callbacks borrow (6.12: null, not read).
pub(crate) struct ReadOnlyDisk<D: ServeRead> {
    disk: NonNull<bindings::gendisk>,
    /// Completed by `disk_release()` (through `free_disk`) after its last
    /// read of `fops`. Boxed: its address is in the gendisk.
    released: KBox<Opaque<bindings::completion>>,
    /// The queue refers to the tag set until `del_gendisk()` detaches it
    /// (`blk_mq_exit_queue()`); kept until after that in `drop`.
    _tagset: Arc<TagSet<Queue<D>>>,
}

// SAFETY: The gendisk is owned by this value and only touched in `add` and
// `drop` (which may run on any thread: the C functions it calls only require
// process context); the block layer synchronizes everything else.
unsafe impl<D: ServeRead> Send for ReadOnlyDisk<D> {}
// SAFETY: No `&self` method touches the gendisk.
unsafe impl<D: ServeRead> Sync for ReadOnlyDisk<D> {}

impl<D: ServeRead> ReadOnlyDisk<D> {
    /// Allocate the disk `name` (at most 31 bytes, no NUL) on `tagset`, of
    /// `capacity_sectors` 512-byte sectors, with `limits`, and add it to the
    /// system.
    pub(crate) fn add(
        name: &str,
        capacity_sectors: u64,
        limits: &DiskLimits,
        tagset: Arc<TagSet<Queue<D>>>,
    ) -> Result<Self> {
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

        let released = KBox::new(Opaque::uninit(), GFP_KERNEL)?;
        let set = raw_tag_set(&tagset);
        // SAFETY: `set` points to an initialized, pinned tag set that is kept
        // alive (in `_tagset`, or in `tagset` until after `put_disk()` on the
        // error path) for as long as the queue uses it. `lim` is valid for the
        // call (it is copied, not kept). The lock class key is a `static`.
        // `queuedata` is only stored (`q->queuedata`), for the callbacks.
        let disk = from_err_ptr(unsafe {
            bindings::__blk_mq_alloc_disk(set, &mut lim, queue_data(), lock_class())
        })?;
        let disk = NonNull::new(disk).ok_or(code::ENOMEM)?;
        let d = disk.as_ptr();

        // SAFETY: `d` is a valid gendisk that is not yet visible to anyone
        // else (not added), so plain writes to its fields are fine.
        // `DISK_OPS` is `'static`. `released` is valid, writable memory for a
        // completion, boxed (it does not move) and kept with the disk until
        // after its release. The name is at most 31 bytes, and `disk_name`
        // (32 bytes) is zeroed by `__alloc_disk_node()` (`kzalloc_node()`), so
        // it stays NUL-terminated.
        unsafe {
            (*d).fops = &DISK_OPS.0;
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
            // reference: on 6.12 nothing can take one before
            // `add_disk_final()`, which makes the disk openable (`bdev_add()`)
            // and announces it, and every failure of `device_add_disk()`
            // comes before it. So `put_disk()` releases it here, and
            // `disk_release()` tears the queue down with
            // `blk_mq_exit_queue()`, which uses the tag set: `tagset` is still
            // held here and dropped only on return. `free_disk` is not called
            // for a disk never added, so nothing waits for `released`.
            unsafe { bindings::put_disk(d) };
            return Err(e);
        }
        // INVARIANT: allocated on `tagset`, added, neither deleted nor put;
        // `fops` is `DISK_OPS`; `private_data` is `released`, initialized by
        // `khb_disk_release_init()`; `queuedata` is `queue_data()`.
        Ok(ReadOnlyDisk {
            disk,
            released,
            _tagset: tagset,
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
        // dead, drains and freezes the queue so that in-flight requests finish
        // (they only copy from `'static` data) and new ones fail, and, since
        // the disk owns its queue (`GD_OWNS_QUEUE`, set by
        // `__blk_mq_alloc_disk()`), detaches the queue from the tag set
        // (`blk_mq_exit_queue()`). Only then is `_tagset` dropped (after this
        // body), as `disk_release()` (block/genhd.c) expects: "the tagset can
        // be gone by the time the disk is released once it was added".
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

/// What a request asks for.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    Read,
    /// Anything else (write, flush, discard, ...), with `REQ_OP_*`.
    Other(u32),
}

/// A view of a request the driver owns, for reading its fields and filling
/// its data buffers.
///
/// It borrows a `&Request<T>`, which is fine: `Request<T>` wraps
/// `Opaque<request>`, an `UnsafeCell`, so that reference promises nothing
/// about the C fields. What must not exist is a `&bindings::request`: a
/// shared reference to the plain C struct would promise that no field changes
/// while it lives, and the block layer does change fields of a request the
/// driver owns from other threads (the `ref` count; the timeout worker sets
/// `rq_flags |= RQF_TIMED_OUT` and re-arms `deadline`,
/// `blk_mq_rq_timed_out()` in block/blk-mq.c). So fields are read one at a
/// time through the raw pointer.
///
/// # Invariants
///
/// For `'a`, `rq` points to a valid `struct request` that the driver owns:
/// dispatched to `queue_rq` and not yet ended. It comes from the
/// `&'a Request<T>` of the `ARef<Request<T>>` that `queue_rq` got (views are
/// made only there, in [`queue_rq`]; neither 6.12 nor 7.3 has another way
/// to an `ARef` of a dispatched request, such as a `tag_to_rq`); the request
/// is ended either by
/// `Request::end_ok`, which consumes that `ARef`, or by the block layer
/// after `queue_rq` returned an error, when the `ARef` has been dropped.
/// While the driver owns it, the block layer does not change `cmd_flags`,
/// `__sector`, `__data_len` or `bio`, nor the bios' iterators and vectors
/// (they change in `blk_update_request()`, when the driver ends it).
pub(crate) struct RequestView<'a> {
    rq: *const bindings::request,
    _borrow: PhantomData<&'a ()>,
}

impl<'a> RequestView<'a> {
    fn new<T: Operations>(rq: &'a Request<T>) -> Self {
        let () = Layout::<T>::REQUEST;
        // INVARIANT: `Request<T>` is `#[repr(transparent)]` over
        // `Opaque<request>` (layout checked in `Layout`), so the cast gives
        // the C request; `rq` lives for `'a` and the driver owns the request
        // while a `&Request<T>` exists (see the type's invariants).
        let rq = (rq as *const Request<T>).cast::<bindings::request>();
        RequestView {
            rq,
            _borrow: PhantomData,
        }
    }

    /// `req_op(rq)`.
    pub(crate) fn op(&self) -> Op {
        // SAFETY: By the type invariants `rq` is valid for `'a` and
        // `cmd_flags` does not change meanwhile; one field is read, no
        // reference to the struct is made.
        let flags = unsafe { core::ptr::addr_of!((*self.rq).cmd_flags).read() };
        match flags & ((1 << bindings::REQ_OP_BITS) - 1) {
            bindings::req_op_REQ_OP_READ => Op::Read,
            other => Op::Other(other),
        }
    }

    /// `blk_rq_pos(rq)`: first 512-byte sector.
    pub(crate) fn sector(&self) -> u64 {
        // SAFETY: As in `op()`, for `__sector`.
        unsafe { core::ptr::addr_of!((*self.rq).__sector).read() }
    }

    /// `blk_rq_bytes(rq)`.
    pub(crate) fn bytes(&self) -> u32 {
        // SAFETY: As in `op()`, for `__data_len`.
        unsafe { core::ptr::addr_of!((*self.rq).__data_len).read() }
    }

    /// Call `f` on each data segment of a read request in order, split so
    /// that none crosses a page (like `rq_for_each_segment()`). Returns the
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
        // SAFETY: As in `op()`, for `bio` (the request's bio chain is fixed
        // while the driver owns it).
        let mut bio = unsafe { core::ptr::addr_of!((*self.rq).bio).read() };
        while !bio.is_null() {
            // SAFETY: `bio` is `rq->bio` or a `bi_next` of the chain; by the
            // type invariants these bios, their iterators and vectors stay
            // valid and unchanged while the driver owns the request. Fields
            // are copied out, no reference to the bio is made.
            let (mut iter, vecs, next) =
                unsafe { ((*bio).bi_iter, (*bio).bi_io_vec, (*bio).bi_next) };
            let mut done = bvec_done(&iter);
            while iter.bi_size > 0 {
                // SAFETY: While `bi_size` is non-zero, `bi_idx` indexes a valid
                // `bio_vec` of this bio's vector (the invariant
                // `bio_for_each_segment()` relies on too).
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
                // walk (`rq_for_each_segment()` -> `bvec_iter_page()`,
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
                // SAFETY: `page` is a valid page of the request's buffer.
                let addr = unsafe { bindings::kmap_local_page(page) }.cast::<u8>();
                // SAFETY: `in_page < PAGE_SIZE`: the result stays within the
                // mapped page.
                let ptr = unsafe { addr.add(in_page as usize) };
                // INVARIANT: `[ptr, ptr + len)` is within the page just mapped
                // (`len <= PAGE_SIZE - in_page`), which is part of the data
                // buffer of a read request (checked above); it stays mapped
                // until `kunmap_local` below, after the segment is gone.
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
            bio = next;
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

/// One mapped piece of a read request's buffer, within one page.
///
/// Only written through raw copies: the memory may be a user buffer
/// (`O_DIRECT`) that other threads touch meanwhile, or appear in two
/// segments of one request, so no `&mut [u8]` to it may exist.
///
/// # Invariants
///
/// For `'a`, `[ptr, ptr + len)` is mapped, writable kernel memory within one
/// page of the data buffer of a read request the driver owns. No Rust
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
        // stay in it. `src` is Rust memory (the image), not the request's
        // buffer, so the ranges do not overlap.
        unsafe {
            core::ptr::copy_nonoverlapping(src.as_ptr(), self.ptr, n);
            core::ptr::write_bytes(self.ptr.add(n), 0, self.len - n);
        }
    }
}
