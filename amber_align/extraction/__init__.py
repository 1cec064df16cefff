"""Word alignments extracted from an encoder (SimAlign / awesome-align style), batched and streaming."""

from amber_align.extraction.extractor import ExtractionSettings, WordAligner
from amber_align.extraction.methods import EXTRACTION_METHODS, extract_links

__all__ = ["WordAligner", "ExtractionSettings", "EXTRACTION_METHODS", "extract_links"]
