"""The driver of ``python -m orchestrator.run``: ``run`` (the command), ``preflight``, ``lock``,
``local_ray``, ``stop``, ``resources``, ``resume``, ``storage`` (object storage), ``live`` and
``outputs`` (written as cells end), ``progress`` (its lines). May import the trial, results and
sweep wings."""
