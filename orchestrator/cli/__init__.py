"""The command lines of one cell and of one set: ``seed`` (``python -m condense``, the seed
repository's flags), ``evaluate`` (``python -m evaluation``) and ``common`` (what both share: flag
checks, the device, the output folder). May import every other wing."""
