"""Stage 9, the pytest layer (on top): hooks and options, the audit session, items, fixtures and
the cache-filling command. The pytest11 entry point is ``plugin.hooks``; importing it stays cheap.

May import: every stage."""
