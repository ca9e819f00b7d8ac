"""Small, seeded, randomly initialised torch models built from ``torch.nn`` only.

They exercise the layer kinds the parity tests care about: dense layers, 3x3 conv2d stacks,
Hugging Face style ``Conv1D`` (weight stored as (in, out)), LayerNorm and embeddings.

Note for whoever adds a model here: WeightWatcher 0.7.7 types a torch module by substrings of
``str(type(module)).lower()`` ("linear", "conv1d", "conv2d", "embedding", "norm"), so container
classes must not have those words in their class or module names.
"""

from __future__ import annotations

import math

import torch
from torch import nn

__all__ = ["Conv1D", "mlp", "mlp_degenerate", "vgg11_like", "gpt2_blocks", "many_linear", "even_kernel_convs"]


class _Seeded:
    """Context manager: a private torch RNG state seeded with ``seed`` (the global state is restored)."""

    def __init__(self, seed: int):
        self.seed = seed

    def __enter__(self):
        self._fork = torch.random.fork_rng(devices=[])
        self._fork.__enter__()
        torch.manual_seed(self.seed)

    def __exit__(self, *exc):
        return self._fork.__exit__(*exc)


class Conv1D(nn.Module):
    """Hugging Face's GPT-2 ``Conv1D``: a dense layer whose ``weight`` is stored as (in, out).

    ``forward(x) = x @ weight + bias``.
    """

    def __init__(self, nf: int, nx: int):
        super().__init__()
        self.nf = nf
        self.weight = nn.Parameter(torch.empty(nx, nf))
        self.bias = nn.Parameter(torch.zeros(nf))
        nn.init.normal_(self.weight, std=0.02)

    def forward(self, x):
        size_out = x.size()[:-1] + (self.nf,)
        x = torch.addmm(self.bias, x.reshape(-1, x.size(-1)), self.weight)
        return x.view(size_out)


# ----------------------------------------------------------------------------------------- MLP
class MLP(nn.Module):
    def __init__(self, sizes):
        super().__init__()
        layers = []
        for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
            layers.append(nn.Linear(a, b))
            if i < len(sizes) - 2:
                layers.append(nn.ReLU())
        self.net = nn.Sequential(*layers)

    def forward(self, x):
        return self.net(x.flatten(1))


def mlp(sizes=(784, 512, 256, 10), seed: int = 0) -> nn.Module:
    """A dense ReLU network, e.g. 784-512-256-10 (three ``nn.Linear``)."""
    with _Seeded(seed):
        return MLP(list(sizes)).eval()


def mlp_degenerate(seed: int = 0) -> nn.Module:
    """The 784-512-256-10 MLP with an orthogonal middle layer (a flat spectrum: every eigenvalue 1) and a
    rank-1 last layer (one non-zero eigenvalue: the power-law fit must fail)."""
    model = mlp(seed=seed)
    with _Seeded(seed + 1), torch.no_grad():
        nn.init.orthogonal_(model.net[2].weight)
        model.net[4].weight.zero_()
        model.net[4].weight[:, :3] = 1.0
    return model


# ------------------------------------------------------------------------------------ VGG11-like
VGG11_CFG = (64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M")


class VGG(nn.Module):
    def __init__(self, cfg, num_classes, batch_norm, hidden):
        super().__init__()
        layers, c_in = [], 3
        for v in cfg:
            if v == "M":
                layers.append(nn.MaxPool2d(2, 2))
                continue
            layers.append(nn.Conv2d(c_in, v, kernel_size=3, padding=1))
            if batch_norm:
                layers.append(nn.BatchNorm2d(v))
            layers.append(nn.ReLU(inplace=True))
            c_in = v
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.classifier = nn.Sequential(nn.Linear(c_in, hidden), nn.ReLU(inplace=True),
                                        nn.Linear(hidden, num_classes))
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.01)
                nn.init.zeros_(m.bias)

    def forward(self, x):
        return self.classifier(torch.flatten(self.avgpool(self.features(x)), 1))


