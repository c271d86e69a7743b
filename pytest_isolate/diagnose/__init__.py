"""Learning from failures: the audit of undeclared shared state, and failed tests rerun alone
and classified.
"""
