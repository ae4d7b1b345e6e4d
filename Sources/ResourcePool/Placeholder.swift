// Placeholder so the postgres branch builds before the pool branch is merged (SwiftPM rejects a target without
// sources). Empty on purpose; delete it when merging the pool branch.
