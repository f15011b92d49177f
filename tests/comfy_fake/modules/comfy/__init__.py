"""FAKE `comfy` package for the always-run node tests (CI has no ComfyUI). Not ComfyUI code.

Submodules mirror the names and signatures of ComfyUI v0.8.0 for the few functions the UniAnimate
nodes call; behaviour is the CPU-only, single-device subset.
"""
