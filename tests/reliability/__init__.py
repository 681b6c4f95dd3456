"""Reliability tests: crash safety, duplicate storms, fuzzing and OpenAPI conformance.

Sizes come from the environment, so CI runs small and a person runs the full counts by hand:

    VLMHOOKS_RELIABILITY_SCALE=full pytest tests/reliability     # the issue's counts
    pytest tests/reliability                                     # CI sizes (the default)

One count can be set on its own with `VLMHOOKS_RELIABILITY_<NAME>=<int>`; the names are in
`tests/reliability/sizing.py` (e.g. `VLMHOOKS_RELIABILITY_CRASH_PREDICTIONS=5000`).
"""
