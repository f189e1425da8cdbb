"""Full-text search over the catalog (whoosh): one writer (a job), many readers."""

from .index import DOC_TYPES, SearchIndex

__all__ = ["DOC_TYPES", "SearchIndex"]
