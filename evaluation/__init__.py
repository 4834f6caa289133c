"""The paper's evaluation protocol: ``train`` (the one trainer), ``protocol`` (evaluate a set with
fresh networks), ``graphed`` (the same training as a replayed CUDA graph), ``augmentation`` (which
augmentation a set gets), ``pools`` (evaluation models and points), ``reference`` (the coresets'
reference network and the whole-dataset bound). See docs/design.md."""
