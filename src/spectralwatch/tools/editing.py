r"""Model editing with the SVD: smoothing (keep the top components) and sharpening (remove traps).

Both act on every analysable layer (the selection rules of :func:`spectralwatch.analyze`) and
return a **new** model; the input object and its file are never modified unless the caller
passes ``inplace=True``.

For each layer, the singular value decomposition :math:`W_i = U_i \Sigma_i V_i^T` of each of its
matrices :math:`W_i` (one per kernel position of a convolution) gives components whose
eigenvalues :math:`s^2` form the layer's pooled ESD (the one ``analyze`` reports). A *count*
:math:`k` is derived from that ESD and the components are ranked by eigenvalue across all the
layer's matrices:

``svd_smoothing`` keeps the :math:`k` largest components, zeroing the others:
    ``method='svd'``: :math:`k = \lfloor \mathrm{percent} \times n \rfloor` (:math:`n` = number of
    eigenvalues; a negative ``percent`` removes the top :math:`|k|` instead);
    ``'detX'``: :math:`k` = ``detX_num`` (the detX / ERG cut, :func:`spectralwatch.rmt.detx_constraint`);
    ``'alpha_min'``: :math:`k` = ``num_pl_spikes``, the power-law tail :math:`\lambda \ge x_{min}`;
    ``'rmt'``: :math:`k` = ``num_spikes``, the eigenvalues above the Marchenko-Pastur bulk edge plus
    the Tracy-Widom margin (:func:`spectralwatch.rmt.fit_marchenko_pastur`).
``svd_sharpness`` removes the :math:`k` largest components, :math:`k` = the number of correlation
    traps: spikes of the ESD of the element-wise *shuffled* matrices (one shuffle, drawn from
    ``rng``), i.e. of directions that owe their size to a few large elements rather than to
    learned correlations (Martin & Mahoney, JMLR 22, 2021, section 6).

A count of 0 (or one that keeps every component) leaves the layer unchanged, as does a failed
fit; :attr:`EditResult.layers` says what happened to each layer. Each edited layer keeps exactly
:math:`k` non-zero eigenvalues (in float64; see ``docs/editing.md`` for storage rounding).
"""

from __future__ import annotations

import copy
import numbers
import os
from dataclasses import dataclass

import numpy as np

from ..errors import InvalidParameterError, NotYetSupportedError
from ..options import Options, defaults_of, keyword_values, suggest_keywords, validate

__all__ = ["svd_smoothing", "svd_sharpness", "EditResult", "LayerEdit", "truncate_components",
           "SMOOTHING_METHODS", "EDITABLE_TYPES"]

SMOOTHING_METHODS = ("svd", "detX", "alpha_min", "rmt")
EDITABLE_TYPES = ("dense", "embedding", "conv1d", "conv2d", "conv3d", "conv_transpose")


# ------------------------------------------------------------------------------------ results

@dataclass(frozen=True)
class LayerEdit:
    """What an edit did to one layer (or one kernel position with ``pool=False``).

    ``k`` is the count the method gave (components to keep for smoothing, to remove for
    sharpening; -1 when it could not be computed); ``kept`` / ``removed`` count components;
    ``status`` is ``'edited'``, ``'unchanged'`` or ``'failed'``, with the reason in ``message``.
    """

    layer_id: int
    name: str
    longname: str
    slice_id: int | None
    num_evals: int
    k: int
    kept: int
    removed: int
    status: str
    message: str = ""


@dataclass(frozen=True, eq=False)
class EditResult:
    """Result of :func:`svd_smoothing` / :func:`svd_sharpness`.

    Attributes
    ----------
    model : object or None
        The edited model (a new object unless ``inplace=True``); None when the input was a path.
    path : str or None
        The file or folder written (``out=``, or the input path with ``inplace=True``).
    operation, method : str
    layers : tuple of LayerEdit
    """

    model: object
    path: str | None
    operation: str
    method: str
    layers: tuple

    def table(self):
        """The per-layer records as a pandas DataFrame."""
        import pandas as pd

        return pd.DataFrame([vars(e) for e in self.layers],
                            columns=list(LayerEdit.__dataclass_fields__))

    @property
    def num_edited(self) -> int:
        return sum(e.status == "edited" for e in self.layers)

    def __repr__(self) -> str:
        where = f" -> {self.path}" if self.path else ""
        return (f"<EditResult {self.operation}(method={self.method!r}): {self.num_edited} of "
                f"{len(self.layers)} edited{where}>")


