"""Prompted gaze-intensity samples (Pham et al.): one sample per (image, anatomical region r in
heart, left lung, right lung), holding the image, the prompt id of r, the radiologist's gaze
intensity over r while dictating about it, and a yes/no finding label for r.

Window: e = the end time of the *last* sentence that mentions r (heart: "cardiomegaly", or
"enlarged" together with "cardiac" or "heart"; left/right lung: "left"/"right" together with
"lung"); the fixations with start time t <= e (from 0: the first glances count) whose pixel lies
inside r's mask are kept; `egd_cxr.gaze_heatmap` (the gaze foundation's settings) turns them
into a map, max-normalised and quantised to 8 bits. No matching sentence, an empty region mask or
no fixation left -> the sample is dropped and counted (`counts`).

Labels: on the simulation, heart = the image is a CHF case, left/right lung = a lesion lies in
that lung (patient convention); on EGD-CXR a weak label from the matched sentence: positive
unless it contains a negation cue ("no ", "not ", "normal", "clear", "without", "unremarkable")
- weak, and reported as such. Settings C (heart), L (left lung), R (right lung), M = C + L + R;
positives : negatives 1 : 1 per region by seeded subsampling. Every sample of an image stays in
that image's split (the loaders split patient-grouped).
"""
from __future__ import annotations

import logging

import numpy as np

from ...datasets.base import ImageSet
from ...datasets.egd_cxr import gaze_heatmap

log = logging.getLogger(__name__)
PROMPTS = ("heart", "left_lung", "right_lung")       # prompt id = index
SETTINGS = {"C": ("heart",), "L": ("left_lung",), "R": ("right_lung",), "M": PROMPTS}
NEGATIONS = ("no ", "not ", "normal", "clear", "without", "unremarkable")
LABELS = ("simulation", "weak")


def mentions(sentence: str, region: str) -> bool:
    """Whether a dictated sentence is about `region` (the keyword rules above)."""
    s = sentence.lower()
    if region == "heart":
        return "cardiomegaly" in s or ("enlarged" in s and ("cardiac" in s or "heart" in s))
    if region in ("left_lung", "right_lung"):
        return region.split("_")[0] in s and "lung" in s
    raise ValueError(f"unknown region {region!r}; choose one of {', '.join(PROMPTS)}")


def last_mention(transcript, region: str) -> tuple[str, float] | None:
    """(sentence, end time) of the last sentence about `region`, or None."""
    found = [(s, float(e)) for s, e in transcript if mentions(s, region)]
    return found[-1] if found else None


def weak_label(sentence: str) -> int:
    """1 unless the sentence carries a negation cue (EGD-CXR's weak finding label)."""
    s = f" {sentence.lower()}"
    return int(not any(cue in s for cue in NEGATIONS))


def window_fixations(fixations: np.ndarray, end: float, mask: np.ndarray,
                     original_shape) -> np.ndarray:
    """The fixations (k, 4: x, y, duration, start) started at or before `end` whose pixel (the
    heatmap's binning onto the mask's grid) lies in `mask` (> 0.5)."""
    fx = np.asarray(fixations, np.float64).reshape(-1, 4)
    if not len(fx):
        return fx
    rows, cols = mask.shape
    h, w = original_shape
    r = np.clip((fx[:, 1] * rows / h).astype(int), 0, rows - 1)
    c = np.clip((fx[:, 0] * cols / w).astype(int), 0, cols - 1)
    timed = fx[:, 3] <= end
    return fx[timed & (mask[r, c] > 0.5)]


def quantise(heatmap: np.ndarray) -> np.ndarray:
    """Max-normalised, 8-bit levels (as a PNG ground truth would store it), float32."""
    peak = heatmap.max()
    heatmap = heatmap / peak if peak > 0 else heatmap
    return (np.round(heatmap * 255) / 255).astype(np.float32)


