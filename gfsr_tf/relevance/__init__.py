"""GFSR relevance masks: SLIC segments -> ResNet50 segment embeddings -> k-means concepts -> masks."""
from .annotations import annotated_segments, load_mask_folder, load_segment_json
from .concepts import ConceptConfig, ConceptMasks, concept_scores, propagate_masks
from .embeddings import pool_segments
from .segments import COMPACTNESS, slic_segments

__all__ = ["COMPACTNESS", "ConceptConfig", "ConceptMasks", "annotated_segments", "concept_scores",
           "load_mask_folder", "load_segment_json", "pool_segments", "propagate_masks",
           "slic_segments"]