# --------------------------------------------------------------------------------- the maths

def truncate_components(stack: np.ndarray, k: int, *, svd=None) -> tuple[np.ndarray, np.ndarray]:
    r"""Keep the ``k`` largest singular components of a stack of matrices, ranked jointly.

    Parameters
    ----------
    stack : ndarray, shape (r, N, M)
    k : int
        ``k > 0`` keeps the ``k`` largest components (by singular value, over all ``r``
        matrices; ties in model order); ``k < 0`` removes the ``|k|`` largest and keeps the rest.
    svd : tuple, optional
        ``numpy.linalg.svd(stack, full_matrices=False)`` when already computed.

    Returns
    -------
    (new_stack, keep) : the rebuilt matrices :math:`\sum_{kept} s_j u_j v_j^T` and the boolean
    mask of kept components, shape (r, min(N, M)).
    """
    U, s, Vt = svd if svd is not None else np.linalg.svd(np.asarray(stack, dtype=np.float64), full_matrices=False)
    order = np.argsort(-s.ravel(), kind="stable")
    keep = np.zeros(s.size, dtype=bool)
    keep[order[:k] if k >= 0 else order[-k:]] = True
    keep = keep.reshape(s.shape)
    new = np.matmul(U * np.where(keep, s, 0.0)[:, None, :], Vt)
    return new, keep


def _count(plan, evals: np.ndarray, N: int, M: int, stack, scale: float, rng) -> tuple[int | None, str]:
    """The method's count for one group of matrices; ``(None, reason)`` when it cannot be made."""
    from ..core import rmt

    if plan.operation == "sharpen":
        rand = rmt.randomized_esd(stack, evals, rng, eval_scale=scale, method=plan.mp_fit_method, replicas=1)
        if rand.mp.status != "success":
            return None, f"Marchenko-Pastur fit of the randomized ESD failed: {rand.mp.message}"
        return int(rand.mp.num_spikes), ""
    if plan.method == "svd":
        return int(plan.percent * evals.size), ""
    if plan.method == "detX":
        return int(rmt.detx_constraint(evals).num), ""
    if plan.method == "rmt":
        mp = rmt.fit_marchenko_pastur(evals, N / M, M, method=plan.mp_fit_method)
        return (int(mp.num_spikes), "") if mp.status == "success" else (None, f"MP fit failed: {mp.message}")
    from ..core.fit.powerlaw import fit_power_law
    from ..pipeline.layer import FIT_THRESHOLD

    fit = fit_power_law(evals, thresh=FIT_THRESHOLD, ties="reference",
                        fix_fingers="xmin_peak" if plan.fit == "E_TPL" else None)
    if fit.status != "success":
        return None, f"power-law fit failed: {fit.message}"
    return int(fit.num_pl_spikes), ""


@dataclass(frozen=True)
class _Plan:
    operation: str  # 'smooth' or 'sharpen'
    method: str
    percent: float
    fit: str
    mp_fit_method: str


def _slice_index(shape: tuple, ref, options) -> np.ndarray:
    """Flat tensor index of every entry of every analysed matrix (the slicing of ``layer_matrices``)."""
    from ..core.matrices import layer_matrices

    idx = np.arange(int(np.prod(shape)), dtype=np.float64).reshape(shape)
    mats = layer_matrices(idx, ref.layer_type, conv2d_norm=False, pooled=options.matrices.pool,
                          groups=getattr(ref, "groups", 1), grouped_conv=options.matrices.grouped_conv)
    return mats.stack.astype(np.intp)


