"""Batch rendering: many jobs, on Ray (this machine or a cluster) or on running ComfyUI servers.

``python -m unianimate_core batch JOBS`` (see docs/batch.md). Modules:

* ``jobs``         - job lists (JSONL / JSON / CSV / TOML, or references x driving clips) -> checked jobs;
* ``manifest``     - the manifest (input hashes, options, tries, outputs) and the output-folder lock;
* ``run``          - the driver's bookkeeping shared by both back ends (outputs, retries, progress, summary);
* ``worker``       - what runs on workers: the pose stage and a renderer that keeps its models loaded;
* ``ray_backend``  - Ray actors and tasks (needs ``ray``: the ``batch`` extra);
* ``comfy_client`` - a small standard-library HTTP client for ComfyUI's API;
* ``comfy_backend``- the same job list queued on ComfyUI servers with the shipped API workflows;
* ``cli``          - the ``batch`` command.

Nothing here is imported by the nodes or by ``import unianimate_core``; Ray is imported only when a
batch runs on it.
"""
