"""MedicalPatchNet (Wienholt et al., Sci Rep 2026): every patch is classified alone, the image
logit is the plain mean of the patch logits.

    image (S, S, C) -> P x P patches of p = S / P px (row-major, index i * P + j), stacked on the
    batch axis -> shared backbone -> GAP -> Dropout -> Dense(K): patch logits z_i
    -> grid (B, P, P, K) "patch_logits" -> mean over patches "logits" Z -> sigmoid/softmax

One flat functional graph (the backbone's layers sit in it, so a P = 1 model's conv stages are
Grad-CAM layers) whose final Activation takes the image logits, so `CamModel`, the `Trainer`
and the export treat it as any classifier. The two reshaping layers are registered
serialisables: `keras.models.load_model` needs `import gfsr_tf.models`
first - Keras has no built-in layer that moves blocks of an image onto the batch axis (its
TimeDistributed runs the backbone once per patch position, with per-position BatchNorm batches).
"""
from __future__ import annotations

import keras
import numpy as np
from keras import ops

from ...models.classifier import OUTPUT_LAYER, pretrained_or_random, small_cnn, with_bn_momentum

PATCH_GRID = "patch_logits"
IMAGE_LOGITS = "logits"
MIN_PATCH = 32                      # the smallest input keras.applications' backbones accept
BACKBONES = ("resnet50", "efficientnetv2s", "small_cnn")


