"""``python -m napari_s2vnet.widget.demo``: napari with the S2VNet dock and the real abdominal CT."""

from __future__ import annotations


def main() -> None:
    import napari

    viewer = napari.Viewer(title="napari-s2vnet demo")
    viewer.open_sample("napari-s2vnet", "ct")
    viewer.window.add_plugin_dock_widget("napari-s2vnet", "S2VNet segmentation")
    napari.run()


if __name__ == "__main__":
    main()
