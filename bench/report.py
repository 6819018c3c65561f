#!/usr/bin/env python3
"""Turn bench results ("metric variant rep value" lines) into tables, JSON
and a plot; optionally write them into docs/benchmarks.{md,json,png}."""

import argparse
import json
import shutil
import statistics
import sys
from collections import defaultdict
from pathlib import Path

MIB = 1024 * 1024


def load(path):
    data = defaultdict(lambda: defaultdict(list))
    for line in Path(path).read_text().splitlines():
        if not line.strip():
            continue
        metric, variant, _rep, value = line.split()
        data[metric][variant].append(float(value))
    return data


def summary(values):
    return {
        "values": values,
        "median": statistics.median(values),
        "min": min(values),
        "max": max(values),
    }


def tables(d, variants):
    med = lambda m, v: statistics.median(d[m][v])
    spread = lambda m, v: f"{med(m, v):.2f} ({min(d[m][v]):.2f}–{max(d[m][v]):.2f})"
    out = []
    tar = med("size_tarball", "tar.xz")
    unc = med("uncompressed_bytes", "all")
    files = int(med("file_count", "all"))
    out.append(f"Headers: {files} files, {unc / MIB:.1f} MiB uncompressed (comments stripped). "
               f"Compile set: {int(med('compile_set_files', 'all'))} headers (`bench/programs/trace.c`). "
               f"VM: {int(med('vm_cpus', 'all'))} CPUs under QEMU TCG. A variant is layout-block size.\n")

    out.append("### Size\n")
    out.append("| | upstream tar.xz | " + " | ".join(f"`{v}`" for v in variants) + " |")
    out.append("|---|---:|" + "---:|" * len(variants))
    out.append(f"| image bytes | {tar:,.0f} | " + " | ".join(f"{med('size_image', v):,.0f}" for v in variants) + " |")
    out.append("| vs tar.xz | 1.00 | " + " | ".join(f"{med('size_image', v) / tar:.3f}" for v in variants) + " |")
    out.append("| mksquashfs -comp xz, same block size | | " +
               " | ".join(f"{med('size_mksquashfs', v):,.0f}" for v in variants) + " |")
    ko = med("size_ko_upstream", "tar.xz")
    out.append(f"| .ko file | {ko:,.0f} (kheaders.ko) | " + " | ".join(f"{med('size_ko', v):,.0f}" for v in variants) + " |")
    out.append("")

    out.append("### Pack time on the host (seconds, median (min–max))\n")
    out.append("| variant | kheaders-image pack | mksquashfs -comp xz, same block size | ours / mksquashfs |")
    out.append("|---|---:|---:|---:|")
    for v in variants:
        out.append(f"| `{v}` | {spread('pack_ours', v)} | {spread('pack_mksquashfs', v)} | "
                   f"{med('pack_ours', v) / med('pack_mksquashfs', v):.2f} |")
    out.append(f"\nUpstream `gen_kheaders.sh` (copy, perl strip, tar.xz): {spread('pack_gen_kheaders', 'tar.xz')} s; "
               f"kheaders-image (`{variants[0]}`) is {med('pack_gen_kheaders', 'tar.xz') / med('pack_ours', variants[0]):.1f}x faster.")
    out.append("")

    out.append("### Time in the VM (QEMU TCG), cold caches (seconds, median (min–max))\n")
    out.append("Each run: load the module (`insmod kheaders.ko` / `kheaders_blk.ko`), make the headers readable "
               "(`tar -xJf` to tmpfs / `mount`), read. Under TCG these show where the time goes, "
               "not hardware ratios.\n")
    out.append("| workload | stage | tarball | " + " | ".join(f"`{v}`" for v in variants) + " |")
    out.append("|---|---|---:|" + "---:|" * len(variants))
    names = {"first_header": "first header (`include/linux/sched.h`)", "compile_set": "compile set",
             "full_read": "every file"}
    stages = {"load": "module load", "ready": "extract / mount", "read": "read"}
    for m, label in names.items():
        for st, st_label in stages.items():
            out.append(f"| {label} | {st_label} | {spread(m + ':' + st, 'tar.xz')} | " +
                       " | ".join(spread(m + ':' + st, v) for v in variants) + " |")
        tot = lambda v: sum(med(f"{m}:{st}", v) for st in stages)
        out.append(f"| {label} | **total** | **{tot('tar.xz'):.2f}** | " +
                   " | ".join(f"**{tot(v):.2f}**" for v in variants) + " |")
    out.append("")

    if "bcc_first_event" in d:
        out.append("### bcc: from nothing loaded to the first event (TCG)\n")
        out.append("The same kprobe program (`tests/vm/bcc-count-reads.py`, includes `linux/sched.h` and "
                   "`linux/fs.h`). Tarball: bcc loads `kheaders.ko` and extracts the tarball itself. Device: "
                   "`kheaders-mount`, then bcc. Nothing else configured; /tmp is a tmpfs.\n")
        out.append("| | tarball (bcc's extraction) | device (`kheaders-mount`) |")
        out.append("|---|---:|---:|")
        out.append(f"| time to first event, s (median (min–max)) | {spread('bcc_first_event', 'tarball')} | "
                   f"{spread('bcc_first_event', 'device')} |")
        out.append(f"| left behind in /tmp, MiB | {med('bcc_left_bytes', 'tarball') / MIB:.1f} | "
                   f"{med('bcc_left_bytes', 'device') / MIB:.1f} |")
        out.append(f"| of which tmpfs memory (Shmem), MiB | {med('bcc_left_shmem', 'tarball') / MIB:.1f} | "
                   f"{med('bcc_left_shmem', 'device') / MIB:.1f} |")
        out.append(f"| MemAvailable used after drop_caches, MiB | {med('bcc_mem_used_dropped', 'tarball') / MIB:.1f} | "
                   f"{med('bcc_mem_used_dropped', 'device') / MIB:.1f} |")
        out.append("")

    out.append("### Kernel memory after the full read (MiB)\n")
    out.append("| | tarball | " + " | ".join(f"`{v}`" for v in variants) + " |")
    out.append("|---|---:|" + "---:|" * len(variants))
    rows = [("MemAvailable used, after the read", "mem_available_used"),
            ("of which page cache (Cached)", "mem_cached"),
            ("of which tmpfs (Shmem)", "mem_shmem"),
            ("unreclaimable slab (SUnreclaim)", "mem_slab_unreclaimable"),
            ("module in memory (coresize)", "mem_module"),
            ("MemAvailable used, after drop_caches", "mem_available_used_dropped"),
            ("Cached, after drop_caches", "mem_cached_dropped")]
    for label, m in rows:
        out.append(f"| {label} | {med(m, 'tar.xz') / MIB:.1f} | " +
                   " | ".join(f"{med(m, v) / MIB:.1f}" for v in variants) + " |")
    return "\n".join(out) + "\n"


