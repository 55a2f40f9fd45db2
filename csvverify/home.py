"""Where csvverify keeps its state: $CSVVERIFY_HOME, else the platform's per-user data directory."""

import os
from pathlib import Path


def home_dir() -> Path:
    """The state directory (created on first use by whoever writes into it)."""
    configured = os.environ.get("CSVVERIFY_HOME")
    if configured:
        return Path(configured).expanduser()
    xdg = os.environ.get("XDG_DATA_HOME")
    return (Path(xdg) if xdg else Path.home() / ".local" / "share") / "csvverify"
