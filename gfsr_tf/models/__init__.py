from .classifier import CamModel, build_classifier, last_conv_layer

__all__ = ["CamModel", "build_classifier", "last_conv_layer"]
