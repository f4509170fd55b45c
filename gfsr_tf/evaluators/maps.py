"""Explanation maps compared on one footing (MedicalPatchNet's Tables 2-3 and beyond): every
map a model offers, scored against the lesion masks, for faithfulness and for the marker.

Maps: a patch model's own maps (raw and scaled, block o = p and smoothed o = p/4); any other
model's Grad-CAM and Grad-CAM++ at its last conv stage and at conv3_block4_out, and Eigen-CAM at
the last stage. Per map, for each class with lesion masks (its maps explain that class on every
image):
  hit_rate           pointing game over images of the class with a non-empty mask (bilinear
                     upsampling, argmax); `hit_rate_macro` averages the classes
  miou_tp            min-max maps thresholded at the class's threshold tuned on validation for
                     this objective; true-positive images only (CheXlocalize)
  miou_tpfpfn        threshold tuned for the TP/FP/FN objective; every test image counts (a map
                     on an image of another class, whose mask is empty, is a false positive)
  miou_tpfpfn_youden the same, with the maps of images below the validation Youden threshold
                     counted empty (the model said "absent")
  deletion_auc / insertion_auc   evaluation.faithfulness on the first `images` positives of the
                     class (blurred-image baseline), the class probability
  marker_argmax_share  marked images of the class: share whose map's argmax is in the marker box
and for patch models, on every counterfactual twin pair, the decomposition of the logit change.
"""
from __future__ import annotations

import keras
import numpy as np

from ..metrics import box_masks, choose_threshold, hit_rate, iou, mean_ci
from ..metrics.faithfulness import blurred_baseline, deletion_insertion
from ..metrics.localization import binarise, iou_curve, normalise_maps
from ..methods.patchnet.model import is_patch_model, last_stage, patch_count
from ..methods.patchnet.patch_maps import black, patch_logits, patch_maps, positive_part

FAITHFULNESS_IMAGES = 32
FAITHFULNESS_STEPS = 12
EXAMPLES = 4
N_THRESHOLDS = 51


