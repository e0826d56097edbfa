"""The Streamlit shell around byok_core: session cookies, navigation, and shared page components.

Nothing here holds business logic; pages call byok_core and only render what it returns."""
