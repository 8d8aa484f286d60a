"""Judges: images in, one probability per output (findings, probes, attributes) out."""
