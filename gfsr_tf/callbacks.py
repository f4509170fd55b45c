"""Keras callbacks for guided training with `fit()` (any model, `GuidedModel` included): watch
where the maps sit and whether the decision uses a shortcut, epoch by epoch.

    callbacks = [GradCamOverlays(val_x, "runs/mine/overlays", layer="conv3_block4_out"),
                 ShortcutAudit(val_x, val_twins, val_labels, val_has_marker)]
    guided.fit(train_ds, epochs=20, callbacks=callbacks)

Both read the classifier (`model.classifier` for a GuidedModel, else the model itself) and take
images as the classifier takes them (its own preprocessing applied).
"""
from __future__ import annotations

import warnings
from pathlib import Path

import keras
import numpy as np


def _classifier(model):
    return getattr(model, "classifier", model)


def _single_logit_probabilities(model, x, batch_size):
    p = np.asarray(_classifier(model).predict(x, batch_size=batch_size, verbose=0))
    if p.ndim == 2 and p.shape[1] == 2:      # a two-unit softmax head: P(class 1)
        return p[:, 1]
    if p.ndim == 2 and p.shape[1] == 1:
        return p[:, 0]
    raise ValueError("ShortcutAudit needs a binary classifier (one sigmoid unit or a two-unit "
                     f"softmax); this one outputs {p.shape[1:]}")


class GradCamOverlays(keras.callbacks.Callback):
    """After every `every`-th epoch, writes `<out_dir>/epoch_<k>.png`: the Grad-CAM of the
    predicted class (gfsr_tf.explain) over each of a fixed set of images, one panel each, with
    the predicted probability and "EMPTY" on an all-zero map."""

    def __init__(self, images, out_dir, *, layer: str | None = None, every: int = 1,
                 display=None):
        super().__init__()
        self.images = np.asarray(images, np.float32)
        # what to draw under the map (default: the images, min-max scaled per image)
        self.display = self.images if display is None else np.asarray(display)
        self.out_dir, self.layer, self.every = Path(out_dir), layer, every

    def on_epoch_end(self, epoch, logs=None):
        if (epoch + 1) % self.every:
            return
        from .report.basics import pyplot, save_figure
        from .saliency import explain
        e = explain(_classifier(self.model), self.images, layer=self.layer)
        plt = pyplot()
        n = len(self.images)
        fig, axes = plt.subplots(1, n, figsize=(2.2 * n, 2.5), squeeze=False)
        for i, ax in enumerate(axes[0]):
            shown = self.display[i].astype(np.float32)
            shown = (shown - shown.min()) / (np.ptp(shown) or 1.0)
            ax.imshow(shown[..., 0] if shown.shape[-1] == 1 else shown, cmap="gray")
            ax.imshow(e.heatmaps[i], cmap="jet", alpha=0.45, vmin=0, vmax=1)
            empty = e.heatmaps[i].max() <= 0
            ax.set_title(f"class {e.class_index[i]} p={e.probabilities[i].max():.2f}"
                         + (" EMPTY" if empty else ""), fontsize=7,
                         color="red" if empty else "black")
            ax.axis("off")
        fig.suptitle(f"Grad-CAM ({e.layer}), predicted class, after epoch {epoch + 1}",
                     fontsize=8)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        save_figure(fig, self.out_dir / f"epoch_{epoch + 1:03d}.png")


class ShortcutAudit(keras.callbacks.Callback):
    """After each epoch, the shortcut audit's threshold-free figures on validation images with
    exact counterfactual twins (every image without the shortcut): `audit_marker_auc` (per class
    the AUC of the logit for marked vs unmarked images, mean over classes; 0.5 = ignores the
    marker), `audit_marker_to_lesion` (within-class marker effect over the class effect, mean
    logits) and `audit_removal_effect` (mean logit change when the marker is removed from the
    marked images), added to the epoch's logs (so CSVLogger, EarlyStopping and History see
    them). Binary classifiers only (evaluators.audit's definitions)."""

    def __init__(self, images, twins, labels, has_marker, batch_size: int = 64):
        super().__init__()
        self.images = np.asarray(images, np.float32)
        self.twins = np.asarray(twins, np.float32)
        self.labels = np.asarray(labels).astype(int)
        self.marked = np.asarray(has_marker, bool)
        if not (len(self.images) == len(self.twins) == len(self.labels) == len(self.marked)):
            raise ValueError("ShortcutAudit: images, twins, labels and has_marker need one "
                             "entry per image")
        self.batch_size = batch_size

    def on_epoch_end(self, epoch, logs=None):
        from .evaluators.audit import log_odds, observational_effects, within_class_auc
        z = log_odds(_single_logit_probabilities(self.model, self.images, self.batch_size))
        zt = log_odds(_single_logit_probabilities(self.model, self.twins, self.batch_size))
        if float(np.ptp(np.concatenate([z, zt]))) < 1e-4:
            # one output for every image (e.g. a from-scratch BatchNorm network whose running
            # statistics have not caught up): effects and AUCs of a constant mean nothing
            warnings.warn(f"ShortcutAudit, epoch {epoch + 1}: the model gives the same output "
                          "for every validation image; the audit figures are NaN")
            figures = dict.fromkeys(("audit_marker_auc", "audit_marker_to_lesion",
                                     "audit_removal_effect"), float("nan"))
            if logs is not None:
                logs.update(figures)
            return
        effects = observational_effects(z, self.labels, self.marked)
        figures = {"audit_marker_auc": within_class_auc(z, self.labels, self.marked)["mean"],
                   "audit_marker_to_lesion": effects["marker_to_lesion_ratio"],
                   "audit_removal_effect": float(np.mean((z - zt)[self.marked]))
                   if self.marked.any() else float("nan")}
        if logs is not None:
            logs.update(figures)
