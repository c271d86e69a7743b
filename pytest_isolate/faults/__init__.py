"""Crashes and timeouts: what a crashed worker's exit means, and the watchdog that stops a
hung test's worker.
"""
