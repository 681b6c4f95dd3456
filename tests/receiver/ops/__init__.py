"""The CLI, the self-check, settings, probes, scrape-time gauges and tracing."""
