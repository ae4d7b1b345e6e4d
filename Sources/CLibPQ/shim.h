#ifndef RESERVOIR_CLIBPQ_SHIM_H
#define RESERVOIR_CLIBPQ_SHIM_H

// The only C header the project includes. Swift imports libpq's functions directly; what it cannot import
// (character-literal macros such as PG_DIAG_SQLSTATE) is re-exported here as constants.
#include <libpq-fe.h>
#include <postgres_ext.h>
#include <sys/eventfd.h>
#include <stdint.h>
#include <unistd.h>
#include <sys/prctl.h>
#include <sys/epoll.h>

static const int CLIBPQ_DIAG_SEVERITY = PG_DIAG_SEVERITY;
static const int CLIBPQ_DIAG_SEVERITY_NONLOCALIZED = PG_DIAG_SEVERITY_NONLOCALIZED;
static const int CLIBPQ_DIAG_SQLSTATE = PG_DIAG_SQLSTATE;
static const int CLIBPQ_DIAG_MESSAGE_PRIMARY = PG_DIAG_MESSAGE_PRIMARY;
static const int CLIBPQ_DIAG_MESSAGE_DETAIL = PG_DIAG_MESSAGE_DETAIL;
static const int CLIBPQ_DIAG_MESSAGE_HINT = PG_DIAG_MESSAGE_HINT;
static const int CLIBPQ_DIAG_STATEMENT_POSITION = PG_DIAG_STATEMENT_POSITION;
static const int CLIBPQ_DIAG_INTERNAL_POSITION = PG_DIAG_INTERNAL_POSITION;
static const int CLIBPQ_DIAG_INTERNAL_QUERY = PG_DIAG_INTERNAL_QUERY;
static const int CLIBPQ_DIAG_CONTEXT = PG_DIAG_CONTEXT;
static const int CLIBPQ_DIAG_SCHEMA_NAME = PG_DIAG_SCHEMA_NAME;
static const int CLIBPQ_DIAG_TABLE_NAME = PG_DIAG_TABLE_NAME;
static const int CLIBPQ_DIAG_COLUMN_NAME = PG_DIAG_COLUMN_NAME;
static const int CLIBPQ_DIAG_DATATYPE_NAME = PG_DIAG_DATATYPE_NAME;
static const int CLIBPQ_DIAG_CONSTRAINT_NAME = PG_DIAG_CONSTRAINT_NAME;

/// 1 when the linked libpq has pipeline mode (libpq 14 and newer).
#ifdef LIBPQ_HAS_PIPELINING
static const int CLIBPQ_HAS_PIPELINING = 1;
#else
static const int CLIBPQ_HAS_PIPELINING = 0;
#endif

/// A non-blocking, close-on-exec eventfd for waking a connection's thread out of poll(); -1 on failure.
static inline int clibpq_wakeup_create(void) { return eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC); }

/// Adds one to the eventfd's counter, which makes it readable.
static inline void clibpq_wakeup_signal(int fd) {
    uint64_t one = 1;
    ssize_t ignored = write(fd, &one, sizeof one);
    (void)ignored;
}

/// Names the calling thread (shown by top, perf and gdb); at most 15 bytes are kept.
static inline void clibpq_set_thread_name(const char *name) { prctl(PR_SET_NAME, name, 0, 0, 0); }

/// Resets the eventfd's counter to zero.
static inline void clibpq_wakeup_drain(int fd) {
    uint64_t value;
    ssize_t ignored = read(fd, &value, sizeof value);
    (void)ignored;
}

#endif
