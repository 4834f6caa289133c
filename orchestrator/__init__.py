"""Sweeps: a sweep file becomes table cells, Ray Tune runs one trial per cell, results are rendered.

Plan (what runs): ``spec`` reads a sweep file into ``config.Sweep``, the one config object;
``layouts`` (the paper's table layouts), ``cells`` (cells, ids, the dry run's lines), ``cost``
(device-time estimates), ``resources`` (what a cell asks Ray for), ``published`` (the paper's numbers).

Run (how it runs): ``run`` (the driver: ``python -m orchestrator.run``), ``preflight`` and ``lock``
(checks before anything starts, one driver per run folder), ``stages`` (reference networks before the
grid), ``trainable`` (one trial: checkpoints, retries, resume), ``experiment`` (one experiment of a
cell without Ray, shared with ``seed_cli``, the seed's ``python -m condense``), ``progress`` (the
driver's lines).

Outputs (what comes back): ``live`` and ``outputs`` (written as cells end), ``results`` (the
Parquet schema), ``curves``, ``tables`` (``python -m orchestrator.tables``), ``plots``
(``python -m orchestrator.plots``), ``report`` (report.html). See docs/design.md.
"""
