"""Stage 3, sampling: cells and their seeds, prompts, the sample pool (the score table), the
content-addressed cache and the plan of what an audit may generate.

May import: spec, stats."""
