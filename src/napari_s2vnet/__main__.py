"""``python -m napari_s2vnet`` is the same as the ``napari-s2vnet`` console script."""

from napari_s2vnet.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
