"""Operations: the `vlm-receiver` CLI, the self-check, start-up checks, probes and metrics
routes."""
