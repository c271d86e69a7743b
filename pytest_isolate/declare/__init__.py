"""Declarations: what each test says it touches (markers -> claims), and the domains
of tests that conflict. ``claims`` and ``domains`` are pure; ``markers`` reads pytest's marks.
"""
