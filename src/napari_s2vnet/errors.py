"""Exceptions and warnings shown to users (CLI message, napari notification) as one readable line.

* :class:`InputError` (a ``ValueError``): a file, folder or parameter cannot be used. The CLI
  prints ``napari-s2vnet CMD: error: MESSAGE`` on stderr and exits with code 2.
* :class:`MissingExtraError` (an ``InputError``): an optional dependency is not installed; the
  message names the ``pip install "napari-s2vnet[EXTRA]"`` that brings it.
* :class:`InputWarning` (a ``UserWarning``): the input was used, but changed or doubtful (non-finite
  voxels replaced, constant image, sheared axes, ...). The CLI prints ``... warning: MESSAGE``.
* ``model.weights.WeightsError`` (an ``InputError``): a weights file that cannot be used.

``docs/robustness.md`` lists each bad input and what it gets.
"""


class InputError(ValueError):
    """A file, folder or parameter the user gave cannot be used; the message says why."""


class MissingExtraError(InputError):
    """An optional dependency is missing; the message says which extra installs it."""

    def __init__(self, module: str, extra: str, needed_for: str) -> None:
        self.module, self.extra = module, extra
        super().__init__(
            f"{needed_for} needs the optional package '{module}': pip install \"napari-s2vnet[{extra}]\""
        )


class InputWarning(UserWarning):
    """The input was used but changed or is doubtful; the message says what happened."""
