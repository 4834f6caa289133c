"""Results: ``parquet`` (the long results table: schema, rows, reading, writing), ``run_reader``
(the one checked reader of a run's results and curves, for every tool that reads them), ``tables``,
``plots``, ``report``, ``curves`` (learning curves), ``set_figures`` and ``published`` (the papers'
numbers). May import the sweep wing; nothing above it."""
