"""Pham et al.'s prompt-controlled gaze-intensity predictor: for an image and an anatomical prompt
(heart, left lung, right lung) it predicts where, and how intensely, a radiologist looked.

  encoder   keras.applications.EfficientNetB0 (raw 0-255 RGB; it normalises inside its graph)
            with four taps stem_activation, block2b_add, block3b_add, block5c_add - frozen when
            ImageNet weights load, trainable (and reported) when they cannot. The paper's frozen
            BiomedCLIP ViT-B/16 (taps stem, 3, 6, 9) cannot be obtained here.
  prompt    Embedding(3, 512) over the prompt id: replaces BiomedCLIP's frozen text encoder
            ("diagnosis of {left lung | right lung | heart}"), which cannot be obtained here.
  adapter   patch embedding (patch 16 at 224 px, 4 at 64 px) -> n patch tokens of width D = 240
            with learned positions, plus one learnable token alpha; 8 pre-norm transformer
            layers (6 heads, MLP 4 D, GELU). Fusion before layer 1 and after layers 1, 2, 3 with
            taps 1-4 (fewer for a shallower adapter), on the patch tokens only (alpha is never
            touched):
                f_a <- f_a + Resize_grid(Conv1x1_D(tap)) + Dense_D(prompt)
  decoder   MLP_p(each patch token) . MLP_alpha(alpha) (3 Dense layers each, hidden 256, out
            256): one logit per patch -> grid -> bilinear resize to H x W = `intensity_logits`
            -> sigmoid `intensity`. use_alpha=False (the paper's Table 7 ablation): the logit is
            the mean over features of each patch token.

A plain functional model with two inputs {"image": (H, W, 3) pixels 0-255, "prompt": () int32}.
The one custom layer (`AdapterTokens`: learned positions and the alpha token) is a registered
serialisable: `keras.models.load_model` needs `import gfsr_tf` (or this module) first - Keras has
no built-in layer that holds a free weight tensor added to its input.
"""
from __future__ import annotations

import keras
import numpy as np

from ...models.classifier import pretrained_or_random, with_bn_momentum
from .prompts import PROMPTS

TAPS = ("stem_activation", "block2b_add", "block3b_add", "block5c_add")
PROMPT_WIDTH = 512
LOGITS = "intensity_logits"
OUTPUT = "intensity"


@keras.saving.register_keras_serializable(package="gfsr_tf")
class AdapterTokens(keras.layers.Layer):
    """(B, n, D) patch embeddings -> (B, n + 1, D): learned positions added, the learnable
    token alpha appended last."""

    def build(self, shape):
        n, d = int(shape[1]), int(shape[2])
        init = keras.initializers.TruncatedNormal(stddev=0.02)
        self.positions = self.add_weight(shape=(n, d), initializer=init, name="positions")
        self.alpha = self.add_weight(shape=(1, d), initializer=init, name="alpha")

    def call(self, tokens):
        batch = keras.ops.shape(tokens)[0]
        alpha = keras.ops.broadcast_to(self.alpha[None], (batch, 1, tokens.shape[-1]))
        return keras.ops.concatenate([tokens + self.positions[None], alpha], axis=1)

    def compute_output_shape(self, shape):
        return (shape[0], shape[1] + 1, shape[2])


def check_geometry(size: int, patch: int) -> None:
    if patch < 1 or size % patch:
        raise ValueError(f"image side {size} is not divisible by the patch size {patch}")
    if size < 32 or size % 32:
        raise ValueError(f"the intensity predictor's EfficientNet-B0 encoder takes square images "
                         f"whose side is a multiple of 32; got {size}")


def _mlp(x, name: str, hidden: int, out: int):
    x = keras.layers.Dense(hidden, activation="gelu", name=f"{name}_1")(x)
    x = keras.layers.Dense(hidden, activation="gelu", name=f"{name}_2")(x)
    return keras.layers.Dense(out, name=f"{name}_3")(x)


