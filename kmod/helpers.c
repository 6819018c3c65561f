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
 *
 * The Rust declarations are in blk_ext.rs, the only Rust file that touches
 * bindings; keep the two in step. Not exported: they are linked into this
 * module only.
 */

#include <linux/highmem.h>
#include <linux/mm.h>

void khb_flush_dcache_page(struct page *page);
struct page *khb_nth_page(struct page *page, unsigned long n);

/* After the CPU wrote to @page through a kernel mapping, as memcpy_to_page() does. */
void khb_flush_dcache_page(struct page *page)
{
	flush_dcache_page(page);
}

/*
 * The @n-th page after @page, for pages that are physically contiguous:
 * plain pointer arithmetic where the struct pages are one array
 * (SPARSEMEM_VMEMMAP, FLATMEM), through the pfn on SPARSEMEM without
 * VMEMMAP, where they are one array per memory section.
 */
struct page *khb_nth_page(struct page *page, unsigned long n)
{
	return nth_page(page, n);
}
