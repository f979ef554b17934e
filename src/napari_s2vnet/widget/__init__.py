"""napari plugin of napari-s2vnet: dock, readers, writers, sample data and autosave.

This is the only package that imports napari / Qt. Importing it is cheap: the Qt modules
(:mod:`.dock`, :mod:`.classes_panel`, :mod:`.worker`) are imported by the manifest commands only.
"""

from __future__ import annotations

from typing import Any

PLUGIN_NAME = "napari-s2vnet"
#: file patterns napari's built-in reader also claims; the plugin becomes their default reader
DEFAULT_READER_PATTERNS = ("*.nii", "*.nii.gz")


def set_default_reader(force: bool = False) -> list[str]:
    """Make this plugin napari's preferred reader for NIfTI files, so File > Open does not ask.

    A preference the user already chose for a pattern is kept unless ``force``. Returns the
    patterns that were set.
    """
    from napari.settings import get_settings

    settings = get_settings().plugins
    current = dict(settings.extension2reader)
    changed = []
    for pattern in DEFAULT_READER_PATTERNS:
        if force or pattern not in current:
            current[pattern] = PLUGIN_NAME
            changed.append(pattern)
    if changed:
        settings.extension2reader = current
    return changed


def activate(context: Any = None) -> None:
    """npe2 ``on_activate`` hook (runs when any contribution of the plugin is first used)."""
    try:
        set_default_reader()
    except Exception:  # never let a settings problem break the plugin
        pass


__all__ = ["PLUGIN_NAME", "activate", "set_default_reader"]
