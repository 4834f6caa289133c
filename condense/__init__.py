"""The method as a library: ``data`` (the image set; ``readers`` its file formats; ``download``
fetches a dataset when asked), ``networks``, ``matching`` (gradient distances and DC's matching
loss), ``synthetic`` (a synthetic set, seeding),
``condensation`` (a condensation run's base; DC, DSA and DM a module each), ``baselines``
(coresets), ``methods`` (the method table), ``augment`` and ``diffaug`` (DC's and DSA's
augmentation). No Ray, no files beyond what a caller asks for. See docs/design.md."""
