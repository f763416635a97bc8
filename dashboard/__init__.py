"""The Seamwatch dashboard, a Streamlit app.

``APP_PATH`` is its entry script, for ``streamlit run`` or Streamlit's bootstrap API.
"""

from pathlib import Path

APP_PATH = Path(__file__).with_name("app.py")

__all__ = ["APP_PATH"]
