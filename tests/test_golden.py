"""Golden end-to-end checks with the bundled weights on the real volumes.

The CT is part of the bundled model's training data, so the automatic bar is a sanity check, not a
generalisation claim. The MR labels' ids are never used as automatic classes in training (its
episodes are interactive only), and the clicks here follow the simulated-user protocol.
"""

from __future__ import annotations

import numpy as np
import pytest

from napari_s2vnet.data.io import read_volume
from napari_s2vnet.data.samples import sample_path
from napari_s2vnet.evaluation.interactive import run_clicks
from napari_s2vnet.evaluation.metrics import dice_per_class

pytestmark = pytest.mark.slow

MR_CLASSES = {5: "liver", 1: "spleen", 2: "kidney_right", 3: "kidney_left"}


def test_ct_automatic_dice_top10(predictor):
    volume = read_volume(sample_path("ct"))
    gt = np.rint(read_volume(sample_path("ct_labels")).array).astype(np.int32)
    pred = predictor.segment(volume)
    assert pred.shape == gt.shape
    ids, counts = np.unique(gt[gt > 0], return_counts=True)
    top10 = ids[np.argsort(-counts)[:10]].tolist()
    dice = dice_per_class(pred, gt, labels=top10)
    print("CT automatic Dice (10 largest):", {k: round(v, 3) for k, v in dice.items()})
    assert np.mean(list(dice.values())) >= 0.90
    assert min(dice.values()) >= 0.80


def test_mr_interactive_three_clicks(predictor, mr_internal):
    image, gt, spacing = mr_internal
    session = predictor.session(image, spacing, "MR")
    curves = run_clicks(session, gt, MR_CLASSES, clicks=3, spacing_zyx=spacing)
    result = {MR_CLASSES[c.label]: [round(d, 3) for d in c.dice] for c in curves}
    print("MR interactive Dice after 1..3 clicks:", result)
    assert len(curves) == 4
    for c in curves:
        assert max(c.dice) >= 0.85, (MR_CLASSES[c.label], c.dice)
