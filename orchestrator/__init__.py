"""Sweeps: a sweep file becomes table cells, Ray Tune runs one trial per cell, results are rendered.

The package is in wings by role; each wing's docstring says what it holds and what it may import.
Imports run one way, from the top of this list down (tests/test_structure.py checks it):

- ``cli``: the command lines of one cell (``python -m condense``) and of a set (``python -m evaluation``);
- ``driver``: ``python -m orchestrator.run``: pre-flight, the run lock, Ray, resume, storage, live outputs;
- ``trial``: one trial: one experiment of a cell (``experiment``), Ray Tune's trainable, the stages;
- ``results``: the results Parquet, tables, plots, the report, curves, published numbers;
- ``sweep``: the sweep file: its spec, the config object, cells, table layouts, the cost model.

The modules at this level are the entry points only (``run``, ``tables``, ``plots``, ``report``).
See docs/design.md.
"""