def _edit_tensor(tensor: np.ndarray, ref, options, plan: _Plan):
    """``(new tensor or None, [LayerEdit])`` for one layer's canonical tensor."""
    from ..core.rng import layer_rng
    from ..core.matrices import layer_matrices

    m = options.matrices
    mats = layer_matrices(tensor, ref.layer_type, conv2d_norm=m.conv2d_norm, pooled=m.pool,
                          groups=getattr(ref, "groups", 1), grouped_conv=m.grouped_conv)
    groups = [(None, np.arange(mats.rf))] if m.pool or mats.rf == 1 else \
        [(i, np.array([i])) for i in range(mats.rf)]
    new_stack, changed, edits = mats.stack.copy(), False, []
    for slice_id, rows in groups:
        sub = mats.stack[rows]
        svd = np.linalg.svd(sub, full_matrices=False)
        evals = np.sort((svd[1] * svd[1]).ravel()) * mats.eval_scale
        rng = layer_rng(options.analyses.rng, ref.layer_id, slice_id or 0)
        k, why = _count(plan, evals, mats.N, mats.M, sub, mats.eval_scale, rng)
        n = evals.size
        signed = None if k is None else (-k if plan.operation == "sharpen" else k)
        record = dict(layer_id=ref.layer_id, name=ref.name, longname=ref.longname, slice_id=slice_id,
                      num_evals=n, k=-1 if k is None else k)
        if signed is None or signed == 0 or signed >= n or signed <= -n:
            why = why or ("the count is 0" if not signed else "every component would be kept"
                          if signed >= n else "every component would be removed")
            edits.append(LayerEdit(kept=n, removed=0, status="unchanged", message=why, **record))
            continue
        new_stack[rows], keep = truncate_components(sub, signed, svd=svd)
        changed = True
        edits.append(LayerEdit(kept=int(keep.sum()), removed=n - int(keep.sum()), status="edited", **record))
    if not changed:
        return None, edits
    flat = np.asarray(tensor, dtype=np.float64).reshape(-1).copy()
    flat[_slice_index(tuple(tensor.shape), ref, options).ravel()] = new_stack.ravel()
    return flat.reshape(tensor.shape), edits


def _layer(ref, options, plan, problem: str = ""):
    """Load and edit one layer: ``(new tensor or None, [LayerEdit])``; never raises for the layer."""
    base = dict(layer_id=ref.layer_id, name=ref.name, longname=ref.longname, slice_id=None, num_evals=0, k=-1,
                kept=0, removed=0)
    if problem or ref.layer_type not in EDITABLE_TYPES or getattr(ref, "rank", 0) or getattr(ref, "quant", ""):
        why = problem or f"editing a {ref.layer_type}{' (quantized)' if getattr(ref, 'quant', '') else ''} " \
                         "layer is not supported"
        return None, [LayerEdit(status="unchanged", message=why, **base)]
    try:
        tensor = ref.load()
        if tuple(tensor.shape) != tuple(ref.shape):
            raise ValueError(f"the stored tensor has shape {tuple(tensor.shape)}, not {tuple(ref.shape)}")
        if not np.isfinite(tensor).all():
            raise ValueError("the weights contain NaN or Inf values")
        return _edit_tensor(tensor, ref, options, plan)
    except (ValueError, ArithmeticError, np.linalg.LinAlgError, MemoryError) as exc:
        return None, [LayerEdit(status="failed", message=f"{type(exc).__name__}: {exc}", **base)]


# ------------------------------------------------------------------- where the edits are written

def _resolve_key(name: str, keys) -> str | None:
    """The state-dict key of a layer named ``name`` (``.weight`` suffix, ``module.`` prefix)."""
    for cand in (name + ".weight", name, "module." + name + ".weight", "module." + name):
        if cand in keys:
            return cand
    return None


def _edit_module(work, options, plan) -> list:
    """Edit the layers of a torch module in place (``work`` is already the copy)."""
    import torch

    from ..pipeline.analyze import select_layers

    _, chosen, _ = select_layers(work, options)
    edits = []
    for ref, _geometry in chosen:
        module = work.get_submodule(ref.longname) if ref.longname else work
        weight = getattr(module, "weight", None)
        same = weight is not None and tuple(weight.shape) == tuple(ref.shape)
        new, rec = _layer(ref, options, plan, "" if same else "its tensor is not the module's weight")
        if new is not None:
            with torch.no_grad():
                weight.copy_(torch.from_numpy(new))
        edits.extend(rec)
    return edits


def _converted(new: np.ndarray, old):
    """``new`` in the type, dtype and device of ``old`` (a torch tensor or a numpy array)."""
    if isinstance(old, np.ndarray):
        return new.astype(old.dtype)
    import torch

    return torch.from_numpy(new).to(dtype=old.dtype, device=old.device)


def _edit_mapping(work, options, plan) -> list:
    """Edit a state dict (or a checkpoint wrapping one) in place by replacing its entries."""
    from ..pipeline.analyze import select_layers
    from ..io.sources._common import unwrap_checkpoint

    inner = unwrap_checkpoint(work)
    _, chosen, _ = select_layers(inner, options)
    edits = []
    for ref, _geometry in chosen:
        key = _resolve_key(ref.name, inner)
        new, rec = _layer(ref, options, plan, "" if key is not None else "no state-dict key for this layer")
        if new is not None:
            inner[key] = _converted(new, inner[key])
        edits.extend(rec)
    return edits