def native_tables(d, kernel, host_kernel):
    """The native tier: ratios against the tarball and read amplification."""
    med = lambda m, v: statistics.median(d[m][v])
    images = [v for v in d["size"] if v != "tar.xz"]
    # Time columns: IMAGE@DEVICE (zram or loop; older results: IMAGE alone, loop).
    variants = [v for v in d["time:first"] if v != "tar.xz"]
    reps = len(d["time:first"]["tar.xz"])
    out = [f"Host kernel {host_kernel} (its own squashfs, fragment cache of 3 blocks, and EROFS); the headers "
           f"of a {kernel} kernel tree, {int(med('files', 'all')):,} files. Images: `includes` and `directory` "
           f"are ours in squashfs-xz (include-graph and directory order), `erofs` ours in EROFS-lz4hc, "
           f"`mkfs.erofs` Debian's erofs-utils (lz4hc, 64 KiB, tail packing). Tarball in RAM (`/dev/shm`); the image "
           f"on a read-only RAM block device with 4 KiB blocks, `@zram` (bio-based, reads complete in the "
           f"reader's context: the closer stand-in for /dev/kheaders0) or `@loop` (over `/dev/shm`; a worker "
           f"thread per request). Every run cold; median of {reps} runs.\n"]
    tar = med("size", "tar.xz")
    out.append("| | upstream tar.xz | " + " | ".join(f"`{l}`" for l in images) + " |")
    out.append("|---|---:|" + "---:|" * len(images))
    out.append(f"| bytes | {tar:,.0f} | " + " | ".join(f"{med('size', l):,.0f} ({med('size', l) / tar:.2f}x)"
                                                     for l in images) + " |")
    out.append("")
    out.append("Time in ms (tarball: extract to tmpfs + read; image: mount + read). "
               "**Ratio** = tarball time / image time: above 1 the image is faster. "
               "**Amp** = bytes the device read / image size.\n")
    head = "| workload | files | tarball ms |"
    rule = "|---|---:|---:|"
    for v in variants:
        head += f" `{v}` ms | ratio | amp |"
        rule += "---:|---:|---:|"
    out.extend([head, rule])
    kernel_sets = sorted(m[5:] for m in d if m.startswith("time:kernel:"))
    names = [("first", "first header (`include/linux/sched.h`)")]
    names += [(m[5:], f"compile set: `bench/programs/{m[5:]}.c`") for m in sorted(d)
              if m.startswith("time:") and m[5:] not in ("first", "every", "every2") and not m[5:].startswith("kernel:")]
    for w, label in names + [("every", "every file, directory order"), ("every2", "every file, 2 parallel readers")]:
        files = {"first": "1", "every": "all", "every2": "all"}.get(w)
        if files is None:
            files = f"{int(med('set_files', w))}"
        row = f"| {label} | {files} | {med('time:' + w, 'tar.xz') * 1000:.0f} |"
        for v in variants:
            row += (f" {med('time:' + w, v) * 1000:.0f} | {med('time:' + w, 'tar.xz') / med('time:' + w, v):.2f} |"
                    f" {med('amp:' + w, v):.2f} |")
        out.append(row)
        if w == names[-1][0] and kernel_sets:
            row = f"| compile sets of {len(kernel_sets)} kernel sources (median; min–max) | | |"
            for v in variants:
                ratios = sorted(med("time:" + k, "tar.xz") / med("time:" + k, v) for k in kernel_sets)
                amps = sorted(med("amp:" + k, v) for k in kernel_sets)
                ms = statistics.median(med("time:" + k, v) * 1000 for k in kernel_sets)
                row += (f" {ms:.0f} | {statistics.median(ratios):.2f} ({ratios[0]:.2f}–{ratios[-1]:.2f}) |"
                        f" {statistics.median(amps):.2f} ({amps[0]:.2f}–{amps[-1]:.2f}) |")
            out.append(row)
    return "\n".join(out) + "\n"


