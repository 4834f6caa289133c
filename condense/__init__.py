"""The method as a library: ``data``, ``networks``, ``matching`` (gradient distances), ``synthetic``
(DC), ``dsa``, ``dm``, ``baselines`` (coresets), ``methods`` (the method table), ``augment`` and
``diffaug`` (DC's and DSA's augmentation). No Ray, no files beyond what a caller asks for.
See docs/design.md."""
