"""BYOK Dashboard core: encrypted key vault, accounts, provider adapters and usage accounting.

Nothing in this package imports Streamlit; the pages in ``pages/`` are a thin shell over it.
"""

__version__ = "0.1.0"
