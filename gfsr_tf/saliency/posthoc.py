"""Post-hoc explainers to compare against, behind the call signature of `explain`.

Grad-CAM++, Score-CAM and SmoothGrad come from tf-keras-vis, LIME from the `lime` package (the
paper's Fig 4a), expected gradients from `shap` (`saliency.expected_gradients`); nothing here
re-implements them. Eigen-CAM is written here: neither
tf-keras-vis nor any Keras package offers it (pytorch-grad-cam's is PyTorch-only). Every method returns an `Explanation` with
heatmaps (N, H, W) in [0, 1] at the input size, for the requested class (default: predicted).
"""
from __future__ import annotations

import numpy as np
import tensorflow as tf

from .cam_model import output_tensor
from .gradcam import Explanation, explain

METHODS = ("gradcam", "layercam", "gradcam++", "scorecam", "smoothgrad", "lime", "eigencam",
           "expected_gradients", "guided_backprop", "deconvnet", "gradient")


def _probabilities(model, images, batch_size):
    p = np.asarray(model.predict(images, batch_size=batch_size, verbose=0), np.float64)
    return np.concatenate([1 - p, p], 1) if p.shape[-1] == 1 else p


def _score(model, class_index):
    """tf-keras-vis score on the model's logits (the modifier makes the last layer linear): for a
    single-logit binary head the class score is +logit (class 1) or -logit (class 0)."""
    cls = tf.constant(class_index, tf.int32)
    if int(output_tensor(model).shape[-1]) == 1:
        return lambda out: tf.where(cls == 1, out[:, 0], -out[:, 0])
    from tf_keras_vis.utils.scores import CategoricalScore
    return CategoricalScore(list(class_index))


def explain_posthoc(model, images, method: str = "gradcam", *, layer: str | None = None,
                    class_index=None, batch_size: int = 32, **options) -> Explanation:
    """Heatmaps from `method` in METHODS for the model's input `images` (for gfsr_tf classifiers:
    `preprocess`ed). options: scorecam max_N (default 16: the faster Score-CAM variant that
    keeps the N most active channels); smoothgrad smooth_samples (20), smooth_noise (0.2);
    lime num_samples (500), n_segments (50), compactness (0.2: chest X-ray, as the paper's
    SLIC), seed (0); expected_gradients background (model inputs; default 50 seeded draws
    from `images` - SegX draws them from validation), n_samples (50), seed (0)."""
    if method not in METHODS:
        raise ValueError(f"unknown explainer {method!r}; choose one of {METHODS}")
    if method in ("gradcam", "layercam"):  # ours (in-graph; nested backbones)
        return explain(model, images, layer=layer, class_index=class_index, batch_size=batch_size,
                       rule=method)
    if method in ("guided_backprop", "deconvnet", "gradient"):
        from .input_gradients import explain_rule
        return explain_rule(model, images, method, class_index, batch_size)
    images = np.asarray(images, np.float32)
    probs = _probabilities(model, images, batch_size)
    cls = probs.argmax(1) if class_index is None else \
        np.broadcast_to(np.asarray(class_index, np.int32), (len(images),)).copy()
    if method == "lime":
        heat = _lime(model, images, cls, batch_size, **options)
        return Explanation(probs, heat, cls, layer or "")
    if method == "expected_gradients":
        from .expected_gradients import background_sample, expected_gradients
        background = options.pop("background", None)
        if background is None:
            background = background_sample(images, 50, options.get("seed", 0))
        heat = expected_gradients(model, images, cls, background, batch_size=50, **options)
        return Explanation(probs, heat.astype(np.float32), cls, layer or "")
    if method == "eigencam":
        return Explanation(probs, eigencam(model, images, layer=layer, batch_size=batch_size),
                           cls, layer or "")
    from tf_keras_vis.gradcam_plus_plus import GradcamPlusPlus
    from tf_keras_vis.saliency import Saliency
    from tf_keras_vis.scorecam import Scorecam
    from tf_keras_vis.utils.model_modifiers import ReplaceToLinear
    modifier = ReplaceToLinear()  # the final sigmoid/softmax becomes linear: scores are logits
    score = _score(model, cls)
    # Without seek_penultimate_conv_layer=False tf-keras-vis silently replaces a named layer that
    # is not a conv layer (e.g. ResNet's conv3_block4_out, an Activation) by the conv before it.
    seek = {"penultimate_layer": layer, "seek_penultimate_conv_layer": layer is None}
    if method == "gradcam++":
        heat = GradcamPlusPlus(model, model_modifier=modifier, clone=True)(score, images, **seek)
    elif method == "scorecam":
        max_n = options.get("max_N", 16)
        if layer is not None:  # tf-keras-vis refuses max_N above the layer's channel count
            max_n = min(max_n, int(model.get_layer(layer).output.shape[-1]))
        heat = Scorecam(model, model_modifier=modifier, clone=True)(
            score, images, max_N=max_n, batch_size=batch_size, **seek)
    else:
        heat = Saliency(model, model_modifier=modifier, clone=True)(
            score, images, smooth_samples=options.get("smooth_samples", 20),
            smooth_noise=options.get("smooth_noise", 0.2))
    heat = np.nan_to_num(np.asarray(heat, np.float32).reshape(images.shape[:3]))
    return Explanation(probs, np.clip(heat, 0, 1), cls, layer or "")


