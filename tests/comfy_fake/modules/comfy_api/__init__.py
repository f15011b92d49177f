"""FAKE `comfy_api` package for the always-run node tests (CI has no ComfyUI). Not ComfyUI code."""
