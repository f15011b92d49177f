"""FAKE `comfy.ldm` package (tests only)."""
