// See include/CMallocCounter.h. glibc only (Linux): forwards to the __libc_* entry points, which glibc exports.
#if defined(__linux__)
#include <features.h>
#endif

#if defined(__linux__) && defined(__GLIBC__)

#include "CMallocCounter.h"

#include <errno.h>
#include <stdatomic.h>
#include <stddef.h>

extern void *__libc_malloc(size_t size);
extern void *__libc_calloc(size_t count, size_t size);
extern void *__libc_realloc(void *pointer, size_t size);
extern void *__libc_memalign(size_t alignment, size_t size);
extern void *__libc_valloc(size_t size);
extern void __libc_free(void *pointer);

static _Atomic int counting_enabled = 0;
static _Atomic uint64_t allocation_count = 0;
static _Atomic uint64_t allocated_bytes = 0;

// Called for every counted allocation and never inlined: a stable breakpoint for finding allocation sites
// (Benchmarks/tools/allocation-sites.gdb prints the stack of each).
__attribute__((noinline)) void reservoir_malloc_counter_counted(size_t size) {
    atomic_fetch_add_explicit(&allocation_count, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&allocated_bytes, size, memory_order_relaxed);
}

static inline void count_allocation(size_t size) {
    if (__builtin_expect(atomic_load_explicit(&counting_enabled, memory_order_relaxed), 0)) {
        reservoir_malloc_counter_counted(size);
    }
}

void reservoir_malloc_counter_set_enabled(int enabled) {
    atomic_store_explicit(&counting_enabled, enabled != 0, memory_order_seq_cst);
}

uint64_t reservoir_malloc_counter_allocations(void) {
    return atomic_load_explicit(&allocation_count, memory_order_seq_cst);
}

uint64_t reservoir_malloc_counter_bytes(void) {
    return atomic_load_explicit(&allocated_bytes, memory_order_seq_cst);
}

void reservoir_malloc_counter_reset(void) {
    atomic_store_explicit(&allocation_count, 0, memory_order_seq_cst);
    atomic_store_explicit(&allocated_bytes, 0, memory_order_seq_cst);
}

void *malloc(size_t size) {
    count_allocation(size);
    return __libc_malloc(size);
}

void *calloc(size_t count, size_t size) {
    count_allocation(count * size);
    return __libc_calloc(count, size);
}

void *realloc(void *pointer, size_t size) {
    // Every realloc that returns a block counts as one allocation (it may move the block); realloc(p, 0) frees.
    if (pointer == NULL) {
        count_allocation(size);
    } else if (size != 0) {
        count_allocation(size);
    }
    return __libc_realloc(pointer, size);
}

void free(void *pointer) {
    __libc_free(pointer);
}

void *memalign(size_t alignment, size_t size) {
    count_allocation(size);
    return __libc_memalign(alignment, size);
}

void *aligned_alloc(size_t alignment, size_t size) {
    count_allocation(size);
    return __libc_memalign(alignment, size);
}

int posix_memalign(void **result, size_t alignment, size_t size) {
    if (alignment % sizeof(void *) != 0 || (alignment & (alignment - 1)) != 0) {
        return EINVAL;
    }
    count_allocation(size);
    void *pointer = __libc_memalign(alignment, size);
    if (pointer == NULL && size != 0) {
        return ENOMEM;
    }
    *result = pointer;
    return 0;
}

void *valloc(size_t size) {
    count_allocation(size);
    return __libc_valloc(size);
}

#else

#include "CMallocCounter.h"

// Elsewhere allocations are not counted; the benchmark reports them as unavailable.
void reservoir_malloc_counter_set_enabled(int enabled) { (void)enabled; }
uint64_t reservoir_malloc_counter_allocations(void) { return 0; }
uint64_t reservoir_malloc_counter_bytes(void) { return 0; }
void reservoir_malloc_counter_reset(void) {}
void reservoir_malloc_counter_counted(size_t size) { (void)size; }

#endif
