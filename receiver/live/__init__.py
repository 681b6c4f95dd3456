"""Live updates: commit wake-ups, the shared change-feed reader, Server-Sent Events."""
