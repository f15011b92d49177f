"""PyTorch dataset over the synthetic world (one rendered clip per item, deterministic per index)."""
from __future__ import annotations

from typing import Any

from .errors import ToyWorldError, check_count
from .world import SPLITS, World, WorldConfig


class ToyWorldDataset:
    """``len`` clips of ``split``; item ``i`` is ``world.clip(split, i).to_tensors()``:

    ``frames`` (F, 3, H, W), ``reference`` (3, H, W), ``poses`` (F, 3, H, W) pose renders,
    ``reference_pose`` (3, H, W) - float32 in [0, 1] - and ``character_id``, ``motion_id``,
    ``scene_seed`` (ints). Works as a ``torch.utils.data.Dataset`` (map-style, picklable, so
    ``DataLoader(num_workers=N)`` renders in parallel).
    """

    def __init__(self, world: World | WorldConfig | None = None, split: str = "train", length: int = 1000) -> None:
        if isinstance(world, WorldConfig) or world is None:
            world = World(world)
        if split not in SPLITS:
            raise ToyWorldError(f"unknown split {split!r}; use one of {', '.join(SPLITS)}.")
        self.world = world
        self.split = split
        self.length = check_count(length, "dataset length")

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> dict[str, Any]:
        if not 0 <= int(index) < self.length:
            raise IndexError(f"clip index {index} out of range for a dataset of {self.length} clips")
        return self.world.clip(self.split, int(index)).to_tensors()
