"""The cost of the training callbacks: a training step's time with and without them.

    python benchmarks/bench_callbacks.py                          # every framework installed
    python benchmarks/bench_callbacks.py --frameworks lightning --steps 120 --every 30 --width 1024

For each framework (Lightning, Hugging Face Trainer, Keras 3 on the torch backend) the same MLP
(``--depth`` hidden layers of ``--width`` units) is trained on random data for ``--steps`` steps on
the CPU, once without and once with ``SpectralWatchCallback(every_n_steps=--every)``. A timing
callback placed after it records each step's wall time (from the step's start to the end of the
last callback). It prints:

* **plain step**: the median step without the callback;
* **idle step**: the median of the steps the callback does not analyse (its cost when idle);
* **analysis**: the mean wall time of one analysis, as the callback's ``history['seconds']`` says;
* **held**: the mean extra time of the analysed steps (their time minus the plain median);
* **held / analysis**: how long the analysis held the training step, per second of analysis
  (1.0: exactly the analysis; the rest is logging the scalars and noise).

Measured in this run, on this machine; on a shared machine compare the ratios.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "torch")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))


def _data(n, d, seed=0):
    import numpy as np

    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, d)).astype("float32")
    return x, (x[:, :10] * 3).argmax(axis=1).astype("int64")


def _torch_mlp(width, depth, d):
    import torch

    torch.manual_seed(0)
    layers, inp = [], d
    for _ in range(depth):
        layers += [torch.nn.Linear(inp, width), torch.nn.ReLU()]
        inp = width
    return torch.nn.Sequential(*layers, torch.nn.Linear(inp, 10))


def run_lightning(args, watch):
    import lightning.pytorch as pl
    import torch
    from torch.utils.data import DataLoader, TensorDataset

    times = []

    class Timer(pl.Callback):
        def on_train_batch_start(self, *a):
            self.t = time.perf_counter()

        def on_train_batch_end(self, *a):
            times.append(time.perf_counter() - self.t)

    class Lit(pl.LightningModule):
        def __init__(self):
            super().__init__()
            self.net = _torch_mlp(args.width, args.depth, args.dim)

        def training_step(self, batch, _):
            x, y = batch
            return torch.nn.functional.cross_entropy(self.net(x), y)

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.01)

    x, y = _data(args.steps * args.batch, args.dim)
    loader = DataLoader(TensorDataset(torch.from_numpy(x), torch.from_numpy(y)), batch_size=args.batch)
    trainer = pl.Trainer(max_steps=args.steps, accelerator="cpu", devices=1, logger=False,
                         callbacks=([watch] if watch else []) + [Timer()], enable_progress_bar=False,
                         enable_model_summary=False, enable_checkpointing=False)
    trainer.fit(Lit(), loader)
    return times


def run_transformers(args, watch):
    import torch
    import transformers

    times = []

    class Timer(transformers.TrainerCallback):
        def on_step_begin(self, *a, **k):
            self.t = time.perf_counter()

        def on_step_end(self, *a, **k):
            times.append(time.perf_counter() - self.t)

    class Model(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.net = _torch_mlp(args.width, args.depth, args.dim)

        def forward(self, x, labels=None):
            return {"loss": torch.nn.functional.cross_entropy(self.net(x), labels)}

    x, y = _data(args.steps * args.batch, args.dim)
    data = [{"x": torch.from_numpy(a), "labels": torch.tensor(b)} for a, b in zip(x, y)]
    with tempfile.TemporaryDirectory() as out:
        targs = transformers.TrainingArguments(output_dir=out, per_device_train_batch_size=args.batch,
                                               max_steps=args.steps, use_cpu=True, report_to=[], save_strategy="no",
                                               logging_strategy="no", disable_tqdm=True)
        trainer = transformers.Trainer(model=Model(), args=targs, train_dataset=data)
        trainer.remove_callback(transformers.trainer_callback.PrinterCallback)  # it would print every log
        if watch:
            watch.attach(trainer)
        trainer.add_callback(Timer())
        trainer.train()
    return times


def run_keras(args, watch):
    import keras

    times = []

    class Timer(keras.callbacks.Callback):
        def on_train_batch_begin(self, batch, logs=None):
            self.t = time.perf_counter()

        def on_train_batch_end(self, batch, logs=None):
            times.append(time.perf_counter() - self.t)

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((args.dim,))] + [keras.layers.Dense(args.width, activation="relu")
                                                           for _ in range(args.depth)] + [keras.layers.Dense(10)])
    model.compile(optimizer="sgd", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    x, y = _data(args.steps * args.batch, args.dim)
    model.fit(x, y, batch_size=args.batch, epochs=1, verbose=0, callbacks=([watch] if watch else []) + [Timer()])
    return times


FRAMEWORKS = {"lightning": ("lightning", run_lightning, "spectralwatch.integrations.lightning"),
              "transformers": ("transformers", run_transformers, "spectralwatch.integrations.transformers"),
              "keras": ("keras", run_keras, "spectralwatch.integrations.keras")}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frameworks", nargs="+", default=list(FRAMEWORKS), choices=list(FRAMEWORKS))
    parser.add_argument("--steps", type=int, default=80)
    parser.add_argument("--every", type=int, default=20, help="analyse every N steps")
    parser.add_argument("--width", type=int, default=512)
    parser.add_argument("--depth", type=int, default=4)
    parser.add_argument("--dim", type=int, default=256)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads of the training (0: torch's "
                        "default); the analysis uses its own default workers")
    args = parser.parse_args(argv)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    import importlib
    import importlib.util

    print(f"MLP {args.dim} -> {args.depth} x {args.width} -> 10, batch {args.batch}, {args.steps} steps, "
          f"analysis every {args.every} steps, CPU, {os.cpu_count()} cores, training on "
          f"{args.threads or 'all'} thread(s)")
    head = (f"{'framework':<13}{'plain step':>12}{'idle step':>12}{'analysis':>11}{'held':>10}"
            f"{'held/analysis':>15}{'fit plain':>11}{'fit watched':>13}")
    print(head)
    for name in args.frameworks:
        package, runner, module = FRAMEWORKS[name]
        if importlib.util.find_spec(package) is None:
            print(f"{name:<13}skipped: {package} is not installed")
            continue
        callback = importlib.import_module(module).SpectralWatchCallback
        runner(argparse.Namespace(**{**vars(args), "steps": 4}), None)  # warm-up: imports, first-call costs
        t = time.perf_counter()
        plain = runner(args, None)
        fit_plain = time.perf_counter() - t
        watch = callback(every_n_steps=args.every)
        t = time.perf_counter()
        watched = runner(args, watch)
        fit_watched = time.perf_counter() - t
        steps = list(watch.history["step"])
        base = statistics.median(plain[1:])
        analysed = [watched[s - 1] for s in steps]
        idle = statistics.median([v for i, v in enumerate(watched[1:], start=2) if i not in steps])
        analysis = statistics.mean(watch.history["seconds"])
        held = statistics.mean(a - base for a in analysed)
        print(f"{name:<13}{base * 1e3:>10.1f}ms{idle * 1e3:>10.1f}ms{analysis:>10.3f}s{held:>9.3f}s"
              f"{held / analysis:>15.2f}{fit_plain:>10.2f}s{fit_watched:>12.2f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
