"""Generators: prompts and per-image seeds in, grayscale images out (one protocol, in base)."""