def _blobs_of_mapping(mapping) -> dict:
    from ..io.sources._common import is_tensor_like, unwrap_checkpoint
    from ..io.writers import blob_from_array, blob_from_torch

    inner = unwrap_checkpoint(mapping)
    return {str(k): (blob_from_array(v) if isinstance(v, np.ndarray) else blob_from_torch(v))
            for k, v in inner.items() if is_tensor_like(v)}


def _safetensors_blobs(path: str, refs: dict, options, plan, edits: list) -> tuple[dict, dict]:
    """Blobs of one safetensors file: edited layers computed while writing, the rest copied."""
    from ..io.sources.safetensors_ import read_safetensors_header
    from ..io.writers import FLOAT_CODES, TensorBlob, blob_from_file, encode_float

    metadata, tensors = read_safetensors_header(path)
    blobs = {}
    for t in tensors:
        copy_blob = blob_from_file(path, t.dtype, t.shape, t.start, t.nbytes)
        ref = refs.get(t.key)
        if ref is None:
            blobs[t.key] = copy_blob
            continue
        problem = "" if t.dtype in FLOAT_CODES else f"cannot write {t.dtype} weights back"

        def write(fh, ref=ref, t=t, copy_blob=copy_blob, problem=problem):
            new, rec = _layer(ref, options, plan, problem)
            edits.extend(rec)
            if new is None:
                return copy_blob.write(fh)
            fh.write(memoryview(encode_float(new, t.dtype).reshape(-1)).cast("B"))

        blobs[t.key] = TensorBlob(t.dtype, t.shape, t.nbytes, write)
    return blobs, metadata


def _edit_safetensors_file(path: str, out: str, options, plan) -> list:
    from ..pipeline.analyze import select_layers
    from ..io.sources.safetensors_ import read_safetensors_header
    from ..io.writers import write_safetensors

    _, chosen, _ = select_layers(path, options)
    keys = {t.key for t in read_safetensors_header(path)[1]}
    refs = {_resolve_key(ref.name, keys): ref for ref, _ in chosen}
    refs.pop(None, None)
    edits: list = []
    blobs, metadata = _safetensors_blobs(path, refs, options, plan, edits)
    write_safetensors(out, blobs, metadata)
    return edits


def _edit_folder(folder: str, out: str, options, plan) -> list:
    """A folder of safetensors shards -> the same shards (edited) and other files in ``out``."""
    import shutil

    from ..pipeline.analyze import select_layers
    from ..io.sources.folder import FolderSource
    from ..io.sources.safetensors_ import read_safetensors_header
    from ..io.writers import write_safetensors

    source = FolderSource(folder)
    files = source.files
    if not files or any(not f.lower().endswith(".safetensors") or os.path.dirname(os.path.abspath(f))
                        != os.path.abspath(folder) for f in files):
        raise NotYetSupportedError(
            f"Editing the folder '{folder}' is supported only for safetensors shards directly inside it; "
            "load its state dict and pass that (with out='new.safetensors') instead.")
    _, chosen, _ = select_layers(folder, options)
    os.makedirs(out, exist_ok=True)
    edits: list = []
    for f in files:
        keys = {t.key for t in read_safetensors_header(f)[1]}
        refs = {_resolve_key(ref.name, keys): ref for ref, _ in chosen}
        refs.pop(None, None)
        blobs, metadata = _safetensors_blobs(f, refs, options, plan, edits)
        write_safetensors(os.path.join(out, os.path.basename(f)), blobs, metadata)
    if os.path.abspath(out) != os.path.abspath(folder):
        shards = {os.path.basename(f) for f in files}
        for entry in os.scandir(folder):
            if entry.is_file() and entry.name not in shards:
                shutil.copy2(entry.path, os.path.join(out, entry.name))
    return edits


# ---------------------------------------------------------------------------------- the driver

