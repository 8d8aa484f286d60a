"""pytest-synthcxr: audit text-to-image chest X-ray generators for bias, validity and hallucination."""

__version__ = "0.1.0"
