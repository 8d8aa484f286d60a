"""Stage 8, the report: plain report data first (data, reference, tables), then JSON, CSV and one
self-contained HTML file (writers, html), the baseline comparison and the JSON schema.

May import: every stage below it (spec to reference); never plugin."""
