"""Holds only the Streamlit script (app.py), in a folder of its own (see app.py)."""
