"""Stage 1, the spec: the audit spec's schema and validation, finding the spec file, the model, judge
and reference tables, and the vocabulary (findings, probes, sexes, races).

May import: nothing else of the package (the bottom of the pipeline)."""
