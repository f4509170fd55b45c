"""Embedded eye-gaze chest X-ray simulation: what EGD-CXR holds, for a machine that cannot
download it (the default data of the gaze studies).

Three classes as in EGD-CXR: normal; congestive heart failure (an enlarged cardiac silhouette and
bilateral perihilar haze); pneumonia (the shortcut benchmark's patchy lesions). Every image has a
laterality "R" marker (independent of the class: the real data has them too). Each case is
rendered at an "original" resolution with the real data's aspect (H = 1.2 W, W = 4 x the model's
side), like a DICOM, and carries in original coordinates:
  - simulated fixations: a survey of the thorax dwelling on each region (the patient's right
    lung = image left, the left lung = image right, the heart), longer dwell on the finding (the
    lesion; the heart and hila in CHF), positional jitter, now and then a fixation off the image
    stored as (-1, -1) as EGD-CXR does, now and then a glance at the marker;
  - a transcript: one sentence per region, ending just after its last fixation;
  - anatomical masks left_lung / right_lung (patient convention) / mediastinum (heart = its lower
    two thirds, as the loader derives it).
The static heatmap comes from the real loader's `egd_cxr.gaze_heatmap`; `write_egd_cxr_layout`
writes the EGD-CXR on-disk layout (DICOMs, master_sheet.csv, fixations.csv, transcripts, masks)
so `load_egd_cxr` reads the same cases back. Random streams are new ((seed, 1000 + split, i)):
the shortcut benchmark is untouched.
"""
from __future__ import annotations

import csv
import json
from pathlib import Path

import cv2
import numpy as np
from tqdm.auto import tqdm

from ..config import BenchmarkConfig
from .base import ImageSet
from .egd_cxr import CLASS_NAMES, CLASSES, gaze_heatmap, heart_from_mediastinum, on_image
from .synthetic import render_case

SPLITS = ("train", "val", "test")
_SPLIT_IDS = {name: 1000 + i for i, name in enumerate(SPLITS)}
REFERENCE_WIDTH = 2544      # a typical MIMIC-CXR width: the reference's sigma = 150 px at it
# per-region (fixations, duration range s) of the survey; the finding gets the longer dwell
SURVEY = (3, 6, (0.15, 0.45))
FINDING = (6, 10, (0.3, 0.8))
SENTENCES = {"right_lung": ("The right lung is clear.", "There is an opacity in the right lung."),
             "left_lung": ("The left lung is clear.", "There is an opacity in the left lung."),
             "heart": ("The heart is not enlarged.", "The cardiac silhouette is enlarged.")}


def original_shape(size: int) -> tuple[int, int]:
    return int(round(4.8 * size)), 4 * size


def scaled_sigma(sigma_px: float, size: int) -> float:
    """The reference's sigma (original px of a ~2544 px wide radiograph) on the simulation's
    originals."""
    return sigma_px * original_shape(size)[1] / REFERENCE_WIDTH


def _resize(a: np.ndarray, shape) -> np.ndarray:
    return cv2.resize(a.astype(np.float32), (shape[1], shape[0]), interpolation=cv2.INTER_LINEAR)