def vgg11_like(num_classes: int = 1000, small: bool = True, batch_norm: bool = False, width: float = 1.0,
               seed: int = 0) -> nn.Module:
    """VGG11's conv stack 3->64->128->256->256->512->512->512->512 (3x3 convs, max pools).

    ``small=True``: the classifier is AdaptiveAvgPool(1x1) -> Linear(512, 512) -> Linear(512, num_classes)
    instead of VGG's 25088 -> 4096 -> 4096 head (the big head alone takes the reference ~80 s).
    ``width`` scales every conv width (0.25 gives a quick 16..128-channel version of the same stack).
    """
    cfg = tuple(v if v == "M" else max(1, int(round(v * width))) for v in VGG11_CFG)
    with _Seeded(seed):
        if small:
            return VGG(cfg, num_classes, batch_norm, hidden=max(1, int(round(512 * width)))).eval()
        model = VGG(cfg, num_classes, batch_norm, hidden=4096)
        c_last = cfg[-2]
        model.avgpool = nn.AdaptiveAvgPool2d((7, 7))
        model.classifier = nn.Sequential(nn.Linear(c_last * 49, 4096), nn.ReLU(True), nn.Linear(4096, 4096),
                                         nn.ReLU(True), nn.Linear(4096, num_classes))
        for m in model.classifier:
            if isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.01)
                nn.init.zeros_(m.bias)
        return model.eval()


# ----------------------------------------------------------------------------------- GPT-2 blocks
class Attention(nn.Module):
    def __init__(self, d, n_head):
        super().__init__()
        self.n_head = n_head
        self.c_attn = Conv1D(3 * d, d)
        self.c_proj = Conv1D(d, d)

    def forward(self, x):
        b, t, d = x.shape
        q, k, v = self.c_attn(x).split(d, dim=2)
        q, k, v = (z.view(b, t, self.n_head, d // self.n_head).transpose(1, 2) for z in (q, k, v))
        y = nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.c_proj(y.transpose(1, 2).reshape(b, t, d))


class FeedForward(nn.Module):
    def __init__(self, d):
        super().__init__()
        self.c_fc = Conv1D(4 * d, d)
        self.c_proj = Conv1D(d, 4 * d)
        self.act = nn.GELU(approximate="tanh")

    def forward(self, x):
        return self.c_proj(self.act(self.c_fc(x)))


class Block(nn.Module):
    def __init__(self, d, n_head):
        super().__init__()
        self.ln_1 = nn.LayerNorm(d)
        self.attn = Attention(d, n_head)
        self.ln_2 = nn.LayerNorm(d)
        self.mlp = FeedForward(d)

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class GPT2(nn.Module):
    def __init__(self, n_layer, d, n_head, vocab, n_positions):
        super().__init__()
        self.wte = nn.Embedding(vocab, d)
        self.wpe = nn.Embedding(n_positions, d)
        self.h = nn.ModuleList([Block(d, n_head) for _ in range(n_layer)])
        self.ln_f = nn.LayerNorm(d)
        nn.init.normal_(self.wte.weight, std=0.02)
        nn.init.normal_(self.wpe.weight, std=0.01)
        scale = 0.02 / math.sqrt(2 * n_layer)  # GPT-2's scaled init of the residual projections
        for blk in self.h:
            nn.init.normal_(blk.attn.c_proj.weight, std=scale)
            nn.init.normal_(blk.mlp.c_proj.weight, std=scale)

    def forward(self, idx):
        pos = torch.arange(idx.shape[1], device=idx.device)
        x = self.wte(idx) + self.wpe(pos)
        for blk in self.h:
            x = blk(x)
        return self.ln_f(x) @ self.wte.weight.T


def gpt2_blocks(n_layer: int = 2, d: int = 768, n_head: int = 12, vocab: int = 50257, n_positions: int = 1024,
                seed: int = 0) -> nn.Module:
    """A GPT-2-shaped transformer: wte (vocab x d), wpe (n_positions x d), ``n_layer`` blocks of
    LayerNorm + ``Conv1D`` c_attn (d->3d) / c_proj (d->d) + LayerNorm + ``Conv1D`` c_fc (d->4d) /
    c_proj (4d->d), and a final LayerNorm. The output head is tied to wte (no extra weight).
    """
    with _Seeded(seed):
        return GPT2(n_layer, d, n_head, vocab, n_positions).eval()


# ------------------------------------------------------------------------------- many tiny layers
def many_linear(n: int = 100, width: int = 32, seed: int = 0) -> nn.Module:
    """``n`` x Linear(width, width) in a Sequential (the per-layer overhead benchmark)."""
    with _Seeded(seed):
        return nn.Sequential(*[nn.Linear(width, width) for _ in range(n)]).eval()


def even_kernel_convs(seed: int = 0) -> nn.Module:
    """Conv2d layers with even-sized kernels (2x2, 4x4 with fewer outputs than inputs, 1x2) and a 3x3 one:
    the reference reports N < M for the 4x4 layer (a known, deliberate difference)."""
    with _Seeded(seed):
        return nn.Sequential(nn.Conv2d(16, 64, 2), nn.Conv2d(64, 32, 4), nn.Conv2d(32, 48, (1, 2)),
                             nn.Conv2d(48, 96, 3)).eval()
