"""Stage 6, fuzzing: hypothesis strategies for radiology prompts and counterfactual pairs, and the
paired same-seed sampler that runs a property search (the pytest item lives in plugin).

May import: spec, stats, sampling, phantom, checks, models."""
