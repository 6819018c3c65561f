#!/usr/bin/env python3
"""One reader of the soak (tests/vm/soak.sh), inside the VM.

  soak-reader.py files ORDER SUMS MOUNT REF START UNTIL READY CHECKED
      Read every file of SUMS ("sha256  ./path" lines: upstream's tarball,
      extracted to REF) from MOUNT, in ORDER, pass after pass until the time
      UNTIL (mid-pass: under KASAN and memory pressure one pass can take
      minutes), and check each against its checksum. Wrong bytes are counted
      against the REF copy. Writes the paths it checked to CHECKED.
  soak-reader.py device DEVICE IMAGE START UNTIL SEED READY
      Read random page-aligned ranges of up to 1 MiB + a page from DEVICE,
      buffered and O_DIRECT in turn, and compare them with IMAGE.

Both create the file READY once set up, and start reading at the time START.
Prints one line: "NAME passes=P reads=R bytes=B wrong_bytes=W failed_reads=F"
(P: complete passes),
then the first errors, if any. Exit status 0 even with errors: the caller
adds them up.
"""
import hashlib
import mmap
import os
import random
import sys
import time


def wrong_bytes(got, want):
    return sum(a != b for a, b in zip(got, want)) + abs(len(got) - len(want))


def order(paths, name, sizes, pass_no):
    if name == "name":
        return sorted(paths)
    if name == "reverse":
        return sorted(paths, reverse=True)
    if name == "shuffle":
        p = list(paths)
        random.Random(pass_no).shuffle(p)
        return p
    if name == "largest-first":
        return sorted(paths, key=lambda p: (-sizes[p], p))
    if name == "by-basename":
        return sorted(paths, key=lambda p: (os.path.basename(p), p))
    raise SystemExit(f"unknown order {name}")


def ready_then_wait(ready, start):
    open(ready, "w").close()
    time.sleep(max(0.0, start - time.time()))


def files(order_name, sums_file, mount, ref, start, until, ready, out):
    sums = {}
    with open(sums_file) as f:
        for line in f:
            digest, path = line.rstrip("\n").split("  ", 1)
            sums[path] = digest
    sizes = {p: os.path.getsize(os.path.join(ref, p)) for p in sums}
    ready_then_wait(ready, start)
    passes = reads = nbytes = wrong = failed = 0
    errors = []
    checked = set()
    while time.time() < until:
        for p in order(sums, order_name, sizes, passes):
            if time.time() >= until:
                break
            try:
                with open(os.path.join(mount, p), "rb") as f:
                    data = f.read()
            except OSError as e:
                failed += 1
                errors.append(f"read {p}: {e}")
                continue
            reads += 1
            nbytes += len(data)
            checked.add(p)
            if hashlib.sha256(data).hexdigest() != sums[p]:
                with open(os.path.join(ref, p), "rb") as f:
                    n = wrong_bytes(data, f.read())
                wrong += max(n, 1)
                errors.append(f"{p}: {n} wrong bytes")
        else:
            passes += 1
    with open(out, "w") as f:
        f.writelines(p + "\n" for p in sorted(checked))
    return passes, reads, nbytes, wrong, failed, errors


def device(dev, image_file, start, until, seed, ready):
    with open(image_file, "rb") as f:
        image = f.read()
    page = mmap.PAGESIZE
    size = os.path.getsize(image_file) // page * page
    rnd = random.Random(seed)
    buf = mmap.mmap(-1, (1 << 20) + page)
    fds = [os.open(dev, os.O_RDONLY), os.open(dev, os.O_RDONLY | os.O_DIRECT)]
    passes = reads = nbytes = wrong = failed = 0
    errors = []
    ready_then_wait(ready, start)
    while time.time() < until or reads == 0:
        off = rnd.randrange(0, size // page) * page
        n = min(rnd.randrange(1, (1 << 20) // page + 2) * page, size - off)
        fd = fds[reads % 2]
        try:
            got = os.preadv(fd, [memoryview(buf)[:n]], off)
        except OSError as e:
            failed += 1
            errors.append(f"pread {n} at {off} ({'direct' if reads % 2 else 'buffered'}): {e}")
            continue
        reads += 1
        nbytes += got
        if got != n or buf[:n] != image[off:off + n]:
            w = wrong_bytes(buf[:got], image[off:off + n])
            wrong += max(w, 1)
            errors.append(f"{n} bytes at {off}: {w} wrong bytes")
    passes = 1
    return passes, reads, nbytes, wrong, failed, errors


def main():
    a = sys.argv
    if len(a) == 10 and a[1] == "files":
        name = a[2]
        r = files(name, a[3], a[4], a[5], float(a[6]), float(a[7]), a[8], a[9])
    elif len(a) == 8 and a[1] == "device":
        name = "device"
        r = device(a[2], a[3], float(a[4]), float(a[5]), int(a[6]), a[7])
    else:
        raise SystemExit(__doc__)
    passes, reads, nbytes, wrong, failed, errors = r
    print(f"{name} passes={passes} reads={reads} bytes={nbytes} wrong_bytes={wrong} failed_reads={failed}")
    for e in errors[:10]:
        print(f"  {e}")


if __name__ == "__main__":
    main()
