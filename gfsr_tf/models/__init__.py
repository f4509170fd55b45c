from .classifier import CamModel, build_classifier, last_conv_layer, output_tensor

__all__ = ["CamModel", "build_classifier", "last_conv_layer", "output_tensor"]
