"""The group committers, batches under concurrency, WAL checkpoints and retention."""
