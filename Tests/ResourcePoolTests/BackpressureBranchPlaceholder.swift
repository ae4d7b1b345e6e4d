// Placeholder so that the `backpressure` branch builds on its own: the package skeleton declares this target but its
// sources live on another branch. Delete this file when merging.
