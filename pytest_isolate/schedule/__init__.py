"""Scheduling, as pure planning over plain data: duration estimates, the plan (units and
worker queues), the online dispatch state machine, ``-n auto`` and shards. ``durations`` reads
and writes pytest's cache; every other module here imports neither pytest nor xdist.
"""
