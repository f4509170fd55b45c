"""Fixture writers in the on-disk formats of the real datasets (tiny, written at test time)."""
from __future__ import annotations

import csv
from pathlib import Path

import cv2
import numpy as np

from gfsr_tf.datasets.gaze_sim import write_dicom  # noqa: F401 (re-exported for tests)


def write_class_folders(root: Path, classes=("husky", "wolf"), per_class=8, split=False,
                        size=(40, 30)) -> Path:
    """root/<class>/*.jpg (or root/{train,test}/<class>/*.jpg): a bright blob on a class-specific
    background (snow-white for wolf), so the classes differ where a shortcut would sit."""
    rng = np.random.default_rng(0)
    for s in (("train", "test") if split else ("",)):
        for c, cls in enumerate(classes):
            folder = root / s / cls
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(per_class):
                image = np.full((size[1], size[0], 3), 230 if c else 90, np.uint8)
                image += rng.integers(0, 20, image.shape, dtype=np.uint8)
                cv2.circle(image, (size[0] // 2, size[1] // 2), 8, (60, 60, 140), -1)
                cv2.imwrite(str(folder / f"{cls}_{s or 'all'}_{i}.jpg"), image)
    return root


def write_ham10000(root: Path, n=28, size=(60, 45), mask_size=None) -> list[dict]:
    """HAM10000 layout: metadata CSV, images in two part folders, *_segmentation.png masks.
    Lesions hold 1-3 images each; 7 dx classes in turn."""
    dx = ("akiec", "bcc", "bkl", "df", "mel", "nv", "vasc")
    rng = np.random.default_rng(0)
    rows, lesion = [], 0
    for i in range(n):
        if i == 0 or rng.random() < 0.6:
            lesion += 1
            label = dx[lesion % 7]
        rows.append({"lesion_id": f"HAM_{lesion:07d}", "image_id": f"ISIC_{i:07d}", "dx": label,
                     "dx_type": "histo", "age": "50", "sex": "male", "localization": "back"})
    for part in ("HAM10000_images_part_1", "HAM10000_images_part_2",
                 "HAM10000_segmentations_lesion_tschandl"):
        (root / part).mkdir(parents=True, exist_ok=True)
    w, h = size
    for i, row in enumerate(rows):
        image = np.full((h, w, 3), (170, 150, 200), np.uint8)  # skin (BGR)
        centre = (w // 2 + int(rng.integers(-5, 6)), h // 2 + int(rng.integers(-4, 5)))
        axes = (int(rng.integers(8, 14)), int(rng.integers(6, 10)))
        cv2.ellipse(image, centre, axes, 0, 0, 360, (40, 50, 90), -1)
        part = "HAM10000_images_part_1" if i % 2 else "HAM10000_images_part_2"
        cv2.imwrite(str(root / part / f"{row['image_id']}.jpg"), image)
        mask = np.zeros((h, w), np.uint8)
        cv2.ellipse(mask, centre, axes, 0, 0, 360, 255, -1)
        if mask_size is not None and i == 3:
            mask = cv2.resize(mask, mask_size, interpolation=cv2.INTER_NEAREST)
        cv2.imwrite(str(root / "HAM10000_segmentations_lesion_tschandl" /
                        f"{row['image_id']}_segmentation.png"), mask)
    with open(root / "HAM10000_metadata.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return rows


def write_egd_cxr(root: Path, n=15, shape=(80, 64)) -> list[dict]:
    """EGD-CXR layout: master_sheet.csv, fixations.csv, MIMIC-CXR-style DICOM tree. Patients
    hold 1-2 images; every image has one long fixation at a known spot plus short ones."""
    rng = np.random.default_rng(0)
    classes = ("Normal", "CHF", "pneumonia")
    sheet, fixations = [], []
    h, w = shape
    for i in range(n):
        dicom_id = f"{i:08x}-aaaa"
        patient = f"p1{i // 2:07d}"
        label = classes[i % 3]
        folder = root / "files" / patient[:3] / patient / f"s{i:08d}"
        folder.mkdir(parents=True, exist_ok=True)
        pixels = rng.integers(0, 4096, shape)
        write_dicom(folder / f"{dicom_id}.dcm", pixels, "MONOCHROME1" if i == 1 else "MONOCHROME2")
        sheet.append({"dicom_id": dicom_id, "path": str(folder.relative_to(root)),
                      "study_id": f"s{i:08d}", "patient_id": patient,
                      **{c: int(c == label) for c in classes}})
        peak = (int(rng.integers(10, w - 10)), int(rng.integers(10, h - 10)))
        fixations.append({"DICOM_ID": dicom_id, "X_ORIGINAL": peak[0], "Y_ORIGINAL": peak[1],
                          "FPOGD": 2.0, "Time (in secs)": 0.0})
        for _ in range(3):
            fixations.append({"DICOM_ID": dicom_id, "X_ORIGINAL": int(rng.integers(0, w)),
                              "Y_ORIGINAL": int(rng.integers(0, h)), "FPOGD": 0.1,
                              "Time (in secs)": 1.0})
        sheet[-1]["peak"] = peak
    for name, rows in (("master_sheet.csv", sheet), ("fixations.csv", fixations)):
        with open(root / name, "w", newline="") as f:
            writer = csv.DictWriter(f, [k for k in rows[0] if k != "peak"], extrasaction="ignore")
            writer.writeheader()
            writer.writerows(rows)
    return sheet