def _lime(model, images, cls, batch_size, num_samples: int = 500, n_segments: int = 50,
          compactness: float = 0.2, seed: int = 0):
    """LIME's per-segment weights for each image's class, painted back onto the segments
    (positive evidence only, max-normalised)."""
    from lime import lime_image
    from skimage.segmentation import slic

    def segment(image):
        gray = image.mean(-1)
        span = gray.max() - gray.min()
        return slic((gray - gray.min()) / (span if span > 0 else 1), n_segments=n_segments,
                    compactness=compactness, start_label=0, channel_axis=None)

    def classify(batch):
        return _probabilities(model, batch.astype(np.float32), batch_size)

    explainer = lime_image.LimeImageExplainer(random_state=seed)
    out = np.zeros(images.shape[:3], np.float32)
    for i, image in enumerate(images):
        result = explainer.explain_instance(
            image.astype(np.float64), classify, labels=(int(cls[i]),), top_labels=None,
            num_samples=num_samples, batch_size=batch_size, segmentation_fn=segment,
            hide_color=float(image.mean()), random_seed=seed)
        weights = dict(result.local_exp[int(cls[i])])
        heat = np.vectorize(lambda s: max(weights.get(s, 0.0), 0.0))(result.segments)
        out[i] = heat / heat.max() if heat.max() > 0 else heat
    return out


def eigen_projection(activations: np.ndarray) -> np.ndarray:
    """Eigen-CAM (Muhammad & Yeasin 2020) of activations (N, h, w, C): per image, the (h*w, C)
    matrix with its channel means subtracted is projected on its first right-singular vector,
    then ReLU and min-max to [0, 1]. Class-agnostic. An SVD's sign is arbitrary, so the sign is
    fixed to make the projection correlate positively with the channel-mean activation map
    (pytorch-grad-cam leaves it to the solver, which can return the inverted map)."""
    a = np.asarray(activations, np.float64)
    n, h, w, c = a.shape
    out = np.zeros((n, h, w))
    for i in range(n):
        m = a[i].reshape(h * w, c)
        centred = m - m.mean(0)
        _, _, vt = np.linalg.svd(centred, full_matrices=False)
        proj = centred @ vt[0]
        mean_map = m.mean(1)
        if np.dot(proj - proj.mean(), mean_map - mean_map.mean()) < 0:
            proj = -proj
        proj = np.maximum(proj, 0)
        span = proj.max() - proj.min()
        out[i] = ((proj - proj.min()) / span if span > 0 else np.zeros_like(proj)).reshape(h, w)
    return out


def eigencam(model, images, *, layer: str | None = None, batch_size: int = 32) -> np.ndarray:
    """Eigen-CAM heatmaps (N, H, W) in [0, 1] at the input size (bilinear upsampling) of the
    activations at `layer` (default: the last 4-D layer) for model inputs `images`."""
    from .cam_model import CamModel
    cam_model = CamModel(model, layer)
    maps = []
    for start in range(0, len(images), batch_size):
        acts, _ = cam_model(tf.constant(images[start:start + batch_size]), training=False)
        proj = eigen_projection(acts.numpy())
        maps.append(tf.image.resize(proj[..., None].astype(np.float32), images.shape[1:3],
                                    method="bilinear")[..., 0].numpy())
    return np.clip(np.concatenate(maps), 0, 1)
