#!/usr/bin/env python3
"""Turn bench results ("metric variant rep value" lines) into tables, JSON
and a plot; optionally write them into docs/benchmarks.{md,json,png}."""

import argparse
import json
import re
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


def bs_key(v):
    m = re.fullmatch(r"(\d+)([KM])", v)
    return int(m.group(1)) * (1024 if m.group(2) == "K" else MIB) if m else 0


def tables(d, block_sizes):
    med = lambda m, v: statistics.median(d[m][v])
    spread = lambda m, v: f"{med(m, v):.2f} ({min(d[m][v]):.2f}–{max(d[m][v]):.2f})"
    out = []
    tar = med("size_tarball", "tar.xz")
    unc = med("uncompressed_bytes", "all")
    files = int(med("file_count", "all"))
    out.append(f"Headers: {files} files, {unc / MIB:.1f} MiB uncompressed (comments stripped). "
               f"Compile-like set: {int(med('compile_set_files', 'all'))} headers. "
               f"VM: {int(med('vm_cpus', 'all'))} CPUs under QEMU TCG.\n")

    out.append("### Size\n")
    out.append("| | upstream tar.xz | " + " | ".join(f"image {b}" for b in block_sizes) + " |")
    out.append("|---|---:|" + "---:|" * len(block_sizes))
    out.append(f"| bytes | {tar:,.0f} | " + " | ".join(f"{med('size_image', b):,.0f}" for b in block_sizes) + " |")
    out.append("| vs tar.xz | 1.00 | " + " | ".join(f"{med('size_image', b) / tar:.3f}" for b in block_sizes) + " |")
    out.append("| mksquashfs -comp xz, same block size | | " + " | ".join(f"{med('size_mksquashfs', b):,.0f}" for b in block_sizes) + " |")
    ko = med("size_ko_upstream", "tar.xz")
    out.append(f"| .ko file | {ko:,.0f} (kheaders.ko) | " + " | ".join(f"{med('size_ko', b):,.0f}" for b in block_sizes) + " |")
    out.append("")

    out.append("### Pack time on the host (seconds, median (min–max))\n")
    out.append("| block size | kheaders-image pack | mksquashfs -comp xz | ours / mksquashfs |")
    out.append("|---|---:|---:|---:|")
    for b in block_sizes:
        out.append(f"| {b} | {spread('pack_ours', b)} | {spread('pack_mksquashfs', b)} | "
                   f"{med('pack_ours', b) / med('pack_mksquashfs', b):.2f} |")
    out.append(f"\nUpstream `gen_kheaders.sh` (copy, perl strip, tar.xz): {spread('pack_gen_kheaders', 'tar.xz')} s; "
               f"kheaders-image at 128K is {med('pack_gen_kheaders', 'tar.xz') / med('pack_ours', '128K'):.1f}x faster."
               if "128K" in block_sizes else "")
    out.append("")

    out.append("### Time in the VM, cold caches (seconds, median (min–max))\n")
    out.append("Tarball: `insmod kheaders.ko` + `tar -xJf` to tmpfs + read. Device: `insmod kheaders_blk.ko` + "
               "`mount` + read.\n")
    out.append("| workload | tarball | " + " | ".join(f"device {b}" for b in block_sizes) + " | tarball / device 128K |")
    out.append("|---|---:|" + "---:|" * len(block_sizes) + "---:|")
    names = {"first_header": "first header (`include/linux/sched.h`)", "compile_set": "compile-like set",
             "full_read": "every file"}
    for m, label in names.items():
        ratio = med(m, "tar.xz") / med(m, "128K") if "128K" in block_sizes else float("nan")
        out.append(f"| {label} | {spread(m, 'tar.xz')} | " + " | ".join(spread(m, b) for b in block_sizes)
                   + f" | {ratio:.1f}x |")
    out.append("")

    out.append("### Kernel memory after the full read (MiB)\n")
    out.append("| | tarball | " + " | ".join(f"device {b}" for b in block_sizes) + " |")
    out.append("|---|---:|" + "---:|" * len(block_sizes))
    rows = [("MemAvailable used, after the read", "mem_available_used"),
            ("of which page cache (Cached)", "mem_cached"),
            ("of which tmpfs (Shmem)", "mem_shmem"),
            ("unreclaimable slab (SUnreclaim)", "mem_slab_unreclaimable"),
            ("module in memory (coresize)", "mem_module"),
            ("MemAvailable used, after drop_caches", "mem_available_used_dropped"),
            ("Cached, after drop_caches", "mem_cached_dropped")]
    for label, m in rows:
        out.append(f"| {label} | {med(m, 'tar.xz') / MIB:.1f} | " +
                   " | ".join(f"{med(m, b) / MIB:.1f}" for b in block_sizes) + " |")
    return "\n".join(out) + "\n"


