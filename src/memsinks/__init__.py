"""memsinks: memorization sinks for language models (Ghosal, Maini, Raghunathan, ICML 2025)."""

__version__ = "0.1.0"
