from .counterfactual import (consistency_penalty, counterfactual_batch, dilate,
                             outside_attribution, replace_outside)
from .relevance import (input_gradient_penalty, mask_to_grid, negative_evidence, outside_evidence,
                        relevance_loss)

__all__ = ["consistency_penalty", "counterfactual_batch", "dilate", "input_gradient_penalty",
           "mask_to_grid", "negative_evidence", "outside_attribution", "outside_evidence",
           "relevance_loss", "replace_outside"]
