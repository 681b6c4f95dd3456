"""Commit wake-ups, the fan-out and the event stream."""
