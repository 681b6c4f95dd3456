"""The bench tools under bench/: each runs on a tiny count and refuses bad arguments."""
