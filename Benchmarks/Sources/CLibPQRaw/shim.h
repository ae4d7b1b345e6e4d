#ifndef RESERVOIR_BENCHMARKS_CLIBPQRAW_SHIM_H
#define RESERVOIR_BENCHMARKS_CLIBPQRAW_SHIM_H

// libpq for the driver benchmark's raw baseline: the benchmarks declare their own system library, so that the
// library's C module stays internal to it.
#include <libpq-fe.h>

#endif
