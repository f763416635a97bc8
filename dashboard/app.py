"""Entry script of the Seamwatch dashboard: page set-up and navigation between pages."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from dashboard import data

# Not "pages/": Streamlit would list that folder on its own before the navigation runs.
PAGES_DIR = Path(__file__).parent / "views"
# A file of ours, sent inline: a ":material/...:" page icon makes every browser fetch it from
# fonts.gstatic.com, which an offline or private site must not contact. (The icons of the
# navigation and messages are drawn from a font Streamlit serves itself.)
PAGE_ICON = Path(__file__).with_name("icon.svg")
# How often a page waiting for the store's server looks again.
NOTICE_REFRESH_SECONDS = 3


def main() -> None:
    """Set up the page and run the one the visitor chose."""
    st.set_page_config(page_title="Seamwatch", page_icon=PAGE_ICON, layout="wide")
    st.title("Seamwatch")
    pages = {
        "Monitor": [
            st.Page(
                PAGES_DIR / "01_live_health.py",
                title="Live health",
                icon=":material/monitor_heart:",
                default=True,
            ),
            st.Page(PAGES_DIR / "05_alerts.py", title="Alerts", icon=":material/notifications:"),
            st.Page(PAGES_DIR / "06_collector.py", title="Collector", icon=":material/input:"),
        ],
        "Investigate": [
            st.Page(PAGES_DIR / "02_lineage.py", title="Lineage", icon=":material/account_tree:"),
            st.Page(PAGES_DIR / "03_exceptions.py", title="Exceptions", icon=":material/report:"),
        ],
        "Business": [
            st.Page(
                PAGES_DIR / "04_executive.py",
                title="Executive trends",
                icon=":material/trending_up:",
            ),
        ],
    }
    page = st.navigation(pages)
    if data.store_notice() is not None:
        # the navigation stays, so that a chat link's page opens once the server answers
        store_notice()
        return
    page.run()


@st.fragment(run_every=NOTICE_REFRESH_SECONDS)
def store_notice() -> None:
    """Say why no page shows yet; run the whole app again once the store is open."""
    notice = data.store_notice()
    if notice is None:
        st.rerun()
    st.warning(notice, icon=":material/hourglass_top:")


main()