def frontier_points(d):
    """(image, size ratio, compile-set ratio, full-read ratio) for each image
    on zram, with the tarball at (1, 1, 1): compile sets are every program's
    and kernel source's set, their median ratio."""
    med = lambda m, v: statistics.median(d[m][v])
    tar = med("size", "tar.xz")
    sets = [m for m in d if m.startswith("time:") and m[5:] not in ("first", "every", "every2")]
    points = [("tarball", 1.0, 1.0, 1.0)]
    for v in d["time:first"]:
        if v == "tar.xz" or not v.endswith("@zram"):
            continue
        img = v[: -len("@zram")]
        ratio = lambda m: med(m, "tar.xz") / med(m, v)
        points.append((img, med("size", img) / tar, statistics.median(ratio(m) for m in sets), ratio("time:every")))
    return sorted(points, key=lambda p: p[1])


def frontier_table(d):
    pts = frontier_points(d)
    out = ["| image | size vs tar.xz | compile sets (median ratio) | every file (ratio) | on the frontier |",
           "|---|---:|---:|---:|---|"]
    for name, size, cs, full in pts:
        # Pareto: no other point is at least as small and faster on both.
        dominated = any(o[1] <= size and o[2] >= cs and o[3] >= full and o[0] != name and
                        (o[1], o[2], o[3]) != (size, cs, full) for o in pts)
        out.append(f"| `{name}` | {size:.2f} | {cs:.2f} | {full:.2f} | {'' if dominated else 'yes'} |")
    return "\n".join(out) + "\n"


