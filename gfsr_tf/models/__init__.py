from .classifier import build_classifier
# register the custom layers of MedicalPatchNet (two reshaping layers) and of the gaze-intensity
# predictor, so `import gfsr_tf.models` is all a process needs before `keras.models.load_model`
# of any model this project saves
from . import gaze_intensity  # noqa: F401
from .patchnet import build_patchnet

# the Grad-CAM model view moved to gfsr_tf.saliency.cam_model; still importable from here
from ..saliency.cam_model import CamModel, last_conv_layer, output_tensor  # noqa: E402

__all__ = ["CamModel", "build_classifier", "build_patchnet", "last_conv_layer", "output_tensor"]
