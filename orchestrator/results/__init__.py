"""Results: ``parquet`` (the long results table: schema, rows, reading, writing), ``tables``,
``plots``, ``report``, ``curves`` (learning curves), ``set_figures`` and ``published`` (the papers'
numbers). May import the sweep wing; nothing above it."""