def native_tables(d, kernel, host_kernel):
    """The native tier: ratios against the tarball and read amplification."""
    med = lambda m, v: statistics.median(d[m][v])
    layouts = [v for v in d["size"] if v != "tar.xz"]
    reps = len(d["time:first"]["tar.xz"])
    out = [f"Host kernel {host_kernel} (its own squashfs, fragment cache of 3 blocks); the headers of the "
           f"{kernel} test kernel, {int(med('files', 'all')):,} files. Image and tarball in RAM (`/dev/shm`), "
           f"the image behind a read-only loop device with 4 KiB blocks. Every run cold; median of {reps} runs.\n"]
    tar = med("size", "tar.xz")
    out.append("| | upstream tar.xz | " + " | ".join(f"image, `{l}` layout" for l in layouts) + " |")
    out.append("|---|---:|" + "---:|" * len(layouts))
    out.append(f"| bytes | {tar:,.0f} | " + " | ".join(f"{med('size', l):,.0f} ({med('size', l) / tar:.2f}x)"
                                                     for l in layouts) + " |")
    out.append("")
    out.append("Time in ms (tarball: extract to tmpfs + read; image: mount + read). "
               "**Ratio** = tarball time / image time: above 1 the image is faster. "
               "**Amp** = bytes the loop device read / image size.\n")
    head = "| workload | files | tarball ms |"
    rule = "|---|---:|---:|"
    for l in layouts:
        head += f" `{l}` ms | ratio | amp |"
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
        for l in layouts:
            row += (f" {med('time:' + w, l) * 1000:.0f} | {med('time:' + w, 'tar.xz') / med('time:' + w, l):.2f} |"
                    f" {med('amp:' + w, l):.2f} |")
        out.append(row)
        if w == names[-1][0] and kernel_sets:
            row = f"| compile sets of {len(kernel_sets)} kernel sources (median; min–max) | | |"
            for l in layouts:
                ratios = sorted(med("time:" + k, "tar.xz") / med("time:" + k, l) for k in kernel_sets)
                amps = sorted(med("amp:" + k, l) for k in kernel_sets)
                ms = statistics.median(med("time:" + k, l) * 1000 for k in kernel_sets)
                row += (f" {ms:.0f} | {statistics.median(ratios):.2f} ({ratios[0]:.2f}–{ratios[-1]:.2f}) |"
                        f" {statistics.median(amps):.2f} ({amps[0]:.2f}–{amps[-1]:.2f}) |")
            out.append(row)
    return "\n".join(out) + "\n"


def replace_between(md, begin, end, text):
    page = md.read_text()
    if begin not in page or end not in page:
        sys.exit(f"{md} lacks the {begin} / {end} markers")
    head, rest = page.split(begin, 1)
    _, tail = rest.split(end, 1)
    md.write_text(f"{head}{begin}\n{text}{end}{tail}")


