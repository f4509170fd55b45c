from .gradcam import (Explanation, class_scores, explain, gradcam, predicted_class,
                      probabilities_from_logits)

__all__ = ["Explanation", "class_scores", "explain", "gradcam", "predicted_class",
           "probabilities_from_logits"]