def map_functions(ctx) -> dict:
    """name -> f(model inputs, class index per image) -> (N, H, W) maps in [0, 1] (several
    maps from one set of passes share a key tuple)."""
    model = ctx.model
    if is_patch_model(model) and patch_count(model) > 1:
        size = ctx.splits[ctx.eval_split].images.shape[1]
        p = size // patch_count(model)
        fill = black(ctx.preprocess, 1)
        out = {}
        for o in dict.fromkeys((p, max(1, p // 4))):
            # the block map is scored as the P x P grid upsampled bilinearly, like every CAM
            paint = "bilinear" if o == p else "blocks"
            out[(f"patch_raw_o{o}", f"patch_scaled_o{o}")] = \
                lambda x, cls, o=o, paint=paint: _positive(patch_maps(
                    model, x, fill=fill, offset=o, class_index=cls, paint=paint))
        return out
    from ..saliency import explain
    from ..saliency.posthoc import eigencam, explain_posthoc
    last = _last_stage(model)
    out = {}
    for layer in dict.fromkeys([last, "conv3_block4_out"]):
        if layer is None or not ctx.has_layer(layer):
            continue
        out[f"gradcam@{layer}"] = lambda x, cls, l=layer: explain(model, x, layer=l,
                                                                   class_index=cls).heatmaps
        out[f"gradcam++@{layer}"] = lambda x, cls, l=layer: explain_posthoc(
            model, x, "gradcam++", layer=l, class_index=cls).heatmaps
    if last is not None:
        out[f"eigencam@{last}"] = lambda x, cls: eigencam(model, x, layer=last)
    return out


def _last_stage(model):
    """The backbone's last conv stage: the input of a patch model's pooling, else the last 4-D
    layer."""
    from ..saliency.cam_model import last_conv_layer
    return last_stage(model) if is_patch_model(model) else last_conv_layer(model)


def _positive(maps: dict) -> tuple:
    return tuple(positive_part(signed) for signed in maps.values())


def _tune(maps, masks, true_pos_only: bool) -> float | None:
    """The threshold on min-max maps that maximises the objective's mean IoU on validation
    (None when validation holds no image the objective can score)."""
    if len(maps) == 0 or (true_pos_only and not masks.reshape(len(masks), -1).any()):
        return None
    curve = iou_curve(maps, masks, N_THRESHOLDS)            # NaN rows: empty masks
    if not true_pos_only:   # an empty mask scores 1 if nothing is predicted, else 0 (an FP)
        norm = normalise_maps(maps).reshape(len(maps), -1)
        taus = np.linspace(0, 1, N_THRESHOLDS)
        empty = np.isnan(curve[:, 0])
        curve[empty] = (norm[empty].max(1)[:, None] < taus[None]).astype(float)
        # both empty is undefined in the test metric; on validation, rewarding a correct
        # abstention keeps the threshold from labelling every negative
    defined = ~np.isnan(curve[:, 0])
    return float(np.argmax(np.nanmean(curve[defined], 0)) / (N_THRESHOLDS - 1))


def _miou(maps, masks, threshold, true_pos_only, empty=None) -> float:
    pred = binarise(maps, threshold)
    if empty is not None:
        pred[empty] = False
    values = iou(pred, masks, true_pos_only)
    defined = ~np.isnan(values)
    return float(values[defined].mean()) if defined.any() else float("nan")


def _class_masks(data, c) -> np.ndarray:
    """Lesion masks for class c: the image's own where its label is c, empty elsewhere."""
    return data.lesions.astype(bool) & (data.labels == c)[:, None, None]


def evaluate(ctx) -> dict:
    data = ctx.splits[ctx.eval_split]
    val = ctx.splits.get("val")
    if data.lesions is None:
        return {}
    classes = [c for c in range(data.num_classes)
               if _class_masks(data, c).reshape(len(data), -1).any(1).any()]
    functions = map_functions(ctx)
    x_test = np.asarray(ctx.preprocess(data.images))
    x_val = np.asarray(ctx.preprocess(val.images)) if val is not None and val.lesions is not None \
        else None
    p_test = ctx.predict(data.images, ctx.eval_split)
    p_val = ctx.predict(val.images, "val") if x_val is not None else None
    results: dict = {}
    bar = keras.utils.Progbar(len(classes) * len(functions), verbose=ctx.verbose,
                              unit_name="map")
    if ctx.verbose:
        print(f"maps: {len(functions)} explainers x {len(classes)} class(es) on "
              f"{ctx.eval_split} and val")
    for c in classes:
        test_masks = _class_masks(data, c)
        val_masks = _class_masks(val, c) if x_val is not None else None
        prob_c = _class_probability(p_test, c)
        youden = None
        if x_val is not None and (val.labels == c).any() and (val.labels != c).any():
            youden = choose_threshold((val.labels == c).astype(int), _class_probability(p_val, c),
                                      "youden")
        positives = np.flatnonzero(test_masks.reshape(len(data), -1).any(1))
        for key, function in functions.items():
            names = key if isinstance(key, tuple) else (key,)
            test_maps = _as_tuple(function(x_test, np.full(len(data), c)))
            val_maps = _as_tuple(function(x_val, np.full(len(val), c))) \
                if x_val is not None else (None,) * len(names)
            for name, heat, vheat in zip(names, test_maps, val_maps):
                entry = _score(ctx, data, heat, vheat, test_masks, val_masks, c, prob_c, youden,
                               positives)
                results.setdefault(name, {})[str(c)] = entry
                if c == classes[-1]:
                    ctx.maps[f"maps/{name}"] = heat[_examples(data, c)]
            bar.add(1)
    out = {name: {**_macro(per_class), "per_class": per_class}
           for name, per_class in results.items()}
    section = {"maps": out, "maps_split": ctx.eval_split}
    if is_patch_model(ctx.model) and patch_count(ctx.model) > 1 and data.twins is not None:
        section["patch_twins"] = patch_twins(ctx.model, x_test, np.asarray(
            ctx.preprocess(data.twins)), data)
    if classes:
        index = _examples(data, classes[-1])
        section["maps_examples"] = index.tolist()
        ctx.maps["maps/images"] = data.images[index].astype(np.float32)
        if is_patch_model(ctx.model) and patch_count(ctx.model) > 1:
            from ..methods.patchnet.patch_maps import patch_saliency
            ctx.maps["maps/signed_raw"] = patch_saliency(
                ctx.model, x_test[index], fill=black(ctx.preprocess, 1), offset=max(
                    1, data.images.shape[1] // patch_count(ctx.model) // 4),
                class_index=classes[-1])
    return section


def _class_probability(probs: np.ndarray, c: int) -> np.ndarray:
    """P(class c) from binary P(class 1) (N,) or class probabilities (N, K)."""
    if probs.ndim == 1:
        return probs if c == 1 else 1.0 - probs
    return probs[:, c]


def _as_tuple(value):
    return value if isinstance(value, tuple) else (value,)


def _examples(data, c) -> np.ndarray:
    """The figure's images: positives of class c, marked ones first where there is a marker."""
    pick = np.flatnonzero(data.labels == c)
    if data.has_marker is not None:
        pick = np.concatenate([pick[data.has_marker[pick]], pick[~data.has_marker[pick]]])
    return pick[:EXAMPLES]


def _score(ctx, data, heat, vheat, masks, val_masks, c, prob_c, youden, positives):
    own = data.labels == c
    hits = hit_rate(heat[own], masks[own])
    entry = {"hit_rate": hits["hit_rate"], "hit_rate_ci": mean_ci(hits["hits"]), "n": hits["n"]}
    if vheat is not None:
        val_own = (ctx.splits["val"].labels == c)
        t_tp = _tune(vheat[val_own], val_masks[val_own], True)
        t_all = _tune(vheat, val_masks, False)
        nan = float("nan")
        entry.update(threshold_tp=t_tp, threshold_tpfpfn=t_all,
                     miou_tp=nan if t_tp is None else _miou(heat[own], masks[own], t_tp, True),
                     miou_tpfpfn=nan if t_all is None else _miou(heat, masks, t_all, False))
        if t_tp is None:
            entry["note"] = "no validation image of this class has a mask: threshold not tuned"
        if youden is not None and t_all is not None:
            entry["miou_tpfpfn_youden"] = _miou(heat, masks, t_all, False, prob_c < youden)
    k = positives[:FAITHFULNESS_IMAGES]
    if len(k):
        images = data.images[k].astype(np.float32)

        def probabilities(x):
            p = ctx.predict(x)
            return np.stack([1 - p, p], 1) if p.ndim == 1 else p

        faith = deletion_insertion(probabilities, images, heat[k], np.full(len(k), c),
                                   blurred_baseline(images), FAITHFULNESS_STEPS)
        entry.update(deletion_auc=faith["deletion_auc"], insertion_auc=faith["insertion_auc"],
                     faithfulness_images=int(len(k)))
    if data.has_marker is not None and data.marker_boxes is not None:
        marked = own & data.has_marker
        if marked.any():
            boxes = box_masks(data.marker_boxes[marked], heat.shape[1:])
            entry["marker_argmax_share"] = hit_rate(heat[marked], boxes)["hit_rate"]
            entry["marker_images"] = int(marked.sum())
    return entry


def _macro(per_class: dict) -> dict:
    keys = ("hit_rate", "miou_tp", "miou_tpfpfn", "miou_tpfpfn_youden", "deletion_auc",
            "insertion_auc", "marker_argmax_share")
    return {f"{k}_macro" if k in ("hit_rate", "miou_tp", "miou_tpfpfn") else k:
            float(np.nanmean([e[k] for e in per_class.values() if k in e]))
            for k in keys if any(k in e for e in per_class.values())}


def patch_twins(model, x, x_twin, data) -> dict:
    """Every twin pair (image with the marker vs the same image without it): the change of each
    patch logit, Delta z_i, and of the image logit, Delta Z. Exact decomposition: Delta Z =
    mean_i Delta z_i; patches that do not intersect the marker box cannot change."""
    marked = np.flatnonzero(data.has_marker)
    if not len(marked):
        return {}
    z, _ = patch_logits(model, x[marked])
    z_twin, _ = patch_logits(model, x_twin[marked])
    dz = (z - z_twin)[..., -1]                                    # the last class's logit
    n = dz.shape[1]
    p = data.images.shape[1] // n
    touched = np.zeros(dz.shape, bool)
    for k, (y0, x0, y1, x1) in enumerate(data.marker_boxes[marked]):
        touched[k, y0 // p:(y1 - 1) // p + 1, x0 // p:(x1 - 1) // p + 1] = True
    from ..methods.patchnet.patch_maps import image_logits
    dZ = image_logits(model, x[marked])[:, -1] - image_logits(model, x_twin[marked])[:, -1]
    return {"pairs": int(len(marked)),
            "max_abs_change_outside_marker_patches": float(np.abs(dz[~touched]).max())
            if (~touched).any() else 0.0,
            "mean_change_in_marker_patches": float(dz[touched].mean()),
            "mean_image_logit_change": float(dZ.mean()),
            "max_decomposition_error": float(np.abs(dZ - dz.mean((1, 2))).max()),
            "marker_patches_per_image": float(touched.reshape(len(dz), -1).sum(1).mean())}
