from .classifier import CamModel, build_classifier, last_conv_layer, output_tensor
# registers MedicalPatchNet's two reshaping layers, so `import gfsr_tf.models` is all a process
# needs before `keras.models.load_model` of a patch model
from .patchnet import build_patchnet

__all__ = ["CamModel", "build_classifier", "build_patchnet", "last_conv_layer", "output_tensor"]
