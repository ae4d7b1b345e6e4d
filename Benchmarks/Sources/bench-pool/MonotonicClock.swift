#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Nanoseconds on the monotonic clock: one `clock_gettime` (a vDSO call, about 20 ns), no allocation.
@inline(__always)
func monotonicNanoseconds() -> UInt64 {
    var time = timespec()
    clock_gettime(CLOCK_MONOTONIC, &time)
    return UInt64(time.tv_sec) &* 1_000_000_000 &+ UInt64(time.tv_nsec)
}

/// CPU time (user + system) used so far by every thread of this process, in nanoseconds.
///
/// Wall time per cycle suffers when other processes share the cores; CPU time per cycle much less, so the run reports
/// both.
func processCPUNanoseconds() -> UInt64 {
    var usage = rusage()
    #if os(Linux)
    getrusage(__rusage_who_t(RUSAGE_SELF.rawValue), &usage)
    #else
    getrusage(RUSAGE_SELF, &usage)
    #endif
    func nanoseconds(_ time: timeval) -> UInt64 {
        UInt64(time.tv_sec) &* 1_000_000_000 &+ UInt64(time.tv_usec) &* 1_000
    }
    return nanoseconds(usage.ru_utime) &+ nanoseconds(usage.ru_stime)
}
