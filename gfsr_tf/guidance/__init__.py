"""Guidance: per-image spatial signals a method can train towards - ground-truth masks (lungs,
lesions, eye-gaze) and soft relevance masks propagated from a few annotations (SLIC segments ->
ResNet50 segment embeddings -> k-means concepts)."""
from .annotations import annotated_segments, load_mask_folder, load_segment_json
from .concepts import ConceptConfig, ConceptMasks, concept_scores, propagate_masks
from .embeddings import pool_segments
from .segments import slic_segments

__all__ = ["ConceptConfig", "ConceptMasks", "annotated_segments", "concept_scores",
           "load_mask_folder", "load_segment_json", "pool_segments", "propagate_masks",
           "slic_segments"]