def render_gaze_case(size: int, label: int, opacity: float, seed) -> dict:
    """One case at original resolution: uint8 pixels (0..255 used in full, so a DICOM round
    trip is exact), region masks, fixations (k, 4: x, y, duration, time; off-image ones at
    (-1, -1)), transcript [(sentence, end time)]."""
    h0, w0 = original_shape(size)
    side = w0
    case = render_case(side, label == 2, True, False, opacity, seed,
                       heart_scale=1.35 if label == 1 else 1.0, haze=0.12 if label == 1 else 0.0)
    image = _resize(case["image"], (h0, w0))
    lo, hi = image.min(), image.max()
    pixels = np.round((image - lo) / max(hi - lo, 1e-6) * 255).astype(np.uint8)
    # patient convention: the patient's right lung is on the image's left
    regions = {"right_lung": _resize(case["lung_sides"][0], (h0, w0)) > 0.5,
               "left_lung": _resize(case["lung_sides"][1], (h0, w0)) > 0.5,
               "mediastinum": _resize(case["mediastinum"], (h0, w0)) > 0.5}
    regions["heart"] = heart_from_mediastinum(regions["mediastinum"])
    lesions = _resize(case["lesions"], (h0, w0)) > 0.5
    y0, x0, y1, x1 = case["marker_box"]
    box = (y0 * h0 / side, x0 * w0 / side, y1 * h0 / side, x1 * w0 / side)
    rng = np.random.default_rng([*np.atleast_1d(seed), 77])
    fixations, transcript, t = [], [], 0.0

    def dwell(mask, count, durations):
        nonlocal t
        ys, xs = np.nonzero(mask)
        for _ in range(count):
            k = rng.integers(len(ys))
            x = xs[k] + rng.normal(0, 0.02 * w0)
            y = ys[k] + rng.normal(0, 0.02 * w0)
            d = rng.uniform(*durations)
            fixations.append((float(np.clip(x, 0, w0 - 1)), float(np.clip(y, 0, h0 - 1)),
                              float(d), t))
            t += d + 0.03                                      # a saccade between fixations

    for region in ("right_lung", "left_lung", "heart"):
        mask = regions[region]
        finding = (region == "heart" and label == 1) or \
            (region != "heart" and label == 2 and np.any(lesions & mask))
        lo_n, hi_n, durations = FINDING if finding else SURVEY
        if finding and region != "heart":
            mask = lesions & mask
        dwell(mask, int(rng.integers(lo_n, hi_n + 1)), durations)
        if rng.random() < 0.3:                                 # an off-image fixation
            fixations.append((-1.0, -1.0, float(rng.uniform(0.1, 0.3)), t))
            t += fixations[-1][2] + 0.03
        transcript.append((SENTENCES[region][int(finding)], round(t + 0.3, 3)))
    if rng.random() < 0.3:                                     # a glance at the marker
        marker = np.zeros((h0, w0), bool)
        marker[int(box[0]):int(np.ceil(box[2])), int(box[1]):int(np.ceil(box[3]))] = True
        dwell(marker, 1, (0.1, 0.25))
    return {"pixels": pixels, "regions": regions, "lesions": lesions,
            "fixations": np.asarray(fixations, np.float64), "transcript": transcript}


def _labels(n: int, seed: int, split: str) -> np.ndarray:
    return np.random.default_rng([seed, _SPLIT_IDS[split], 5]).permutation(np.arange(n) % 3)


def make_gaze_split(config: BenchmarkConfig, split: str, n: int | None = None, *,
                    sigma_px: float | None = 150.0, sigma_fraction: float = 0.05,
                    weighting: str = "count") -> ImageSet:
    """One split at config.image_size: images as the EGD-CXR loader would read them, gaze
    heatmaps from the kept fixations (`sigma_px`: the reference's value on a real radiograph,
    scaled to the simulation's originals), regions, fixations, transcripts."""
    if split not in _SPLIT_IDS:
        raise ValueError(f"unknown split {split!r}; choose one of {SPLITS}")
    n = n if n is not None else {"train": config.n_train, "val": config.n_val}.get(
        split, config.n_test)
    size = config.image_size
    shape = original_shape(size)
    sigma = None if sigma_px is None else scaled_sigma(sigma_px, size)
    labels = _labels(n, config.seed, split)
    images, gaze, kept, transcripts, lesions = [], [], [], [], []
    regions: dict[str, list] = {"left_lung": [], "right_lung": [], "mediastinum": [], "heart": []}
    for i in tqdm(range(n), desc=f"simulating gaze ({split})", leave=False, disable=n < 200):
        case = render_gaze_case(size, int(labels[i]), config.lesion_opacity,
                                (config.seed, _SPLIT_IDS[split], i))
        fx = case["fixations"]
        images.append(cv2.resize(case["pixels"], (size, size), interpolation=cv2.INTER_AREA))
        gaze.append(gaze_heatmap(fx[:, 0], fx[:, 1], fx[:, 2], shape, size, sigma_fraction,
                                 sigma_px=sigma, weighting=weighting))
        kept.append(fx[on_image(fx[:, 0], fx[:, 1], fx[:, 2], shape)])
        transcripts.append(case["transcript"])
        for k in regions:
            regions[k].append(_downsample_mask(case["regions"][k], size))
        lesions.append(_downsample_mask(case["lesions"], size) > 0.5)
    lungs = np.maximum(np.stack(regions["left_lung"]), np.stack(regions["right_lung"]))
    return ImageSet(np.stack(images)[..., None], labels.astype(np.int64), CLASS_NAMES,
                    lungs=lungs, lesions=np.stack(lesions), gaze=np.stack(gaze),
                    names=[case_name(split, i) for i in range(n)],
                    regions={k: np.stack(v) for k, v in regions.items()}, fixations=kept,
                    transcripts=transcripts,
                    original_shapes=np.tile(np.asarray(shape, np.int64), (n, 1)))


