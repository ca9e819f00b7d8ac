"""Training callbacks, each with a real tiny CPU training run: history, logged scalars, the alpha
alarm, and a model trained with the callback bit-identical to one trained without it (the analysis
never touches the weights, their gradients, the optimizer or the random state)."""

import csv
import os
import warnings

os.environ.setdefault("KERAS_BACKEND", "torch")  # Keras 3 on torch: TensorFlow is never needed

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from spectralwatch.errors import InvalidParameterError  # noqa: E402
from spectralwatch.integrations.monitor import LowAlphaWarning, SpectralMonitor  # noqa: E402


def _data(n=256, d=32, k=10, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g)
    y = (x[:, :k] * 3).argmax(dim=1)
    return x, y


def _mlp(seed=0):
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(32, 64), torch.nn.ReLU(), torch.nn.Linear(64, 48), torch.nn.ReLU(),
                               torch.nn.Linear(48, 10))


def _params(module):
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def _same(a, b):
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


METRICS = {"alpha", "alpha_weighted", "log_norm", "log_spectral_norm", "stable_rank", "num_layers", "num_failed"}


# ---- the shared core ---------------------------------------------------------------------------

def test_monitor_options_are_checked_when_the_callback_is_made():
    with pytest.raises(InvalidParameterError, match="not both"):
        SpectralMonitor(every_n_epochs=1, every_n_steps=5)
    with pytest.raises(InvalidParameterError, match="every_n_steps"):
        SpectralMonitor(every_n_steps=0)
    with pytest.raises(InvalidParameterError, match="on_low_alpha"):
        SpectralMonitor(on_low_alpha="panic")
    with pytest.raises(InvalidParameterError, match="min_evals"):
        SpectralMonitor(min_evals=-1)
    with pytest.raises(InvalidParameterError, match="'plot' option"):
        SpectralMonitor(plot=True)
    with pytest.raises(InvalidParameterError, match="'executor'"):
        SpectralMonitor(executor="fibers")
    m = SpectralMonitor()
    assert m.every_n_epochs == 1 and m.epoch_due(1) and m.epoch_due(2) and not m.step_due(1)
    m = SpectralMonitor(every_n_steps=5)
    assert [s for s in range(1, 16) if m.step_due(s)] == [5, 10, 15]


def test_monitor_disables_itself_when_nothing_can_be_analysed():
    m = SpectralMonitor(min_evals=1000)
    with pytest.warns(RuntimeWarning, match="stops analysing"):
        assert m.analyze(_mlp(), step=1, epoch=0) is None
    assert m.disabled and not m.epoch_due(1) and m.history.empty


def test_monitor_alarm_warns_on_crossing_and_stops_when_asked():
    m = SpectralMonitor(alpha_threshold=100.0)
    m.analyze(_mlp(), step=1, epoch=0)
    with pytest.warns(LowAlphaWarning, match="below 100"):
        assert not m.should_stop()
    m.analyze(_mlp(), step=2, epoch=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert not m.should_stop()  # still below: warned once, when it crossed
    m = SpectralMonitor(alpha_threshold=100.0, on_low_alpha="stop")
    m.analyze(_mlp(), step=1, epoch=0)
    with pytest.warns(LowAlphaWarning, match="stopping training"):
        assert m.should_stop()
    ignore = SpectralMonitor(alpha_threshold=100.0, on_low_alpha="ignore")
    ignore.analyze(_mlp(), step=1, epoch=0)
    assert not ignore.should_stop()


def test_analysis_leaves_the_model_its_grads_and_mode_alone():
    model = _mlp()
    x, y = _data()
    torch.nn.functional.cross_entropy(model(x), y).backward()
    model.train()
    before = _params(model)
    grads = [p.grad.clone() for p in model.parameters()]
    flags = [p.requires_grad for p in model.parameters()]
    SpectralMonitor().analyze(model, step=1, epoch=0)
    _same(before, _params(model))
    assert all(torch.equal(g, p.grad) for g, p in zip(grads, model.parameters()))
    assert flags == [p.requires_grad for p in model.parameters()] and model.training


# ---- Lightning ---------------------------------------------------------------------------------

def _lightning():
    return pytest.importorskip("lightning.pytorch", reason="lightning is not installed (pip install lightning)")


def _lit_module(pl):
    class Lit(pl.LightningModule):
        def __init__(self):
            super().__init__()
            self.net = _mlp()

        def training_step(self, batch, _):
            x, y = batch
            loss = torch.nn.functional.cross_entropy(self.net(x), y)
            self.log("train_loss", loss)
            return loss

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.1)

    return Lit()


