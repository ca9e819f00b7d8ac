"""Random generators: one per layer, derived from the user's ``rng`` and the layer's identity."""

from __future__ import annotations

import numpy as np

__all__ = ["layer_rng"]


def layer_rng(seed, layer_id: int, slice_id: int = 0) -> np.random.Generator:
    """A generator for one layer, derived from the user's ``rng`` and the layer's identity.

    Deriving per layer (not drawing from one shared stream) makes results independent of the
    order or the process in which layers run: serial, parallel and distributed runs agree.
    """
    if isinstance(seed, np.random.Generator):
        base = int(seed.bit_generator.seed_seq.entropy) if hasattr(seed.bit_generator, "seed_seq") else 0
    else:
        base = 0 if seed is None else int(seed)
    return np.random.default_rng([base, int(layer_id), int(slice_id)])
