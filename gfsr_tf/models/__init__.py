"""Architectures more than one method uses: the classifier builder (ResNet50, DenseNet121, the
small test CNN), the plain U-Net. An architecture that only one method uses lives in that
method's folder (methods/<name>/model.py)."""
from .classifier import build_classifier

# the Grad-CAM model view moved to gfsr_tf.saliency.cam_model; still importable from here
from ..saliency.cam_model import CamModel, last_conv_layer, output_tensor  # noqa: E402

# Register the custom layers of the project's saved models, which live in method folders
# (MedicalPatchNet's reshaping layers, the gaze-intensity predictor's), so that `import
# gfsr_tf.models` is all a process needs before `keras.models.load_model`. Last, so that a
# method folder that imports names from this package finds them bound. A new method with
# registered layers adds its module here (tests/test_methods_contract.py loads every method's
# saved model in a fresh process that imports only this package).
# Modules, not names: a method folder imported first is only part-initialised at this point.
from ..methods.gaze_intensity import model as _gaze_intensity_model  # noqa: E402,F401
from ..methods.patchnet import model as _patchnet_model  # noqa: E402

__all__ = ["CamModel", "build_classifier", "build_patchnet", "last_conv_layer", "output_tensor"]


def __getattr__(name):
    if name == "build_patchnet":        # MedicalPatchNet's builder, kept importable from here
        return _patchnet_model.build_patchnet
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