def _lit_fit(pl, tmp_path, callbacks, epochs=3):
    from torch.utils.data import DataLoader, TensorDataset

    pl.seed_everything(0, verbose=False)
    module = _lit_module(pl)
    loader = DataLoader(TensorDataset(*_data()), batch_size=32, shuffle=True)
    logger = pl.loggers.CSVLogger(str(tmp_path), name="run")
    trainer = pl.Trainer(max_epochs=epochs, accelerator="cpu", devices=1, logger=logger, callbacks=callbacks,
                         enable_progress_bar=False, enable_model_summary=False, enable_checkpointing=False,
                         log_every_n_steps=1, deterministic=True)
    trainer.fit(module, loader)
    return trainer, module, logger


def _csv_rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_lightning_callback_in_a_real_training_run(tmp_path):
    pl = _lightning()
    from spectralwatch.integrations.lightning import SpectralWatchCallback

    watch = SpectralWatchCallback(every_n_epochs=1, at_start=True)
    trainer, module, logger = _lit_fit(pl, tmp_path, [watch])
    h = watch.history
    assert list(h["step"]) == [0, 8, 16, 24] and list(h["epoch"]) == [0, 0, 1, 2]
    assert METRICS <= set(h.columns) and (h["num_layers"] == 3).all() and (h["seconds"] > 0).all()
    assert watch.last_report.summary["alpha"] == h["alpha"].iloc[-1]
    assert float(trainer.callback_metrics["spectralwatch/alpha"]) == pytest.approx(h["alpha"].iloc[-1])
    rows = _csv_rows(os.path.join(logger.log_dir, "metrics.csv"))
    logged = [(int(r["step"]), float(r["spectralwatch/alpha"])) for r in rows if r.get("spectralwatch/alpha")]
    assert [a for _, a in logged] == pytest.approx(list(h["alpha"]))
    # the same training without the callback ends with the same weights, bit for bit
    _, plain, _ = _lit_fit(pl, tmp_path / "plain", [])
    _same(_params(module), _params(plain))


def test_lightning_steps_and_early_stop(tmp_path):
    pl = _lightning()
    from spectralwatch.integrations.lightning import SpectralWatchCallback

    watch = SpectralWatchCallback(every_n_steps=5, alpha_threshold=100.0, on_low_alpha="stop")
    with pytest.warns(LowAlphaWarning, match="stopping training"):
        trainer, _, _ = _lit_fit(pl, tmp_path, [watch], epochs=5)
    assert list(watch.history["step"]) == [5] and trainer.global_step < 5 * 8
    assert watch.state_dict()["records"][0]["step"] == 5


# ---- Hugging Face Trainer -------------------------------------------------------------------------

def _hf():
    return pytest.importorskip("transformers", reason="transformers is not installed")


