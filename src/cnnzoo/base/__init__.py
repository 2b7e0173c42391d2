"""The bottom layer: typed errors, safe reads and writes, what a run directory is and its lock, the one device,
precision and thread rule, the eval-mode guard, figures. Nothing here knows a model or a dataset."""
