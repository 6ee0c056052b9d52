"""Index engines beyond ``local`` (which lives in :mod:`ragkit.indexing`): where the index phase runs.

- :mod:`ragkit.engines.ray`: the index phase on a Ray cluster (Ray Data), and the ``ragkit eval``
  fan-out of variants as Ray tasks (extra ``ray``).
"""
