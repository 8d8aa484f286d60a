"""Stage 7, reference sets: readers of real (or phantom) labelled images and the
synthetic-vs-reference comparison that feeds the versus-real, fidelity and judge-audit checks.

May import: spec, stats, sampling, phantom, checks, models."""
