// The manual clock lives in its own module (the backpressure tests need it without the pool); the pool's test kit
// re-exports it, so `import ReservoirTestKit` keeps giving `ManualClock`.
@_exported import ReservoirTestClock