def _kind(model) -> str:
    from ..io.sources._common import is_torch_module, is_torch_tensor, path_text

    if isinstance(model, (str, os.PathLike)):
        text = os.path.expanduser(path_text(model))
        if os.path.isdir(text):
            return "folder"
        if text.lower().endswith(".safetensors"):
            return "safetensors"
        if text.lower().endswith((".pt", ".pth", ".bin", ".ckpt", ".npz")):
            return "loadable"
        return "path"
    if is_torch_module(model):
        return "module"
    if is_torch_tensor(model) or isinstance(model, np.ndarray):
        return "array"
    from collections.abc import Mapping

    return "mapping" if isinstance(model, Mapping) else "unknown"


def _check_out(func: str, kind: str, model, out, inplace: bool):
    """Validated output path (or None); refuses to overwrite the input unless ``inplace``."""
    if not isinstance(inplace, bool):
        raise InvalidParameterError(f"The 'inplace' parameter of {func} must be True or False. Got {inplace!r}.")
    is_path = kind in ("folder", "safetensors", "loadable", "path")
    if out is None:
        if is_path and not inplace:
            raise InvalidParameterError(
                f"The 'out' parameter of {func} must be a new path when the model is a file or folder "
                f"(the input is never overwritten unless inplace=True). Got None.")
        return os.path.expanduser(os.fspath(model)) if is_path else None
    if not isinstance(out, (str, os.PathLike)):
        raise InvalidParameterError(f"The 'out' parameter of {func} must be a path (str or os.PathLike) or None. "
                                    f"Got {out!r}.")
    out = os.path.expanduser(os.fspath(out))
    if kind == "folder":
        if os.path.isfile(out):
            raise InvalidParameterError(f"The 'out' parameter of {func} must be a folder for a folder model. "
                                        f"Got the file {out!r}.")
    elif not out.lower().endswith(".safetensors"):
        raise InvalidParameterError(f"The 'out' parameter of {func} must be a path ending in '.safetensors'. "
                                    f"Got {out!r}.")
    if is_path and os.path.abspath(out) == os.path.abspath(os.path.expanduser(os.fspath(model))) and not inplace:
        raise InvalidParameterError(f"The 'out' parameter of {func} must differ from the model's own path "
                                    f"(pass inplace=True to overwrite it). Got {out!r}.")
    return out


def _apply(func: str, model, plan: _Plan, options, out, inplace: bool) -> EditResult:
    from ..io.writers import write_safetensors

    kind = _kind(model)
    target = _check_out(func, kind, model, out, inplace)
    if kind in ("path", "unknown"):
        from ..io.sources import open_source

        open_source(model)  # raises the reader's error (unknown format, missing file)
        raise NotYetSupportedError(f"{func} cannot write back a model of this kind ({type(model).__name__}).")
    if kind == "safetensors":
        edits = _edit_safetensors_file(os.path.expanduser(os.fspath(model)), target, options, plan)
        return EditResult(None, target, plan.operation, plan.method, tuple(edits))
    if kind == "folder":
        edits = _edit_folder(os.path.expanduser(os.fspath(model)), target, options, plan)
        return EditResult(None, target, plan.operation, plan.method, tuple(edits))
    if kind == "loadable":
        if inplace and out is None:
            raise NotYetSupportedError(f"{func} cannot rewrite .pt/.pth/.bin/.ckpt/.npz files in place; "
                                       "pass out='new.safetensors'.")
        work, kind = _load_mapping(os.path.expanduser(os.fspath(model))), "mapping"
    else:
        work = model if inplace else _copy(model, kind)
    if kind == "module":
        edits = _edit_module(work, options, plan)
    elif kind == "array":
        edits = _edit_array(work, options, plan)
    else:
        edits = _edit_mapping(work, options, plan)
    if target is not None:
        blobs = _blobs_of_mapping(work.state_dict() if kind == "module" else
                                  {"W": work} if kind == "array" else work)
        write_safetensors(target, blobs)
    return EditResult(None if _kind(model) == "loadable" else work, target, plan.operation, plan.method,
                      tuple(edits))


def _copy(model, kind: str):
    if kind == "array" and not isinstance(model, np.ndarray):
        return model.detach().clone()
    return copy.deepcopy(model)


def _load_mapping(path: str):
    if path.lower().endswith(".npz"):
        with np.load(path, allow_pickle=False) as npz:
            return {k: npz[k] for k in npz.files}
    from ..io.sources.torch_ import load_state_dict_file

    return dict(load_state_dict_file(path))


