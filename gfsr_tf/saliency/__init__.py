from .gradcam import Explanation, class_scores, explain, gradcam, predicted_class

__all__ = ["Explanation", "class_scores", "explain", "gradcam", "predicted_class"]
