#!/usr/bin/env python3
"""Groups the stacks printed by allocation-sites.gdb by their first frames above the allocator, most frequent first.

usage: summarise-stacks.py GDB_OUTPUT [TOP] [DEPTH]
Divide a count by the cycles of the counted round(s) to get allocations per cycle: with `--only POOL`, the run counts
one round of the harness alone (NullPool) and one of POOL, each of min(cycles per round, 20,000) cycles.
"""
import collections
import re
import subprocess
import sys

ALLOCATOR = re.compile(
    r"^(reservoir_malloc_counter_counted|count_allocation|malloc|calloc|realloc|posix_memalign|aligned_alloc|memalign"
    r"|swift_slowAlloc|swift_allocObject)$"
)


def demangle(names):
    result = subprocess.run(
        ["swift", "demangle", "--simplified", "--compact"], input="\n".join(names), capture_output=True, text=True
    )
    return result.stdout.splitlines() if result.returncode == 0 else names


def main():
    path = sys.argv[1]
    top = int(sys.argv[2]) if len(sys.argv) > 2 else 15
    depth = int(sys.argv[3]) if len(sys.argv) > 3 else 3
    stacks, current = [], []
    for line in open(path, errors="replace"):
        match = re.match(r"^#(\d+)\s+(?:0x[0-9a-f]+ in )?(.*)$", line.rstrip("\n"))
        if not match:
            continue
        if match.group(1) == "0" and current:
            stacks.append(current)
            current = []
        name = re.sub(r" (at|from) \S+$", "", match.group(2))
        name = re.sub(r" \([^()]*(\([^()]*\)[^()]*)*\)$", "", name)
        current.append(name)
    if current:
        stacks.append(current)
    counts = collections.Counter()
    for stack in stacks:
        frames = [frame for frame in stack if not ALLOCATOR.match(frame)][:depth]
        counts[tuple(frames)] += 1
    print(f"{len(stacks)} counted allocations")
    for frames, count in counts.most_common(top):
        print(f"{count:8d}  " + "  <-  ".join(name[:80] for name in demangle(list(frames))))


if __name__ == "__main__":
    main()