def prompt_samples(data: ImageSet, *, labels: str = "simulation",
                   sigma_px: float | None = 150.0, sigma_fraction: float = 0.05,
                   weighting: str = "duration", counts: dict | None = None) -> ImageSet:
    """Every (image, region) sample of `data` (an ImageSet with fixations, transcripts, regions
    and original_shapes: `gaze_sim` or `egd_cxr`): images repeated, `prompts`, `gaze` = the
    region's intensity map, `labels` 0/1 ("no finding", "finding"), `names` "<image>:<region>",
    `regions` and `lesions` carried per sample. Dropped samples are counted in `counts`."""
    if labels not in LABELS:
        raise ValueError(f"labels must be one of {', '.join(LABELS)}, got {labels!r}")
    for key in ("fixations", "transcripts", "regions", "original_shapes"):
        if getattr(data, key) is None:
            raise ValueError(f"prompted gaze samples need the data's {key}")
    counts = {} if counts is None else counts
    size = data.images.shape[1:3]
    missing = [r for r in PROMPTS if r not in data.regions]
    if missing:
        raise ValueError(f"the data has no {missing} region masks")
    index, prompts, maps, targets, names = [], [], [], [], []
    for i in range(len(data)):
        shape = tuple(int(v) for v in data.original_shapes[i])
        for p, region in enumerate(PROMPTS):
            mask = np.asarray(data.regions[region][i])
            if mask.shape != size:
                raise ValueError(f"regions[{region}] masks are {mask.shape}, images {size}")
            if not np.any(mask > 0.5):
                counts["empty_region"] = counts.get("empty_region", 0) + 1
                continue
            mention = last_mention(data.transcripts[i], region)
            if mention is None:
                counts["no_mention"] = counts.get("no_mention", 0) + 1
                continue
            fx = window_fixations(data.fixations[i], mention[1], mask, shape)
            if not len(fx):
                counts["no_fixation"] = counts.get("no_fixation", 0) + 1
                continue
            heat = gaze_heatmap(fx[:, 0], fx[:, 1], fx[:, 2], shape, size[0], sigma_fraction,
                                sigma_px=sigma_px, weighting=weighting)
            if labels == "weak":
                label = weak_label(mention[0])
            elif region == "heart":
                label = int(data.labels[i] == 1)                     # a CHF case
            else:
                label = int(data.lesions is not None
                            and np.any(data.lesions[i] & (mask > 0.5)))
            index.append(i)
            prompts.append(p)
            maps.append(quantise(heat))
            targets.append(label)
            names.append(f"{data.names[i] if data.names else i}:{region}")
    if not index:
        raise ValueError(f"no prompted gaze sample remains ({counts or 'no images'})")
    picked = data.subset(np.asarray(index))
    return ImageSet(picked.images, np.asarray(targets, np.int64), ("no finding", "finding"),
                    lesions=picked.lesions, gaze=np.stack(maps), names=names,
                    regions=picked.regions, prompts=np.asarray(prompts, np.int64),
                    original_shapes=picked.original_shapes)


def balance(samples: ImageSet, seed: int = 0) -> ImageSet:
    """Positives : negatives 1 : 1 per prompt, by seeded subsampling of the larger side."""
    rng = np.random.default_rng([seed, 19])
    keep = []
    for p in range(len(PROMPTS)):
        pos = np.flatnonzero((samples.prompts == p) & (samples.labels == 1))
        neg = np.flatnonzero((samples.prompts == p) & (samples.labels == 0))
        k = min(len(pos), len(neg))
        keep += [rng.choice(pos, k, replace=False), rng.choice(neg, k, replace=False)]
    keep = np.sort(np.concatenate(keep)).astype(int)
    if not len(keep):
        raise ValueError("balancing left no sample: every prompt lacks positives or negatives")
    return samples.subset(keep)


def setting(samples: ImageSet, name: str) -> ImageSet:
    """The samples of setting C, L, R or M."""
    if name not in SETTINGS:
        raise ValueError(f"unknown setting {name!r}; choose one of {', '.join(SETTINGS)}")
    wanted = [PROMPTS.index(r) for r in SETTINGS[name]]
    return samples.subset(np.flatnonzero(np.isin(samples.prompts, wanted)))


def prompt_splits(splits: dict, *, labels: str = "simulation", seed: int = 0,
                  counts: dict | None = None, **heatmap) -> dict[str, ImageSet]:
    """{split: balanced M samples} from a loader's {train, val, test}."""
    counts = {} if counts is None else counts
    out = {}
    for name, data in splits.items():
        found: dict = {}
        out[name] = balance(prompt_samples(data, labels=labels, counts=found, **heatmap), seed)
        for k, v in found.items():
            counts[f"{name}/{k}"] = v
    if counts:
        log.warning("prompted gaze samples dropped: %s", counts)
    return out