class _Classifier(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.net = _mlp()

    def forward(self, x, labels=None):
        logits = self.net(x)
        loss = torch.nn.functional.cross_entropy(logits, labels) if labels is not None else None
        return {"loss": loss, "logits": logits}


class _Pairs(torch.utils.data.Dataset):
    def __init__(self):
        self.x, self.y = _data()

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        return {"x": self.x[i], "labels": self.y[i]}


def _hf_fit(tmp_path, callback=None, attach=True, epochs=2, **args):
    transformers = _hf()

    class Recorder(transformers.TrainerCallback):  # stands for TensorBoard, W&B, MLflow: they all use on_log
        def __init__(self):
            self.logs = []

        def on_log(self, args, state, control, logs=None, **kw):
            self.logs.append((state.global_step, dict(logs)))

    recorder = Recorder()
    transformers.set_seed(0)
    model = _Classifier()
    targs = transformers.TrainingArguments(output_dir=str(tmp_path), per_device_train_batch_size=32,
                                           num_train_epochs=epochs, learning_rate=0.1, use_cpu=True, report_to=[],
                                           save_strategy="no", logging_steps=4, seed=0, disable_tqdm=True, **args)
    trainer = transformers.Trainer(model=model, args=targs, train_dataset=_Pairs(), callbacks=[recorder])
    if callback is not None:
        if attach:
            callback.attach(trainer)
        else:
            trainer.add_callback(callback)
    trainer.train()
    return trainer, model, recorder


def test_trainer_callback_in_a_real_training_run(tmp_path):
    _hf()
    from spectralwatch.integrations.transformers import SpectralWatchCallback

    watch = SpectralWatchCallback(every_n_steps=3)
    trainer, model, recorder = _hf_fit(tmp_path, watch)
    h = watch.history
    assert list(h["step"]) == [3, 6, 9, 12, 15] and METRICS <= set(h.columns)
    sent = [(step, logs["spectralwatch/alpha"]) for step, logs in recorder.logs if "spectralwatch/alpha" in logs]
    assert [s for s, _ in sent] == [3, 6, 9, 12, 15] and [a for _, a in sent] == pytest.approx(list(h["alpha"]))
    losses = [step for step, logs in recorder.logs if "loss" in logs]
    assert losses == [4, 8, 12, 16]  # the trainer's own logging is untouched (12: both on one step)
    in_state = [e for e in trainer.state.log_history if "spectralwatch/alpha" in e]
    assert [e["step"] for e in in_state] == [3, 6, 9, 12, 15]
    _, plain, _ = _hf_fit(tmp_path / "plain")
    _same(_params(model), _params(plain))


def test_trainer_callback_by_epoch_unattached_and_early_stop(tmp_path):
    _hf()
    from spectralwatch.integrations.transformers import SpectralWatchCallback

    watch = SpectralWatchCallback(every_n_epochs=1)
    with pytest.warns(UserWarning, match="not attached"):
        trainer, _, recorder = _hf_fit(tmp_path, watch, attach=False)
    assert list(watch.history["step"]) == [8, 16] and list(watch.history["epoch"]) == [1.0, 2.0]
    assert [e["step"] for e in trainer.state.log_history if "spectralwatch/alpha" in e] == [8, 16]
    stop = SpectralWatchCallback(every_n_steps=2, alpha_threshold=100.0, on_low_alpha="stop")
    with pytest.warns(LowAlphaWarning):
        trainer, _, _ = _hf_fit(tmp_path / "stop", stop)
    assert trainer.state.global_step == 2 and list(stop.history["step"]) == [2]


# ---- Keras 3 -------------------------------------------------------------------------------------

def _keras():
    keras = pytest.importorskip("keras", reason="keras is not installed")
    if keras.backend.backend() != "torch":
        pytest.skip("these tests run Keras on the torch backend (KERAS_BACKEND=torch)")
    return keras


@pytest.fixture(autouse=True)
def _fresh_keras_names():
    """Keras numbers layer names per process (dense, dense_1...): leave the counter as it was found."""
    yield
    if "keras" in __import__("sys").modules:
        import keras

        keras.backend.clear_session()


def _keras_fit(keras, tmp_path, callbacks, epochs=3):
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((32,)), keras.layers.Dense(64, activation="relu"),
                              keras.layers.Dense(48, activation="relu"), keras.layers.Dense(10)])
    model.compile(optimizer=keras.optimizers.SGD(0.1),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    x, y = _data()
    history = model.fit(x.numpy(), y.numpy(), batch_size=32, epochs=epochs, shuffle=True, verbose=0,
                        callbacks=callbacks)
    return model, history


def test_keras_callback_in_a_real_training_run(tmp_path):
    keras = _keras()
    from spectralwatch.integrations.keras import SpectralWatchCallback

    watch = SpectralWatchCallback(every_n_epochs=1)
    log = tmp_path / "log.csv"
    model, fit_history = _keras_fit(keras, tmp_path, [watch, keras.callbacks.CSVLogger(str(log))])
    h = watch.history
    assert list(h["epoch"]) == [0, 1, 2] and list(h["step"]) == [8, 16, 24] and METRICS <= set(h.columns)
    assert fit_history.history["spectralwatch/alpha"] == pytest.approx(list(h["alpha"]))
    assert [float(r["spectralwatch/alpha"]) for r in _csv_rows(log)] == pytest.approx(list(h["alpha"]))
    plain, _ = _keras_fit(keras, tmp_path, [])
    for a, b in zip(model.get_weights(), plain.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_keras_steps_and_early_stop(tmp_path):
    keras = _keras()
    from spectralwatch.integrations.keras import SpectralWatchCallback

    watch = SpectralWatchCallback(every_n_steps=6, alpha_threshold=100.0, on_low_alpha="stop")
    with pytest.warns(LowAlphaWarning):
        _, fit_history = _keras_fit(keras, tmp_path, [watch], epochs=5)
    assert list(watch.history["step"]) == [6] and len(fit_history.history["loss"]) == 1