def plot(d, block_sizes, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    variants = ["tar.xz"] + block_sizes
    labels = ["tarball"] + [f"dev {b}" for b in block_sizes]
    colors = ["#c44e52"] + ["#4c72b0", "#55a868", "#8172b2", "#64b5cd", "#ccb974"][: len(block_sizes)]
    fig, axes = plt.subplots(2, 2, figsize=(12, 8.5))

    ax = axes[0][0]
    workloads = [("first_header", "first header"), ("compile_set", "compile-like set"), ("full_read", "every file")]
    width = 0.8 / len(variants)
    for i, (v, lab, c) in enumerate(zip(variants, labels, colors)):
        meds = [statistics.median(d[m][v]) for m, _ in workloads]
        lo = [meds[k] - min(d[m][v]) for k, (m, _) in enumerate(workloads)]
        hi = [max(d[m][v]) - meds[k] for k, (m, _) in enumerate(workloads)]
        ax.bar([k + i * width for k in range(len(workloads))], meds, width, yerr=[lo, hi], label=lab, color=c, capsize=2)
    ax.set_xticks([k + width * (len(variants) - 1) / 2 for k in range(len(workloads))])
    ax.set_xticklabels([w for _, w in workloads])
    ax.set_ylabel("seconds (cold, under TCG)")
    ax.set_title("Time: load + extract/mount + read")
    ax.legend(fontsize=8)

    ax = axes[0][1]
    mems = [("mem_available_used", "after full read"), ("mem_available_used_dropped", "after drop_caches")]
    for i, (v, lab, c) in enumerate(zip(variants, labels, colors)):
        ax.bar([k + i * width for k in range(len(mems))], [statistics.median(d[m][v]) / MIB for m, _ in mems],
               width, label=lab, color=c)
    ax.set_xticks([k + width * (len(variants) - 1) / 2 for k in range(len(mems))])
    ax.set_xticklabels([m for _, m in mems])
    ax.set_ylabel("MiB of MemAvailable used")
    ax.set_title("Kernel memory")

    ax = axes[1][0]
    sizes = [statistics.median(d["size_tarball"]["tar.xz"]) / MIB] + \
            [statistics.median(d["size_image"][b]) / MIB for b in block_sizes]
    ax.bar(labels, sizes, color=colors)
    for k, s in enumerate(sizes):
        ax.text(k, s, f"{s:.2f}", ha="center", va="bottom", fontsize=8)
    ax.set_ylabel("MiB")
    ax.set_title("Compressed size: tar.xz vs squashfs image")

    ax = axes[1][1]
    ours = [statistics.median(d["pack_ours"][b]) for b in block_sizes]
    mk = [statistics.median(d["pack_mksquashfs"][b]) for b in block_sizes]
    x = range(len(block_sizes))
    ax.bar([k - 0.2 for k in x], ours, 0.4, label="kheaders-image pack (tree → image)", color="#4c72b0")
    ax.bar([k + 0.2 for k in x], mk, 0.4, label="mksquashfs -comp xz (stripped dir → image)", color="#dd8452")
    ax.axhline(statistics.median(d["pack_gen_kheaders"]["tar.xz"]), color="#c44e52", ls="--",
               label="upstream gen_kheaders.sh (tree → tar.xz)")
    ax.set_xticks(list(x))
    ax.set_xticklabels(block_sizes)
    ax.set_xlabel("block size")
    ax.set_ylabel("seconds (host)")
    ax.set_title("Pack time")
    ax.legend(fontsize=8)

    fig.suptitle("kheaders_blk (/dev/kheaders0) vs upstream kheaders.ko tarball, same 6.12 build")
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("results")
    ap.add_argument("--json", required=True)
    ap.add_argument("--plot")
    ap.add_argument("--update-docs", metavar="DOCS_DIR")
    ap.add_argument("--native", action="store_true", help="results of bench/native.sh")
    ap.add_argument("--kernel", help="release of the headers (native)")
    ap.add_argument("--host-kernel", help="release of the kernel measured on (native)")
    a = ap.parse_args()
    d = load(a.results)
    summaries = {m: {v: summary(vals) for v, vals in vs.items()} for m, vs in d.items()}
    if a.native:
        text = native_tables(d, a.kernel, a.host_kernel)
        print(text)
        Path(a.json).write_text(json.dumps(summaries, indent=1) + "\n")
        if a.update_docs:
            docs = Path(a.update_docs)
            replace_between(docs / "benchmarks.md", "<!-- native:begin -->", "<!-- native:end -->", text)
            shutil.copy(a.json, docs / "benchmarks-native.json")
            print(f"updated {docs / 'benchmarks.md'} and benchmarks-native.json")
        return
    block_sizes = sorted((v for v in d["size_image"]), key=bs_key)
    text = tables(d, block_sizes)
    print(text)
    Path(a.json).write_text(json.dumps(summaries, indent=1) + "\n")
    plot(d, block_sizes, a.plot)
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
