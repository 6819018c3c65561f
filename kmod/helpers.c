// SPDX-License-Identifier: GPL-2.0
/*
 * The C half of kheaders_blk.ko: the kernel functions the Rust half needs
 * that kernel::bindings cannot reach on every architecture, because they
 * are macros or static inline functions, which bindgen does not generate:
 *
 * - flush_dcache_page(): an exported function on arm64, but a static
 *   inline on riscv (real work: clears PG_dcache_clean) and on x86,
 *   loongarch and um (asm-generic/cacheflush.h, a no-op).
 * - nth_page(): a macro (include/linux/mm.h).
 * - init_completion(): a static inline; and the disk's free_disk hook,
 *   which completes it.
 *
 * It also checks, at build time, the values blk_ext.rs gives the C macros
 * it uses (bindgen generates none of them).
 *
 * The Rust declarations are in blk_ext.rs, the only Rust file that touches
 * bindings; keep the two in step. Not exported: they are linked into this
 * module only.
 */

#include <linux/blkdev.h>
#include <linux/completion.h>
#include <linux/highmem.h>
#include <linux/mm.h>

/* blk_ext.rs: BLK_STS_IOERR, BLK_FEAT_IO_STAT, BLK_FEAT_NOWAIT. */
static_assert(BLK_STS_IOERR == (__force blk_status_t)10);
static_assert(BLK_FEAT_IO_STAT == (__force blk_features_t)(1u << 4));
static_assert(BLK_FEAT_NOWAIT == (__force blk_features_t)(1u << 7));

void khb_flush_dcache_page(struct page *page);
struct page *khb_nth_page(struct page *page, unsigned long n);
void khb_disk_release_init(struct gendisk *disk, struct completion *released);
void khb_free_disk(struct gendisk *disk);

/* After the CPU wrote to @page through a kernel mapping, as memcpy_to_page() does. */
void khb_flush_dcache_page(struct page *page)
{
	flush_dcache_page(page);
}

/*
 * The @n-th page after @page, for pages that are physically contiguous:
 * plain pointer arithmetic where the struct pages are one array
 * (SPARSEMEM_VMEMMAP, FLATMEM), through the pfn on SPARSEMEM without
 * VMEMMAP, where they are one array per memory section. Kernels without
 * nth_page() (7.3; removed in 6.18) guarantee the array for the pages of
 * one bio_vec ("All pages within a bio_vec starting from @bv_page are
 * contiguous", include/linux/bvec.h), which is all the module asks for.
 */
struct page *khb_nth_page(struct page *page, unsigned long n)
{
#ifdef nth_page
	return nth_page(page, n);
#else
	return page + n;
#endif
}

/*
 * The last reference to an added disk can go after put_disk() returned (an
 * opener that raced with del_gendisk() holds it; DEBUG_KOBJECT_RELEASE
 * delays every release by seconds), and disk_release() (block/genhd.c) then
 * reads fops, which is module data. It calls fops->free_disk just after
 * that read: khb_free_disk() completes @released, which ReadOnlyDisk's drop
 * waits for, so the module outlives the read.
 */
void khb_disk_release_init(struct gendisk *disk, struct completion *released)
{
	init_completion(released);
	disk->private_data = released;
}

/*
 * fops->free_disk. The waiter may free the module as soon as complete() has
 * released the completion's lock, while this task may still be inside
 * complete() (preempted there, say). So complete() must not return here: it
 * is a tail call (a jump, compiled with -foptimize-sibling-calls even where
 * frame pointers turn that off; see Kbuild), and returns straight into
 * disk_release(). tests/vm/module.sh checks the emitted jump. An RCU grace
 * period would not cover this: a task preempted outside an RCU read-side
 * section does not hold one up.
 */
void khb_free_disk(struct gendisk *disk)
{
	complete(disk->private_data);
}
