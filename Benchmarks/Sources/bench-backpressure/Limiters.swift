/// Limiter benchmarks; filled in once the limiters exist.
func runLimiterBenchmarks() async -> [(String, String)] { [] }