def _downsample_mask(mask: np.ndarray, size: int) -> np.ndarray:
    """As the loader reads a mask PNG: binary, area-resized to the model's side."""
    return cv2.resize(mask.astype(np.float32), (size, size), interpolation=cv2.INTER_AREA)


def case_name(split: str, i: int) -> str:
    return f"sim{_SPLIT_IDS[split]}-{i:05d}"


def make_gaze_simulation(config: BenchmarkConfig, **heatmap) -> dict[str, ImageSet]:
    """{train, val, test} of the simulation (sizes from config.n_train / n_val / n_test)."""
    return {split: make_gaze_split(config, split, **heatmap) for split in SPLITS}


def write_egd_cxr_layout(root, config: BenchmarkConfig, splits=SPLITS) -> Path:
    """Write the simulation in the EGD-CXR on-disk layout under `root`: master_sheet.csv,
    fixations.csv (X_ORIGINAL, Y_ORIGINAL, FPOGD, Time (in secs)), a MIMIC-style DICOM tree and
    audio_segmentation_transcripts/<dicom_id>/{transcript.json, left_lung.png, right_lung.png,
    mediastanum.png}. One patient per case. Its originals are ~1/10 of a real radiograph's
    width, so read it back with `sigma_px=scaled_sigma(150, config.image_size)` to get the
    in-memory heatmaps (150 px is the reference's sigma on real radiographs)."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    sheet, fixations = [], []
    for split in splits:
        n = {"train": config.n_train, "val": config.n_val}.get(split, config.n_test)
        labels = _labels(n, config.seed, split)
        for i in tqdm(range(n), desc=f"writing EGD-CXR layout ({split})", leave=False,
                      disable=n < 50):
            case = render_gaze_case(config.image_size, int(labels[i]), config.lesion_opacity,
                                    (config.seed, _SPLIT_IDS[split], i))
            dicom_id, patient = case_name(split, i), f"p{_SPLIT_IDS[split]}{i:06d}"
            folder = root / "files" / patient[:3] / patient / f"s{dicom_id}"
            folder.mkdir(parents=True, exist_ok=True)
            write_dicom(folder / f"{dicom_id}.dcm", case["pixels"])
            sheet.append({"dicom_id": dicom_id, "patient_id": patient, "split": split,
                          **{c: int(k == labels[i]) for k, c in enumerate(CLASSES)}})
            for x, y, d, t in case["fixations"]:
                fixations.append({"DICOM_ID": dicom_id, "Time (in secs)": repr(float(t)),
                                  "FPOGD": repr(float(d)), "X_ORIGINAL": repr(float(x)),
                                  "Y_ORIGINAL": repr(float(y))})
            extra = root / "audio_segmentation_transcripts" / dicom_id
            extra.mkdir(parents=True, exist_ok=True)
            (extra / "transcript.json").write_text(json.dumps({
                "full_text": " ".join(s for s, _ in case["transcript"]),
                "time_stamped_text": [{"phrase": s, "begin_time": None, "end_time": e}
                                      for s, e in case["transcript"]]}))
            for name, file in (("left_lung", "left_lung.png"), ("right_lung", "right_lung.png"),
                               ("mediastinum", "mediastanum.png")):
                cv2.imwrite(str(extra / file), case["regions"][name].astype(np.uint8) * 255)
    for name, rows in (("master_sheet.csv", sheet), ("fixations.csv", fixations)):
        with open(root / name, "w", newline="") as f:
            writer = csv.DictWriter(f, list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
    return root


def write_dicom(path, pixels: np.ndarray, photometric: str = "MONOCHROME2") -> None:
    """A minimal uncompressed digital-X-ray DICOM holding `pixels` (uint16 storage, 12 bits)."""
    import pydicom
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.1.1"  # digital X-ray
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = pydicom.Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, \
        meta.MediaStorageSOPInstanceUID
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, photometric
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.PixelData = np.asarray(pixels).astype(np.uint16).tobytes()
    ds.save_as(path, enforce_file_format=True)
