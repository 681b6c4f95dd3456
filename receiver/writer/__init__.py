"""The writer: group committers, queued writes, the GIL hand-off, WAL checkpoints, pruning."""
