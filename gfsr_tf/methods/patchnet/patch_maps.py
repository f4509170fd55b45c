"""MedicalPatchNet's own explanation: the patch logits themselves, painted over their patches.

raw:    the class's patch logit z_i (single-unit binary head: class 1 = z, class 0 = -z; softmax
        head: each patch's logits centred over classes first, since a softmax ignores a
        per-patch constant).
scaled: the raw value times the image's class probability sigma(Z) (1 - p for class 0 of a
        binary head), broadcast over the patches of that image only.
Shifted-grid smoothing (offset o): the image is moved by s in {-p/2, -p/2 + o, ..., p/2 - o}
(`shifts`; o = p: no shift, the single block map) along each axis, padded with black (the
preprocessed value of a black pixel, which equals padding the raw pixels before the per-pixel
preprocessing); each shifted copy's map is painted and moved back, and the n^2 maps (n = p / o)
are averaged, so pixels within p/2 of the border are attenuated, as in the reference code. Every
shifted copy is an image of its own (its own sigma(Z_s)); the model runs in inference mode, so
maps do not depend on the batch size.
"""
from __future__ import annotations

import collections
import hashlib
import weakref

import keras
import numpy as np
import tensorflow as tf

from .model import IMAGE_LOGITS, PATCH_GRID, is_patch_model, patch_count
from ...saliency.gradcam import Explanation

KINDS = ("raw", "scaled")


_GRID_MODELS: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def _grid_model(model):
    """model input -> (patch logit grid (N, P, P, K), class probabilities), traced once per
    model (the shifted grid calls it n^2 times per batch)."""
    if not is_patch_model(model):
        raise ValueError(f"model {model.name!r} has no {PATCH_GRID!r} layer: patch maps need a "
                         "MedicalPatchNet (gfsr_tf.models)")
    if model not in _GRID_MODELS:
        both = keras.Model(model.inputs[0], [model.get_layer(PATCH_GRID).output,
                                             model.outputs[0]])
        _GRID_MODELS[model] = tf.function(lambda x: both(x, training=False),
                                          reduce_retracing=True)
    return _GRID_MODELS[model]


def positive_part(signed: np.ndarray) -> np.ndarray:
    """Signed maps -> their positive part, max-normalised per image (as Grad-CAM's), so the
    localization metrics read every method alike."""
    pos = np.clip(signed, 0, None)
    return (pos / (pos.reshape(len(pos), -1).max(1)[:, None, None] + 1e-12)).astype(np.float32)


def _head(model) -> str:
    return model.layers[-1].get_config().get("activation", "sigmoid")


def patch_values(grid: np.ndarray, probs: np.ndarray, class_index, kind: str = "raw",
                 head: str = "sigmoid") -> np.ndarray:
    """(N, P, P) per-patch values of class `class_index` (N,) from the logit grid (N, P, P, K)
    and the image probabilities (N, K) - see the module docstring."""
    if kind not in KINDS:
        raise ValueError(f"unknown patch map kind {kind!r}; choose raw or scaled")
    grid, probs = np.asarray(grid, np.float64), np.asarray(probs, np.float64)
    cls = np.broadcast_to(np.asarray(class_index, int), (len(grid),))
    rows = np.arange(len(grid))
    if grid.shape[-1] == 1:                      # single sigmoid unit: class 1 = z, class 0 = -z
        sign = np.where(cls == 1, 1.0, -1.0)
        raw = grid[..., 0] * sign[:, None, None]
        p = np.where(cls == 1, probs[:, 0], 1.0 - probs[:, 0])
    else:
        if head == "softmax":
            grid = grid - grid.mean(-1, keepdims=True)
        raw = grid[rows, :, :, cls]
        p = probs[rows, cls]
    return raw * p[:, None, None] if kind == "scaled" else raw


