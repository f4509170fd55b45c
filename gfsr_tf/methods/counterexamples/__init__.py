"""Counterexamples (Teso & Kersting, "Explanatory Interactive Machine Learning", AIES 2019):
instead of penalising an explanation, show the model copies of its training images in which the
region a human marked irrelevant is changed and the label kept, so that the irrelevant region
cannot predict the label.

Here the irrelevant region is everything outside the relevance mask (dilated by
`replace_dilation` of the image side, so the mask's own border is kept) and it is replaced by
the same region of another image of the batch (`losses/counterfactual.py`): a share `rate` of
each batch's images is replaced by its counterexample (plain CE on the mixture; no explanation
term). On the benchmark the marker sits outside the lung fields, so a counterexample carries
another image's marker status with this image's label. This is GFSR's extension (a) with GFSR's
relevance loss off, exposed under its own name; the causal study's `ext-a-*` rows measured it
(docs/studies/shortcuts.md).
"""
from __future__ import annotations

import dataclasses

from ..gfsr import GfsrStep, RelevanceConfig
from ..mask_guided import MaskGuided, check_mask_options
from ..registry import register


@dataclasses.dataclass
class CounterexamplesConfig:
    rate: float = 1.0               # share of each batch replaced by its counterexample
    replace_dilation: float = 0.06
    mask_source: str = "lungs"
    mask_blur_sigma: float = 1.0
    warmup_epochs: int = 0          # plain epochs first (shared with the baseline's)

    def __post_init__(self):
        if not 0 < self.rate <= 1 or self.replace_dilation < 0:
            raise ValueError(f"counterexamples rate must be in (0, 1] and replace_dilation >= 0,"
                             f" got {self.rate}, {self.replace_dilation}")
        check_mask_options("counterexamples", self)

    @property
    def weight(self) -> float:      # the "lambda" the step logs: the share replaced
        return self.rate

    def relevance(self) -> RelevanceConfig:
        """The same training as GFSR's step: relevance loss off, out-of-mask replacement on."""
        return RelevanceConfig(weight=0.0, counterfactual_rate=self.rate,
                               replace_dilation=self.replace_dilation,
                               mask_source=self.mask_source,
                               mask_blur_sigma=self.mask_blur_sigma,
                               warmup_epochs=self.warmup_epochs)


class Counterexamples(MaskGuided):
    name = "counterexamples"
    config_class = CounterexamplesConfig

    def make_step(self, model, optimizer, study, config):
        return GfsrStep(model, optimizer, config=config.relevance(),
                        target_layer=self.layer_for(study, config),
                        preprocessor=self.preprocessor, batch_size=study.train.batch_size,
                        mixed_precision=study.train.mixed_precision)

    def describe(self, report, variant):
        o = report[variant]["training"].get("counterexamples", {})
        return ["", f"## {variant}: counterexamples (Teso & Kersting 2019)", "",
                f"CE on batches in which a share {o.get('rate')} of the images have everything "
                "outside the (dilated) relevance mask replaced by another image's; masks: "
                f"{o.get('mask_source')}."]


register(Counterexamples())

__all__ = ["Counterexamples", "CounterexamplesConfig"]
