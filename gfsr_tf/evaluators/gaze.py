"""Maps against the radiologist's gaze (data with `gaze` heatmaps, e.g. EGD-CXR or the gaze
simulation), on the last test split: the model's decoder output (models with a `gaze` output),
its Grad-CAM, its guided-backprop and DeconvNet maps M of the predicted class (Watanabe et
al.'s generators), and a constant map - the mean training heatmap - that any useful map must
beat; and the decoder against the generator maps (`decoder_vs_maps`: what set 2 imitates). The
decoder and generator maps are saved beside the Grad-CAMs (explanations.npz, keys
`<split>/decoder`, `<split>/guided_backprop`, `<split>/deconvnet`)."""
from __future__ import annotations

import keras
import numpy as np

from ..metrics.heatmaps import heatmap_metrics


def decoder_maps(model, preprocess, images: np.ndarray, batch_size: int = 32) -> np.ndarray:
    """The `gaze` output (N, H, W) of a model that has one."""
    head = keras.Model(model.inputs, model.get_layer("gaze").output)
    out = [np.asarray(head(preprocess(images[i:i + batch_size]), training=False))[..., 0]
           for i in range(0, len(images), batch_size)]
    return np.clip(np.concatenate(out), 0, 1).astype(np.float32)


def evaluate(ctx) -> dict:
    split = ctx.tests[-1] if ctx.tests else None
    data = ctx.splits.get(split)
    if data is None or data.gaze is None:
        return {}
    target = data.gaze
    train = ctx.splits["train"]
    mean_map = train.gaze.mean(0) if train.gaze is not None else target.mean(0)
    maps = {"constant (mean training heatmap)": np.broadcast_to(mean_map, target.shape)}
    if ctx.layer:
        maps["grad-cam"] = ctx.heatmaps(split)
    full = getattr(ctx, "full_model", None)
    if full is not None and "gaze" in [layer.name for layer in full.layers]:
        ctx.maps[f"{split}/decoder"] = decoder_maps(full, ctx.preprocess, data.images)
        maps["decoder"] = ctx.maps[f"{split}/decoder"]
    from ..saliency.input_gradients import explain_rule
    x = np.asarray(ctx.preprocess(data.images))
    for rule in ("guided_backprop", "deconvnet"):
        try:
            ctx.maps[f"{split}/{rule}"] = explain_rule(ctx.model, x, rule).heatmaps
        except ValueError:          # no ReLU / swish to guide: the map is undefined
            continue
        maps[rule] = ctx.maps[f"{split}/{rule}"]
    metrics = {name: heatmap_metrics(np.clip(m, 0, 1), target) for name, m in maps.items()}
    # what the decoder imitates (Watanabe et al.'s set 2 trains it towards M, not the gaze)
    mimicry = {f"decoder vs {rule}": heatmap_metrics(maps["decoder"], np.clip(maps[rule], 0, 1))
               for rule in ("guided_backprop", "deconvnet") if "decoder" in maps and rule in maps}
    return {"gaze": {"split": split, "metrics": metrics, "decoder_vs_maps": mimicry}}
