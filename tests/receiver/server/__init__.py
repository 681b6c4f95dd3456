"""The HTTP protocol's limits, logs, the heap, and serverless mode."""
