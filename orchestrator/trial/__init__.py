"""One trial: ``experiment`` runs one experiment of a cell whatever its method's kind (the one place
that decides it), ``trainable`` is Ray Tune's trial around it (checkpoints, reports), ``stages``
trains the reference networks before the grid. May import the results and sweep wings."""
