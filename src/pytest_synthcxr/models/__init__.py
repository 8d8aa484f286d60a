"""Stage 5, models: the registry of names and aliases, generators (phantom, diffusers, folder),
judges (phantom, torchxrayvision, TorchScript, ensembles) and judge feature extractors.

May import: spec, stats, sampling, phantom, checks (to know which judge outputs a spec needs)."""