def _transformer_layer(x, k: int, dim: int, heads: int, mlp_ratio: int):
    y = keras.layers.LayerNormalization(epsilon=1e-6, name=f"adapter{k}_norm1")(x)
    y = keras.layers.MultiHeadAttention(heads, dim // heads, name=f"adapter{k}_attention")(y, y)
    x = keras.layers.Add(name=f"adapter{k}_residual1")([x, y])
    y = keras.layers.LayerNormalization(epsilon=1e-6, name=f"adapter{k}_norm2")(x)
    y = keras.layers.Dense(mlp_ratio * dim, activation="gelu", name=f"adapter{k}_mlp1")(y)
    y = keras.layers.Dense(dim, name=f"adapter{k}_mlp2")(y)
    return keras.layers.Add(name=f"adapter{k}_residual2")([x, y])


def build_intensity_predictor(input_shape=(64, 64, 3), *, patch: int | None = None,
                              dim: int = 240, depth: int = 8, heads: int = 6, mlp_ratio: int = 4,
                              hidden: int = 256, use_alpha: bool = True, weights="auto",
                              bn_momentum: float | None = None, seed: int | None = None,
                              warnings: list | None = None) -> keras.Model:
    """The predictor (see the module docstring). patch: None -> side / 16 tokens a side (16 at
    224 px, 4 at 64 px). Returns a model {"image", "prompt"} -> `intensity` (B, H, W, 1)."""
    size = int(input_shape[0])
    if input_shape[0] != input_shape[1]:
        raise ValueError(f"the intensity predictor takes square images, got {input_shape[:2]}")
    patch = size // 16 if patch is None else int(patch)
    check_geometry(size, patch)
    if dim % heads:
        raise ValueError(f"dim {dim} must be divisible by heads {heads}")
    if depth < 1:
        raise ValueError(f"depth must be >= 1, got {depth}")
    if seed is not None:
        keras.utils.set_random_seed(seed)
    notes: list = []
    encoder = pretrained_or_random(lambda w: keras.applications.EfficientNetB0(
        include_top=False, weights=w, input_shape=tuple(input_shape)), weights, notes,
        "intensity predictor's EfficientNetB0")
    pretrained = not notes and weights not in (None,)
    if warnings is not None:
        warnings.extend(notes)
    encoder.trainable = not pretrained    # the paper freezes its (pretrained) encoder
    with_bn_momentum(encoder, bn_momentum)
    # fusion before layer 1 and after layers 1, 2, 3 (fewer when the adapter is shallower)
    used = TAPS[:min(len(TAPS), depth + 1)]
    taps = keras.Model(encoder.input, [encoder.get_layer(t).output for t in used],
                       name="encoder")
    image = keras.Input(tuple(input_shape), name="image")
    prompt = keras.Input((), dtype="int32", name="prompt")
    features = taps(image)
    features = features if isinstance(features, (list, tuple)) else [features]
    grid = size // patch
    n = grid * grid
    tokens = keras.layers.Conv2D(dim, patch, strides=patch, name="patch_embedding")(
        keras.layers.Rescaling(1 / 127.5, -1.0, name="patch_scaling")(image))
    tokens = keras.layers.Reshape((n, dim), name="patch_tokens")(tokens)
    tokens = AdapterTokens(name="adapter_tokens")(tokens)
    text = keras.layers.Embedding(len(PROMPTS), PROMPT_WIDTH, name="prompt_embedding")(prompt)
    for k, tap in enumerate(features):
        if k:
            tokens = _transformer_layer(tokens, k, dim, heads, mlp_ratio)
        visual = keras.layers.Conv2D(dim, 1, name=f"fusion{k + 1}_conv")(tap)
        visual = keras.layers.Resizing(grid, grid, "bilinear", name=f"fusion{k + 1}_resize")(
            visual)
        visual = keras.layers.Reshape((n, dim), name=f"fusion{k + 1}_tokens")(visual)
        cue = keras.layers.Dense(dim, name=f"fusion{k + 1}_prompt")(text)
        cue = keras.layers.RepeatVector(n, name=f"fusion{k + 1}_broadcast")(cue)
        patches = keras.layers.Cropping1D((0, 1), name=f"fusion{k + 1}_patches")(tokens)
        alpha = keras.layers.Cropping1D((n, 0), name=f"fusion{k + 1}_alpha")(tokens)
        patches = keras.layers.Add(name=f"fusion{k + 1}_add")([patches, visual, cue])
        tokens = keras.layers.Concatenate(axis=1, name=f"fusion{k + 1}_tokens_out")(
            [patches, alpha])
    for k in range(len(features), depth + 1):
        tokens = _transformer_layer(tokens, k, dim, heads, mlp_ratio)
    tokens = keras.layers.LayerNormalization(epsilon=1e-6, name="adapter_norm")(tokens)
    patches = keras.layers.Cropping1D((0, 1), name="decoder_patches")(tokens)
    if use_alpha:
        alpha = keras.layers.Cropping1D((n, 0), name="decoder_alpha")(tokens)
        logits = keras.layers.Dot(axes=2, name="decoder_product")(
            [_mlp(patches, "decoder_mlp_p", hidden, hidden),
             _mlp(alpha, "decoder_mlp_alpha", hidden, hidden)])
    else:   # channels_first: the mean runs over the last (feature) axis of each token
        logits = keras.layers.GlobalAveragePooling1D("channels_first", keepdims=True,
                                                     name="decoder_feature_mean")(patches)
    logits = keras.layers.Reshape((grid, grid, 1), name="decoder_grid")(logits)
    logits = keras.layers.Resizing(size, size, "bilinear", name=LOGITS, dtype="float32")(logits)
    out = keras.layers.Activation("sigmoid", name=OUTPUT, dtype="float32")(logits)
    model = keras.Model({"image": image, "prompt": prompt}, out, name="gaze_intensity")
    model.encoder_pretrained = pretrained
    return model


def logits_model(model: keras.Model) -> keras.Model:
    """The predictor's logit map (B, H, W, 1), on its weights: what training needs."""
    return keras.Model(model.inputs, model.get_layer(LOGITS).output)


def predict_maps(model: keras.Model, images: np.ndarray, prompts,
                 batch_size: int = 32) -> np.ndarray:
    """(N, H, W) predicted intensities in [0, 1] of preprocessed `images` (the method's
    "raw_rgb": pixels 0-255, RGB) under `prompts` (one id per image, or one id for all)."""
    prompts = np.broadcast_to(np.asarray(prompts, np.int32), (len(images),))
    bad = sorted(set(prompts.tolist()) - set(range(len(PROMPTS))))
    if bad:
        raise ValueError(f"unknown prompt id(s) {bad}; prompts are 0..{len(PROMPTS) - 1} "
                         f"({', '.join(PROMPTS)})")
    out = []
    for i in range(0, len(images), batch_size):
        x = np.asarray(images[i:i + batch_size], np.float32)
        out.append(np.asarray(model({"image": x, "prompt": prompts[i:i + batch_size]},
                                    training=False))[..., 0])
    return np.concatenate(out) if out else np.zeros((0,) + images.shape[1:3], np.float32)
