from .classifier import build_classifier
from .patchnet import build_patchnet

# the Grad-CAM model view moved to gfsr_tf.saliency.cam_model; still importable from here
from ..saliency.cam_model import CamModel, last_conv_layer, output_tensor  # noqa: E402

__all__ = ["CamModel", "build_classifier", "build_patchnet", "last_conv_layer", "output_tensor"]

# Register the custom layers of the project's saved models that live in method folders (the
# gaze-intensity predictor's; MedicalPatchNet's are in models.patchnet above), so that
# `import gfsr_tf.models` is all a process needs before `keras.models.load_model`. Last, so that
# a method folder that imports names from this package finds them bound. A new method with
# registered layers adds its module here (tests/test_methods_contract.py checks every method).
from ..methods.gaze_intensity import model as _gaze_intensity_layers  # noqa: E402,F401
