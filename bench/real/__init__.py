"""Real open-source test suites run serially, with plain xdist and with pytest-isolate.

``python -m bench.real --help``; see bench/real/README.md.
"""
