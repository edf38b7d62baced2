"""discviewer — serial lumbar-spine MRI review. Research use only; not a diagnostic device."""
__version__ = "0.1.0"
RESEARCH_USE_NOTICE = "Research use only — not for diagnosis"