def frontier_plot(d, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pts = frontier_points(d)
    fig, axes = plt.subplots(1, 2, figsize=(13, 5.2))
    for ax, k, title in ((axes[0], 2, "compile sets (median)"), (axes[1], 3, "every file")):
        for p in pts:
            peer = p[0] == "tarball" or p[0].startswith(("mksquashfs", "mkfs.erofs"))
            colour = "#c44e52" if peer else ("#55a868" if p[0].startswith("erofs") else "#4c72b0")
            ax.scatter(p[1], p[k], color=colour, marker="s" if peer else "o")
            ax.annotate(p[0], (p[1], p[k]), fontsize=7, xytext=(3, 3), textcoords="offset points")
        ax.set_xlabel("image size / tar.xz size")
        ax.set_ylabel("times faster than extracting the tarball")
        ax.set_title(title)
        ax.grid(alpha=0.3)
    fig.suptitle("Size against speed, cold, on zram (native; squares: peers, blue: our squashfs, green: our EROFS)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def builtin_tables(d):
    """bench/builtin.sh: the built-in driver against built-in IKHEADERS=y."""
    med = lambda m, v: statistics.median(d[m][v])
    spread = lambda vals, f="{:.2f}": f"{f.format(statistics.median(vals))} ({f.format(min(vals))}–{f.format(max(vals))})"
    out = []
    kinds = [("neither", "neither (both =m)"), ("ikheaders", "`IKHEADERS=y`"),
             ("kheaders_blk", "`KHEADERS_BLK=y` (ours)"), ("both", "both (the x86-builtin test kernel)")]
    out.append("#### Size of the kernel\n")
    out.append("| | " + " | ".join(label for _, label in kinds) + " |")
    out.append("|---|" + "---:|" * len(kinds))
    for metric, what in [("size_vmlinux", "vmlinux"), ("size_rodata", "of which `.rodata`"), ("size_bzimage", "bzImage")]:
        base = med(metric, "neither")
        cells = [f"{base:,.0f}"] + [f"{med(metric, k):,.0f} (+{med(metric, k) - base:,.0f})" for k, _ in kinds[1:]]
        out.append(f"| {what} bytes | " + " | ".join(cells) + " |")
    out.append(f"\n`kheaders_blk.ko` built in the same tree with `KHEADERS_BLK=m`: {med('size_ko', 'kheaders_blk'):,.0f} bytes.\n")

    boots = len(d["boot_to_command"]["builtin"])
    t0 = d["boot_to_command"]["builtin"]
    out.append(f"#### Boot to the first header (QEMU TCG, seconds, median (min–max) of {boots} boots)\n")
    out.append("From the kernel's start (`/proc/uptime`) to the first command, after virtme-ng's init; then "
               "until `include/linux/sched.h` is read. The two run in the same boot, in alternating order, "
               "caches dropped before each.\n")
    out.append("| | built-in `IKHEADERS=y`: extract the tarball to tmpfs, read | built-in `KHEADERS_BLK=y`: mount, read |")
    out.append("|---|---:|---:|")
    out.append(f"| kernel start → first command | {spread(t0)} | {spread(t0)} |")
    tar, dev = d["first_header"]["tarball"], d["first_header"]["device"]
    out.append(f"| first command → header read | {spread(tar)} | {spread(dev)} |")
    out.append(f"| **kernel start → header read** | **{statistics.median([a + b for a, b in zip(t0, tar)]):.2f}** "
               f"| **{statistics.median([a + b for a, b in zip(t0, dev)]):.2f}** |\n")

    out.append("#### Cost at boot and at build time\n")
    out.append("| | |")
    out.append("|---|---:|")
    out.append(f"| `kheaders_blk` initcall (CRC-32 of the image, disk added), TCG | {med('initcall_us', '__kheaders_blk_init') / 1000:.2f} ms |")
    out.append(f"| `ikheaders_init` initcall (sysfs file), TCG | {med('initcall_us', 'ikheaders_init') / 1000:.2f} ms |")
    out.append(f"| image step in the kernel build, headers changed: `kheaders-image pack`, wall (CPU) | "
               f"{med('step_pack', 'wall'):.2f} s ({med('step_pack', 'cpu'):.2f} s) |")
    out.append(f"| image step, nothing changed: the stamp check alone, wall | {med('step_check', 'wall'):.2f} s |")
    return "\n".join(out) + "\n"


def replace_between(md, begin, end, text):
    page = md.read_text()
    if begin not in page or end not in page:
        sys.exit(f"{md} lacks the {begin} / {end} markers")
    head, rest = page.split(begin, 1)
    _, tail = rest.split(end, 1)
    md.write_text(f"{head}{begin}\n{text}{end}{tail}")


def plot(d, variants, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    med = lambda m, v: statistics.median(d[m][v])
    names = ["tar.xz"] + variants
    labels = ["tarball"] + variants
    colors = ["#c44e52"] + ["#4c72b0", "#55a868", "#8172b2", "#64b5cd", "#ccb974"][: len(variants)]
    stage_hatch = {"load": "//", "ready": "..", "read": ""}
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.8))

    ax = axes[0]
    workloads = [("first_header", "first header"), ("compile_set", "compile set"), ("full_read", "every file")]
    width = 0.8 / len(names)
    for i, (v, lab, c) in enumerate(zip(names, labels, colors)):
        xs = [k + i * width for k in range(len(workloads))]
        bottom = [0.0] * len(workloads)
        for st, hatch in stage_hatch.items():
            vals = [med(f"{m}:{st}", v) for m, _ in workloads]
            ax.bar(xs, vals, width, bottom=bottom, color=c, hatch=hatch, edgecolor="white",
                   label=lab if st == "read" else None)
            bottom = [b + x for b, x in zip(bottom, vals)]
    ax.set_xticks([k + width * (len(names) - 1) / 2 for k in range(len(workloads))])
    ax.set_xticklabels([w for _, w in workloads])
    ax.set_ylabel("seconds under TCG (// load, .. extract/mount, plain read)")
    ax.set_title("VM: where the time goes (TCG)")
    ax.legend(fontsize=8)

    ax = axes[1]
    mems = [("mem_available_used", "after full read"), ("mem_available_used_dropped", "after drop_caches")]
    for i, (v, lab, c) in enumerate(zip(names, labels, colors)):
        ax.bar([k + i * width for k in range(len(mems))], [med(m, v) / MIB for m, _ in mems], width, label=lab, color=c)
    ax.set_xticks([k + width * (len(names) - 1) / 2 for k in range(len(mems))])
    ax.set_xticklabels([m for _, m in mems])
    ax.set_ylabel("MiB of MemAvailable used")
    ax.set_title("Kernel memory")

    ax = axes[2]
    sizes = [med("size_tarball", "tar.xz") / MIB] + [med("size_image", v) / MIB for v in variants]
    ax.bar(labels, sizes, color=colors)
    for k, sz in enumerate(sizes):
        ax.text(k, sz, f"{sz:.2f}", ha="center", va="bottom", fontsize=8)
    ax.set_ylabel("MiB")
    ax.set_title("Compressed size")

    fig.suptitle("kheaders_blk (/dev/kheaders0) vs upstream kheaders.ko tarball, same 6.12 build (VM tier)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("results")
    ap.add_argument("--json", required=True)
    ap.add_argument("--plot")
    ap.add_argument("--update-docs", metavar="DOCS_DIR")
    ap.add_argument("--native", action="store_true", help="results of bench/native.sh")
    ap.add_argument("--builtin", action="store_true", help="results of bench/builtin.sh")
    ap.add_argument("--kernel", help="release of the headers (native)")
    ap.add_argument("--host-kernel", help="release of the kernel measured on (native)")
    ap.add_argument("--frontier", metavar="PNG", help="native: the frontier table and plot (bench/native.sh --frontier)")
    a = ap.parse_args()
    d = load(a.results)
    summaries = {m: {v: summary(vals) for v, vals in vs.items()} for m, vs in d.items()}
    if a.builtin or a.native:
        marker = "builtin" if a.builtin else "frontier" if a.frontier else "native"
        text = builtin_tables(d) if a.builtin else native_tables(d, a.kernel, a.host_kernel)
        if a.frontier:
            text = frontier_table(d) + "\n" + text
            frontier_plot(d, a.frontier)
        print(text)
        Path(a.json).write_text(json.dumps(summaries, indent=1) + "\n")
        if a.update_docs:
            docs = Path(a.update_docs)
            replace_between(docs / "benchmarks.md", f"<!-- {marker}:begin -->", f"<!-- {marker}:end -->", text)
            shutil.copy(a.json, docs / f"benchmarks-{marker}.json")
            if a.frontier:
                shutil.copy(a.frontier, docs / "benchmarks-frontier.png")
                print(f"updated {docs / 'benchmarks-frontier.png'}")
            print(f"updated {docs / 'benchmarks.md'} and benchmarks-{marker}.json")
        return
    variants = list(d["size_image"])
    text = tables(d, variants)
    print(text)
    Path(a.json).write_text(json.dumps(summaries, indent=1) + "\n")
    plot(d, variants, a.plot)
    print(f"results: {a.json}\nplot: {a.plot}")
    if a.update_docs:
        docs = Path(a.update_docs)
        md = docs / "benchmarks.md"
        replace_between(md, "<!-- results:begin -->", "<!-- results:end -->", text)
        shutil.copy(a.json, docs / "benchmarks.json")
        shutil.copy(a.plot, docs / "benchmarks.png")
        print(f"updated {md}, benchmarks.json, benchmarks.png")


if __name__ == "__main__":
    main()
