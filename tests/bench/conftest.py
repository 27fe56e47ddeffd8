"""Benchmarks are not tests: `python3 dev.py bench [NAME]` runs them (tests/bench/run.py)."""

collect_ignore_glob = ["*.py"]