def _edit_array(work, options, plan) -> list:
    """A single matrix (numpy array or torch tensor), edited in place."""
    from ..pipeline.analyze import select_layers

    _, chosen, _ = select_layers(work, options)
    edits = []
    for ref, _geometry in chosen:
        new, rec = _layer(ref, options, plan)
        if new is not None:
            if isinstance(work, np.ndarray):
                work[...] = new
            else:
                import torch

                with torch.no_grad():
                    work.copy_(torch.from_numpy(new))
        edits.extend(rec)
    return edits


def _selection(values: dict) -> Options:
    """The layer-selection options of an editing call (already validated) as :class:`Options`."""
    keep = ("layers", "min_evals", "max_evals", "max_N", "pool", "start_ids", "rng")
    return Options.from_values({k: values[k] for k in keep})


DS = defaults_of("svd_smoothing")
DH = defaults_of("svd_sharpness")


@suggest_keywords
def svd_smoothing(model, *,
        percent: float = DS.percent, method: str = DS.method, fit: str = DS.fit, layers: Any = DS.layers,
        min_evals: int | None = DS.min_evals, max_evals: int | None = DS.max_evals, max_N: int | None = DS.max_N,
        pool: bool = DS.pool, start_ids: int | None = DS.start_ids, mp_fit_method: str = DS.mp_fit_method,
        rng: Any = DS.rng, out: str | os.PathLike | None = DS.out, inplace: bool = DS.inplace) -> EditResult:
    """Keep only the largest SVD components of every layer (see the module docstring).

    Parameters
    ----------
    model
        A torch module, a state dict (of tensors or arrays), a numpy array / torch tensor, or a
        path: a ``.safetensors`` file, a folder of safetensors shards, a ``.pt/.pth/.bin/.ckpt``
        or ``.npz`` file.
    percent : float in [-1, 1]
        Fraction of the eigenvalues to keep with ``method='svd'`` (negative: fraction of the
        largest to remove).
    method : {'detX', 'svd', 'alpha_min', 'rmt'}
    layers, min_evals, max_evals, max_N, pool, start_ids
        Layer selection as in :func:`spectralwatch.analyze`; ``pool=False`` edits each kernel
        position of a convolution with its own count.
    fit : {'PL', 'TPL', 'E_TPL'}
        With ``'alpha_min'``: the power-law fit whose tail is kept ('E_TPL' uses the
        ``xmin_peak`` rule; a truncated fit has the same tail as the plain one).
    mp_fit_method : {'quantile', 'ww'}
        Sigma fit of the Marchenko-Pastur law (``'rmt'``), see :mod:`spectralwatch.rmt`.
    rng : None, int or numpy.random.Generator
        Unused by smoothing (accepted for symmetry with :func:`svd_sharpness`).
    out : path, optional
        Write the edited model to this new ``.safetensors`` file (a folder for a folder model);
        required for path inputs unless ``inplace=True``.
    inplace : bool
        Modify the given object (or overwrite the given file / folder) instead of a copy.

    Returns
    -------
    EditResult
        ``.model`` (the new object), ``.path`` (what was written), ``.layers`` (per-layer records).
    """
    func = "svd_smoothing"
    values = validate(func, keyword_values(func, locals()))
    plan = _Plan("smooth", values["method"], values["percent"], values["fit"], values["mp_fit_method"])
    options = _selection(values)
    out, inplace = values["out"], values["inplace"]
    return _apply(func, model, plan, options, out, inplace)


@suggest_keywords
def svd_sharpness(model, *,
        layers: Any = DH.layers, min_evals: int | None = DH.min_evals, max_evals: int | None = DH.max_evals,
        max_N: int | None = DH.max_N, pool: bool = DH.pool, start_ids: int | None = DH.start_ids,
        mp_fit_method: str = DH.mp_fit_method, rng: Any = DH.rng, out: str | os.PathLike | None = DH.out,
        inplace: bool = DH.inplace) -> EditResult:
    """Remove, in every layer, as many top SVD components as its shuffled ESD has correlation traps.

    Parameters are those of :func:`svd_smoothing`; ``rng`` seeds the shuffles (each layer derives
    its own generator from it, so the result does not depend on the order of the layers).
    """
    func = "svd_sharpness"
    values = validate(func, keyword_values(func, locals()))
    plan = _Plan("sharpen", "traps", 0.0, "PL", values["mp_fit_method"])
    options = _selection(values)
    out, inplace = values["out"], values["inplace"]
    return _apply(func, model, plan, options, out, inplace)
