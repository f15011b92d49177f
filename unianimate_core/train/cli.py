"""``python -m unianimate_core train CONFIG [--set KEY=VALUE ...]`` (also under ``torchrun``)."""
from __future__ import annotations

import argparse
import sys

from ..errors import UniAnimateError


def add_parser(sub: "argparse._SubParsersAction") -> None:
    p = sub.add_parser(
        "train", help="train or fine-tune the UNet (full / temporal / mamba / lora) from a JSON config",
        description="Train UniAnimate from a JSON config (docs/training.md). Resumes automatically from the newest "
                    "checkpoint in output_dir. Ctrl-C or SIGTERM saves a checkpoint and stops; run the same command "
                    "to continue. Many GPUs: torchrun --nproc_per_node N -m unianimate_core train CONFIG.")
    p.add_argument("config", nargs="?", help="the JSON config file")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config key, e.g. --set optim.lr=1e-4 --set train.steps=200 (value parsed as JSON)")
    p.add_argument("--check", action="store_true", help="validate the config, print it resolved, and exit")
    p.add_argument("--keys", action="store_true", help="print every config key with its type, default and meaning")


def cmd_train(args: argparse.Namespace) -> int:
    from .config import config_reference_markdown, load_config

    if args.keys:
        print(config_reference_markdown())
        return 0
    if not args.config:
        print("error: give the config file: python -m unianimate_core train CONFIG (examples: "
              "unianimate_core/train/examples/)", file=sys.stderr)
        return 2
    cfg = load_config(args.config, args.set)
    if args.check:
        import json

        print(json.dumps(cfg.to_dict(), indent=1))
        return 0
    from .trainer import train

    result = train(cfg)
    if result.interrupted:
        return result.exit_code
    import os

    if os.environ.get("RANK", "0") == "0":  # under torchrun only the first process reports
        print(f"trained {result.step} steps in {result.seconds:.0f} s ({result.steps_per_second:.2f} steps/s); "
              + ", ".join(str(p) for p in result.exports))
    return 0


__all__ = ["add_parser", "cmd_train", "UniAnimateError"]