def patch_logits(model, x: np.ndarray, batch_size: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """(logit grid (N, P, P, K), probabilities (N, K)) for model inputs `x` (preprocessed)."""
    grids, probs = [], []
    run = _grid_model(model)
    for i in range(0, len(x), batch_size):
        g, p = run(tf.constant(np.asarray(x[i:i + batch_size], np.float32)))
        grids.append(np.asarray(g))
        probs.append(np.asarray(p))
    return np.concatenate(grids), np.concatenate(probs)


def shifts(p: int, offset: int) -> np.ndarray:
    """The n = p / o shifts per axis, s_k = (k - floor(n / 2)) * o: {-p/2, -p/2 + o, ..., p/2 - o}
    when n is even, and {0} for o = p (the unshifted block map, "each of the original patches
    evaluated exactly once", as the paper defines it)."""
    if offset < 1 or p % offset:
        raise ValueError(f"offset o = {offset} must divide the patch size p = {p}")
    n = p // offset
    return (np.arange(n) - n // 2) * offset


def black(preprocess, channels: int) -> np.ndarray:
    """What a black raw pixel becomes after `preprocess` (the shifted grid's padding)."""
    return np.asarray(preprocess(np.zeros((1, 1, 1, channels), np.float32)))[0, 0, 0]


_PASSES: collections.OrderedDict = collections.OrderedDict()
_PASSES_KEPT = 4


def shifted_passes(model, x: np.ndarray, *, fill=0.0, offset: int | None = None,
                   batch_size: int = 32, progress: bool = False) -> list:
    """[(s_y, s_x, logit grid (N, P, P, K), probabilities (N, K))] of every shifted copy of the
    model inputs `x`. The last few results are kept (keyed by model, the inputs' bytes, fill
    and offset), so maps of other classes or kinds of the same images cost no new pass."""
    images = np.asarray(x, np.float32)
    size = images.shape[1]
    p = size // patch_count(model)
    offset = p if offset is None else int(offset)
    steps = shifts(p, offset)
    fill = np.asarray(fill, np.float32)
    # a model trained further (same object) must not read its old passes
    weights = model.weights
    fingerprint = tuple(float(np.sum(np.asarray(weights[i]))) for i in
                        (0, len(weights) // 2, -1)) if weights else ()
    key = (id(model), fingerprint, hashlib.sha1(images.tobytes()).hexdigest(), images.shape,
           fill.tobytes(), offset)
    if key in _PASSES:
        _PASSES.move_to_end(key)
        return _PASSES[key]
    half = p // 2
    pad = [(0, 0), (half, p - half), (half, p - half)] + [(0, 0)] * (images.ndim - 3)
    padded = np.pad(images - fill, pad) + fill     # black borders
    pairs = [(sy, sx) for sy in steps for sx in steps]
    bar = keras.utils.Progbar(len(pairs), verbose=int(progress))
    out = []
    for k, (sy, sx) in enumerate(pairs):
        # I_s(u) = I(u + s): the window of the padded image starting at s + p/2
        shifted = padded[:, sy + half:sy + half + size, sx + half:sx + half + size]
        out.append((int(sy), int(sx), *patch_logits(model, shifted, batch_size)))
        bar.update(k + 1)
    _PASSES[key] = out
    while len(_PASSES) > _PASSES_KEPT:
        _PASSES.popitem(last=False)
    return out


def patch_maps(model, x: np.ndarray, *, fill=0.0, offset: int | None = None,
               class_index=None, kinds=KINDS, batch_size: int = 32, paint: str = "blocks",
               progress: bool = False) -> dict[str, np.ndarray]:
    """Signed patch maps {kind: (N, S, S)} of model inputs `x` (preprocessed), every kind from
    one set of shifted passes (`shifted_passes`). fill: the padding value per channel
    (`black(preprocess, channels)`); offset: o (default p: the block map); class_index: per
    image or one for all (default: the predicted class). paint: "blocks" (each patch's value
    over its p x p block) or, for the unshifted map only, "bilinear" (the P x P grid upsampled
    bilinearly, as every CAM is before a pointing game: a block map's argmax is otherwise the
    top-left pixel of its best patch)."""
    images = np.asarray(x, np.float32)
    n_img, size = len(images), images.shape[1]
    p = size // patch_count(model)
    passes = shifted_passes(model, images, fill=fill, offset=offset, batch_size=batch_size,
                            progress=progress)
    if paint not in ("blocks", "bilinear") or (paint == "bilinear" and len(passes) > 1):
        raise ValueError(f"paint must be blocks, or bilinear for the unshifted map (o = p), "
                         f"got {paint!r} with {len(passes)} shifts")
    head = _head(model)
    if class_index is None:
        probs = next(pr for sy, sx, _, pr in passes if sy == 0 and sx == 0)
        class_index = (probs[:, 0] >= 0.5).astype(int) if probs.shape[-1] == 1 \
            else probs.argmax(1)
    cls = np.broadcast_to(np.asarray(class_index, int), (n_img,))
    out = {}
    for kind in kinds:
        if paint == "bilinear":
            values = patch_values(passes[0][2], passes[0][3], cls, kind, head)
            out[kind] = tf.image.resize(values[..., None].astype(np.float32), (size, size),
                                        method="bilinear")[..., 0].numpy()
            continue
        total = np.zeros((n_img, size + 2 * p, size + 2 * p))
        for sy, sx, grid, probs in passes:
            values = patch_values(grid, probs, cls, kind, head)
            painted = np.repeat(np.repeat(values, p, axis=1), p, axis=2)
            # M(v) = M_s(v - s): painted back at +s (canvas origin at -p, so index v + p)
            total[:, sy + p:sy + p + size, sx + p:sx + p + size] += painted
        out[kind] = (total[:, p:p + size, p:p + size] / len(passes)).astype(np.float32)
    return out


def patch_saliency(model, x: np.ndarray, *, kind: str = "raw", **options) -> np.ndarray:
    """One kind of `patch_maps` (N, S, S)."""
    return patch_maps(model, x, kinds=(kind,), **options)[kind]


def image_logits(model, x: np.ndarray, batch_size: int = 32) -> np.ndarray:
    """The model's own image logits Z (N, K) (its "logits" layer, not recomputed here)."""
    run = keras.Model(model.inputs[0], model.get_layer(IMAGE_LOGITS).output)
    return np.concatenate([np.asarray(run(np.asarray(x[i:i + batch_size], np.float32),
                                          training=False))
                           for i in range(0, len(x), batch_size)])


def explain_patches(model, x, *, fill=0.0, offset=None, kind="raw", class_index=None,
                    batch_size: int = 32) -> Explanation:
    """`patch_saliency` as an `Explanation` whose heatmaps are its `positive_part`."""
    signed = patch_saliency(model, x, fill=fill, offset=offset, kind=kind,
                            class_index=class_index, batch_size=batch_size)
    _, probs = patch_logits(model, np.asarray(x, np.float32), batch_size)
    probs = np.concatenate([1 - probs, probs], 1) if probs.shape[-1] == 1 else probs
    cls = np.broadcast_to(np.asarray(probs.argmax(1) if class_index is None else class_index,
                                     int), (len(signed),))
    return Explanation(probs, positive_part(signed), cls, f"{PATCH_GRID}/{kind}/o={offset}")
