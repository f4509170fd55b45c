"""Guided backpropagation (Springenberg et al. 2015) under the explain contract: backward rule
[x > 0] max(d, 0) at every ReLU (swish: times its derivative), map |sum_c d logit / d x_c|
normalised by its maximum. The view and the rules live in `saliency.input_gradients`."""
from __future__ import annotations

from .input_gradients import explain_rule, rule_maps

RULE = "guided_backprop"


def guided_backprop(model, images, class_index=None, batch_size: int = 32):
    return explain_rule(model, images, RULE, class_index, batch_size)


def guided_backprop_maps(model, x, class_index=None, **kwargs):
    """Differentiable maps (B, H, W) for a loss (see `input_gradients.rule_maps`)."""
    return rule_maps(model, x, RULE, class_index, **kwargs)
