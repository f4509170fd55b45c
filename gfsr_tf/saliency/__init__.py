from .gradcam import (Explanation, class_scores, explain, gradcam, predicted_class,
                      probabilities_from_logits)
from .posthoc import METHODS, explain_posthoc

__all__ = ["METHODS", "Explanation", "class_scores", "explain", "explain_posthoc", "gradcam",
           "predicted_class", "probabilities_from_logits"]