@keras.saving.register_keras_serializable(package="gfsr_tf")
class PatchSplit(keras.layers.Layer):
    """(B, S, S, C) -> (B * P * P, p, p, C): image b's patch (i, j) at row b * P * P + i * P + j."""

    def __init__(self, patches: int, **kwargs):
        super().__init__(**kwargs)
        self.patches = int(patches)

    def call(self, x):
        n, size, channels = self.patches, x.shape[1], x.shape[-1]
        p = size // n
        x = ops.reshape(x, (-1, n, p, n, p, channels))
        x = ops.transpose(x, (0, 1, 3, 2, 4, 5))
        return ops.reshape(x, (-1, p, p, channels))

    def compute_output_shape(self, shape):
        return (None, shape[1] // self.patches, shape[2] // self.patches, shape[3])

    def get_config(self):
        return {**super().get_config(), "patches": self.patches}


@keras.saving.register_keras_serializable(package="gfsr_tf")
class PatchMerge(keras.layers.Layer):
    """(B * P * P, K) patch rows -> (B, P, P, K) grid (the inverse order of `PatchSplit`)."""

    def __init__(self, patches: int, **kwargs):
        super().__init__(**kwargs)
        self.patches = int(patches)

    def call(self, z):
        return ops.reshape(z, (-1, self.patches, self.patches, z.shape[-1]))

    def compute_output_shape(self, shape):
        return (None, self.patches, self.patches, shape[-1])

    def get_config(self):
        return {**super().get_config(), "patches": self.patches}


def split_patches(images: np.ndarray, patches: int) -> np.ndarray:
    """numpy twin of `PatchSplit` (for tests and figures)."""
    return np.asarray(PatchSplit(patches)(np.asarray(images, np.float32)))


def check_geometry(size: int, patches: int, backbone: str = "resnet50") -> int:
    """The patch size p = size / patches; a clear error when it does not divide or is too small
    for the backbone."""
    if patches < 1 or size % patches:
        raise ValueError(f"image size {size} is not divisible by patches P = {patches}")
    p = size // patches
    if backbone != "small_cnn" and p < MIN_PATCH:
        raise ValueError(f"patch size {p} px (image {size} / P = {patches}) is below the "
                         f"{backbone} backbone's minimum input of {MIN_PATCH} px")
    return p


def _application(backbone: str):
    if backbone == "resnet50":
        return keras.applications.ResNet50
    # the house preprocessor feeds the network; EfficientNetV2's own rescaling would repeat it
    return lambda **kw: keras.applications.EfficientNetV2S(include_preprocessing=False, **kw)


def _backbone_on(tensor, backbone: str, patch_shape, weights, stem_init: str,
                 warnings: list | None):
    """The backbone's layers applied to `tensor` inside the caller's graph (flat), initialised
    from `weights` ("auto", "imagenet", None or a file). A 1-channel input takes the pretrained
    RGB stem's kernels summed over colour (`stem_init="sum"`) or keeps a random stem ("random",
    as the public reference code does)."""
    if backbone == "small_cnn":
        x = tensor
        for layer in small_cnn(patch_shape).layers[1:]:
            x = layer(x)
        return x
    application = _application(backbone)
    channels = patch_shape[-1]
    if weights is None:
        return application(include_top=False, weights=None, input_tensor=tensor).output
    rgb = pretrained_or_random(lambda w: application(include_top=False, weights=w,
                                                     input_shape=patch_shape[:2] + (3,)),
                               weights, warnings, backbone)
    flat = application(include_top=False, weights=None, input_tensor=tensor)
    stem = next(l.name for l in rgb.layers if isinstance(l, keras.layers.Conv2D))
    for layer in flat.layers:
        if not layer.weights:
            continue
        source = rgb.get_layer(layer.name).get_weights()
        if layer.name == stem and channels != 3:
            if stem_init == "random":
                continue
            source[0] = source[0].sum(axis=2, keepdims=True)
        layer.set_weights(source)
    return flat.output


def build_patchnet(num_classes: int = 2, input_shape=(128, 128, 3), patches: int = 4,
                   weights="auto", *, backbone: str = "resnet50", dropout: float = 0.2,
                   stem_init: str = "sum", multi_label: bool = False,
                   bn_momentum: float | None = None, seed: int | None = None,
                   warnings: list | None = None) -> keras.Model:
    """MedicalPatchNet. Two classes use one sigmoid unit (the house's binary head); more use a
    softmax, or one sigmoid each with `multi_label` (the paper's chest X-ray setting).
    weights: as `build_classifier` ("auto" falls back to random init with a warning).
    stem_init: "sum" or "random" - the stem of a 1-channel input (see `_backbone_on`).
    bn_momentum: BatchNorm momentum of the backbone (as `build_classifier`: Keras' 0.99 needs
    ~1000 steps to settle; short CPU runs validate on unsettled statistics otherwise)."""
    if backbone not in BACKBONES:
        raise ValueError(f"unknown patch backbone {backbone!r}; choose one of "
                         f"{', '.join(BACKBONES)}")
    if stem_init not in ("sum", "random"):
        raise ValueError(f"stem_init must be sum or random, got {stem_init!r}")
    if num_classes < 2:
        raise ValueError(f"num_classes must be >= 2, got {num_classes}")
    size = int(input_shape[0])
    if input_shape[1] != size:
        raise ValueError(f"MedicalPatchNet takes square images, got {tuple(input_shape[:2])}")
    p = check_geometry(size, patches, backbone)
    if seed is not None:
        keras.utils.set_random_seed(seed)
    inputs = keras.Input(tuple(input_shape))
    tiles = PatchSplit(patches, name="patch_split")(inputs)
    features = _backbone_on(tiles, backbone, (p, p, int(input_shape[-1])), weights, stem_init,
                            warnings)
    x = keras.layers.GlobalAveragePooling2D(name="patch_pool")(features)
    x = keras.layers.Dropout(dropout, name="patch_dropout")(x)
    units = 1 if num_classes == 2 else num_classes
    z = keras.layers.Dense(units, name="patch_dense", dtype="float32")(x)
    grid = PatchMerge(patches, name=PATCH_GRID)(z)
    logits = keras.layers.GlobalAveragePooling2D(name=IMAGE_LOGITS)(grid)
    activation = "sigmoid" if units == 1 or multi_label else "softmax"
    outputs = keras.layers.Activation(activation, name=OUTPUT_LAYER, dtype="float32")(logits)
    model = keras.Model(inputs, outputs, name=f"medical_patchnet_p{patches}")
    return with_bn_momentum(model, bn_momentum)


def is_patch_model(model) -> bool:
    return any(layer.name == PATCH_GRID for layer in model.layers)


def patch_count(model) -> int:
    return int(model.get_layer(PATCH_GRID).output.shape[1])


def last_stage(model) -> str:
    """The name of the backbone's last conv stage (the layer the patch pooling reads): a
    one-patch model's Grad-CAM layer."""
    return model.get_layer("patch_pool").input._keras_history[0].name
