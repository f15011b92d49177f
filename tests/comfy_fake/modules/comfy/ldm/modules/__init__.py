"""FAKE `comfy.ldm.modules` package (tests only)."""
