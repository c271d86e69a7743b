"""The xdist adapter: the ``Scheduling`` that drives the dispatcher, the execnet channel
between controller and workers, and the encoding of what passes over it.
"""
