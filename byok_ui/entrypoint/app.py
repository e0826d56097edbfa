"""The Streamlit script that st.App runs for every rerun: the page shell (byok_ui/shell.py).

It lives in a folder of its own on purpose. Streamlit switches to its legacy multipage mode when
the script's folder has a ``pages/`` subfolder, and in that mode every file in ``pages/`` can be
opened by URL without the shell running first. From here, ``st.navigation`` alone decides which
pages exist for the signed-in user, and Streamlit puts only this folder on ``sys.path``.
"""

import sys
from pathlib import Path

_ROOT = str(Path(__file__).resolve().parents[2])
if _ROOT not in sys.path:  # the project root, for `import byok_ui` from a source checkout
    sys.path.insert(0, _ROOT)

from byok_ui.shell import main  # noqa: E402

main()
