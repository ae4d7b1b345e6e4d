#ifndef RESERVOIR_BENCH_MALLOC_COUNTER_H
#define RESERVOIR_BENCH_MALLOC_COUNTER_H

// Counts heap allocations made by the whole process while counting is switched on.
//
// This target defines malloc, calloc, realloc, posix_memalign, aligned_alloc, memalign, valloc and free. Because the
// definitions live in the executable, the dynamic linker binds every shared library's calls (the Swift runtime's
// included) to them; each forwards to glibc's __libc_* entry points. While counting is off, the only cost is one
// relaxed load and a branch per call, so timing rounds are unaffected.

#include <stddef.h>
#include <stdint.h>

/// Switches counting on (non-zero) or off (zero).
void reservoir_malloc_counter_set_enabled(int enabled);

/// The number of allocations (malloc, calloc, memalign family, and realloc calls that allocate) counted so far.
uint64_t reservoir_malloc_counter_allocations(void);

/// The number of bytes requested by the counted allocations.
uint64_t reservoir_malloc_counter_bytes(void);

/// Resets both counters to zero.
void reservoir_malloc_counter_reset(void);

/// Records one counted allocation of `size` bytes; called only while counting is on. Never inlined, so that a
/// debugger can break on it to print the stack of every counted allocation.
void reservoir_malloc_counter_counted(size_t size);

#endif
