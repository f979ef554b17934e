"""Interactive Session on the real CT with the bundled weights: clicks, propagation, undo/redo, locks."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from napari_s2vnet.errors import InputError
from napari_s2vnet.inference import Click

LIVER, SPLEEN, COLON = 5, 1, 20


def _deep_point(mask2d):
    depth = ndimage.distance_transform_edt(mask2d)
    return np.unravel_index(int(np.argmax(depth)), depth.shape)


@pytest.fixture(scope="module")
def ct_crop(ct_internal):
    """The upper abdomen of the real CT (slices 60-111: liver, spleen, kidneys, colon) to keep tests fast."""
    image, gt, spacing = ct_internal
    return image[60:], gt[60:], spacing


@pytest.fixture(scope="module")
def ct_session_factory(predictor, ct_crop):
    image, gt, spacing = ct_crop
    base = predictor.session(image, spacing, "CT")
    base.prepare_features()

    def make():
        s = predictor.session(image, spacing, "CT")
        s.cache = base.cache  # share the (read-only) feature cache between tests
        return s

    return make


def _click_on(gt, label, z=None):
    zs = np.flatnonzero((gt == label).reshape(gt.shape[0], -1).sum(1) > 0)
    z = int(zs[len(zs) // 2]) if z is None else z
    y, x = _deep_point(gt[z] == label)
    return z, int(y), int(x)


def test_click_updates_slice_then_propagates_both_ways(ct_session_factory, ct_crop):
    _, gt, _ = ct_crop
    s = ct_session_factory()
    z, y, x = _click_on(gt, LIVER)
    new_slice = s.add_click(z, y, x, LIVER)
    assert new_slice[y, x] == LIVER
    inter = ((new_slice == LIVER) & (gt[z] == LIVER)).sum()
    assert 2 * inter / ((new_slice == LIVER).sum() + (gt[z] == LIVER).sum()) > 0.8
    seen = [zz for zz, _ in s.propagate()]
    assert any(zz > z for zz in seen) and any(zz < z for zz in seen)
    labels = s.labels()
    present = np.flatnonzero((labels == LIVER).reshape(labels.shape[0], -1).any(1))
    assert len(present) > 10 and present.min() < z < present.max()


def test_several_classes_in_one_pass_and_undo_redo_exact(ct_session_factory, ct_crop):
    _, gt, _ = ct_crop
    s = ct_session_factory()
    z = _click_on(gt, SPLEEN)[0]
    s.add_clicks([Click(*_click_on(gt, LIVER, z), LIVER)])
    list(s.propagate())
    first = s.labels().copy()
    out = s.add_clicks([Click(*_click_on(gt, SPLEEN, z), SPLEEN), Click(*_click_on(gt, LIVER, z), LIVER)])
    assert set(np.unique(out[z])) >= {0, LIVER, SPLEEN}
    list(s.propagate())
    second = s.labels().copy()
    assert not np.array_equal(first, second)
    assert s.undo()
    assert np.array_equal(s.labels(), first)
    assert [c.label for c in s.clicks()] == [LIVER]
    assert s.redo()
    assert np.array_equal(s.labels(), second)
    assert sorted(c.label for c in s.clicks()) == sorted([LIVER, LIVER, SPLEEN])
    assert s.undo() and s.undo()
    assert not s.labels().any() and not s.undo()


def test_locked_labels_are_never_overwritten(ct_session_factory, ct_crop):
    _, gt, _ = ct_crop
    s = ct_session_factory()
    z, y, x = _click_on(gt, LIVER)
    painted = np.zeros(s.shape, np.uint16)
    painted[z - 3 : z + 4, y - 5 : y + 6, x - 5 : x + 6] = 99
    s.set_labels(painted)
    s.locked = {99}
    s.add_click(z, y + 8, x, LIVER)
    list(s.propagate())
    assert np.array_equal(s.labels() == 99, painted == 99)
    assert (s.labels() == LIVER).sum() > 100


def test_remove_class_and_undo(ct_session_factory, ct_crop):
    _, gt, _ = ct_crop
    s = ct_session_factory()
    s.add_click(*_click_on(gt, LIVER), LIVER)
    list(s.propagate())
    before = s.labels().copy()
    s.remove_class(LIVER)
    assert not (s.labels() == LIVER).any() and not s.clicks()
    s.undo()
    assert np.array_equal(s.labels(), before) and len(s.clicks()) == 1


def test_auto_then_click_refines_and_keeps_other_classes(ct_session_factory, ct_crop):
    _, gt, _ = ct_crop
    s = ct_session_factory()
    auto = s.auto().copy()
    assert len(np.unique(auto)) > 20
    z, y, x = _click_on(gt, SPLEEN)
    s.add_click(z, y, x, SPLEEN)
    list(s.propagate())
    after = s.labels()
    colon_before, colon_after = (auto == COLON).sum(), (after == COLON).sum()
    assert colon_after >= 0.95 * colon_before  # other classes untouched except where the clicked class grew
    s.undo()
    assert np.array_equal(s.labels(), auto)


def test_negative_click_trims_automatic_result(ct_session_factory, ct_crop):
    _, gt, _ = ct_crop
    s = ct_session_factory()
    s.auto()
    labels = s.labels()
    z, y, x = _click_on(gt, LIVER)
    before = (labels[z] == LIVER).sum()
    s.add_click(z, y, x, LIVER, positive=False)
    assert (s.labels()[z] == LIVER).sum() < before


def test_bad_clicks_raise_input_error(ct_session_factory):
    s = ct_session_factory()
    with pytest.raises(InputError, match="outside"):
        s.add_click(s.shape[0], 0, 0, 3)
    with pytest.raises(InputError, match="positive integers"):
        s.add_click(0, 0, 0, 0)
    with pytest.raises(InputError, match="no positive click"):
        s.add_click(10, 10, 10, 777, positive=False)


def test_focus_orders_propagation(ct_session_factory, ct_crop):
    _, gt, _ = ct_crop
    s = ct_session_factory()
    z, y, x = _click_on(gt, LIVER)
    s.add_click(z, y, x, LIVER)
    s.focus = 0
    first = [zz for _, (zz, _slice) in zip(range(3), s.propagate())]
    assert first and all(zz < z for zz in first)


def test_undo_memory_is_bounded(predictor, ct_internal):
    image, _, spacing = ct_internal
    s = predictor.session(image[40:60], spacing, "CT", undo_bytes=64 << 10)
    for k in range(1, 5):
        edit = np.zeros(s.shape, np.uint16)
        edit[:, : 20 * k] = k  # each round changes thousands of voxels (> the 64 KiB bound)
        s.set_labels(edit)
    assert s.state.dropped_rounds >= 2
    assert s.state.undo_bytes <= (64 << 10) or s.state.rounds == 1
    assert s.undo()  # the newest round is always kept


def test_connected_to_drops_distant_lookalikes():
    from napari_s2vnet.inference.masks import connected_to, keep_clicked

    prev = np.zeros((20, 20), bool)
    prev[2:6, 2:6] = True
    mask = np.zeros((20, 20), bool)
    mask[3:7, 3:7] = True  # continues the previous slice's object
    mask[14:18, 14:18] = True  # a look-alike far away
    kept = connected_to(mask, prev)
    assert kept[4, 4] and not kept[15, 15]
    assert np.array_equal(connected_to(mask, np.zeros_like(prev)), mask)  # not seen yet: keep all
    assert np.array_equal(keep_clicked(mask, [(15, 15)]), mask & (np.arange(20)[:, None] > 10))
    assert keep_clicked(mask, [(10, 10)]).sum() == 16  # no component holds the click: the nearest one


def test_click_during_propagation_finishes_the_superseded_round(ct_session_factory, ct_crop):
    _, gt, _ = ct_crop
    s = ct_session_factory()
    z, y, x = _click_on(gt, LIVER)
    s.add_click(z, y, x, LIVER)
    gen = s.propagate()
    next(gen), next(gen)  # the user clicks again while propagation is running
    gen.close()
    zs, ys, xs = _click_on(gt, SPLEEN)
    s.add_click(zs, ys, xs, SPLEEN)
    list(s.propagate())
    reference = ct_session_factory()
    reference.add_click(z, y, x, LIVER)
    list(reference.propagate())
    liver = s.labels() == LIVER
    assert liver.sum() >= 0.95 * (reference.labels() == LIVER).sum()  # liver spread all the way anyway
    assert (s.labels() == SPLEEN).any()


def test_restore_puts_clicks_back_in_effect(ct_session_factory, ct_crop):
    _, gt, _ = ct_crop
    s = ct_session_factory()
    z, y, x = _click_on(gt, LIVER)
    s.add_click(z, y, x, LIVER)
    list(s.propagate())
    saved_labels, saved_clicks = s.labels().copy(), s.clicks()
    r = ct_session_factory()
    r.restore(saved_labels, saved_clicks)
    assert np.array_equal(r.labels(), saved_labels) and r.clicks() == saved_clicks
    r.add_click(z, y, x, LIVER, positive=False)  # a negative click now has the restored positive to refine
    assert (r.labels()[z] == LIVER).sum() < (saved_labels[z] == LIVER).sum()
    assert r.undo() and r.undo() and not r.labels().any() and not r.clicks()


def test_session_with_several_centres_per_class(tiny_config):
    """A model with 3 centres per class runs the whole interactive loop: clicks, negatives, propagation, undo."""
    import dataclasses

    import torch

    from napari_s2vnet.data.phantom import make_phantom
    from napari_s2vnet.inference import Predictor
    from napari_s2vnet.model.s2vnet import S2VNet

    torch.manual_seed(0)
    model = S2VNet(dataclasses.replace(tiny_config, centres_per_class=3)).eval()
    ph = make_phantom(7, shape=(10, 48, 48))
    session = Predictor(model, "cpu").session(ph.image, ph.spacing, "CT")
    present = [int(c) for c in np.unique(ph.labels[5]) if c]
    a, b = present[:2]
    za, ya, xa = 5, *(int(v) for v in _deep_point(ph.labels[5] == a))
    zb, yb, xb = 5, *(int(v) for v in _deep_point(ph.labels[5] == b))
    session.add_clicks([Click(za, ya, xa, a), Click(zb, yb, xb, b), Click(5, 0, 0, 5, positive=False)])
    visited = {z for z, _ in session.propagate()}
    assert {4, 6} <= visited  # both directions ran (untrained weights: what they paint is not checked)
    labels = session.labels().copy()
    assert set(np.unique(labels)) <= {0, a, b}
    assert session.undo()
    assert not session.labels().any()


def test_every_click_is_honoured_on_its_slice(ct_session_factory, ct_crop):
    """A positive click's voxel ends up in its class; a negative click's voxel out of it, on any structure."""
    _, gt, _ = ct_crop
    rng = np.random.default_rng(0)
    s = ct_session_factory()
    label = 300  # a label the model has no embedding for: only the clicks define it
    for cls in np.unique(gt)[1:][::6]:
        z, y, x = (int(v) for v in np.argwhere(gt == cls)[rng.integers((gt == cls).sum())])
        new = s.add_click(z, y, x, label)
        assert new[y, x] == label
        list(s.propagate())
        assert s.labels()[z, y, x] == label
    hit = np.argwhere(s.labels() == label)
    z, y, x = (int(v) for v in hit[len(hit) // 2])
    assert s.add_clicks([Click(z, y, x, label, positive=False)])[z][y, x] != label
    background = np.argwhere(gt == 0)
    z, y, x = (int(v) for v in background[rng.integers(len(background))])
    assert s.add_click(z, y, x, 301)[y, x] == 301  # even a click on air


def test_second_click_on_a_missed_region_does_not_lower_dice_on_a_phantom(predictor):
    from napari_s2vnet.data.phantom import make_phantom
    from napari_s2vnet.evaluation.interactive import run_clicks

    ph = make_phantom(11)
    session = predictor.session(ph.image, ph.spacing, "CT")
    organs = [c for c in np.unique(ph.labels) if c and (ph.labels == c).sum() > 3000][:4]
    curves = run_clicks(session, ph.labels, organs, clicks=2, spacing_zyx=ph.spacing)
    assert len(curves) == len(organs) >= 3
    for curve in curves:
        assert curve.dice[1] >= curve.dice[0] - 0.01, (curve.label, curve.dice)


def test_small_objects_are_decoded_on_the_zoomed_view(predictor, monkeypatch):
    """On a 1 mm image a class whose first pass on the model's view misses its click and finds a small
    object is decoded on the fine view; one whose network mask holds the click is not."""
    import dataclasses

    from napari_s2vnet.data.phantom import make_phantom
    from napari_s2vnet.inference import Predictor
    from napari_s2vnet.inference import passes
    from napari_s2vnet.inference import session as session_module
    from napari_s2vnet.model.s2vnet import S2VNet

    assert predictor.session(np.zeros((4, 64, 64)), (2.0, 1.0, 1.0), "CT").zoom == (predictor.config.zoom_mm > 0)
    model = S2VNet(dataclasses.replace(predictor.config, zoom_mm=1.5))  # as trained with --fine-mm 1.5
    model.load_state_dict(predictor.model.state_dict())
    predictor = Predictor(model)

    ph = make_phantom(5, shape=(24, 96, 96))
    image = ndimage.zoom(ph.image, (1, 2, 2), order=1)
    labels = ndimage.zoom(ph.labels, (1, 2, 2), order=0)
    spacing = (ph.spacing[0], ph.spacing[1] / 2, ph.spacing[2] / 2)
    big = max((int(c) for c in np.unique(labels) if c), key=lambda c: (labels == c).sum())
    z, y, x = _click_on(labels, big)
    monkeypatch.setattr(session_module, "SMALL_MM2", 0.0)  # nothing is small
    s = predictor.session(image, spacing, "CT")
    assert s.zoom
    s.add_click(z, y, x, big)
    assert not s._zoomed[big] and s._fine is None
    monkeypatch.setattr(session_module, "SMALL_MM2", 1e12)  # everything is small
    s = predictor.session(image, spacing, "CT")
    coarse = s.add_click(z, y, x, big)
    assert coarse[y, x] == big and not s._zoomed[big] and s._fine is None  # the model's view saw the click
    decode = passes.PassRunner._decode

    def blind_coarse(self, view, *args):  # a model's view that sees nothing: the click is missed
        scores, groups, obj = decode(self, view, *args)
        return scores, groups if view is self._fine else np.zeros_like(groups), obj

    monkeypatch.setattr(passes.PassRunner, "_decode", blind_coarse)
    s = predictor.session(image, spacing, "CT")
    coarse = s.add_click(z, y, x, big)
    assert s._zoomed[big] and s._fine is not None and coarse[y, x] == big
    assert s._fine.prepared.hw[0] == pytest.approx(labels.shape[1] * spacing[1] / 1.5, abs=1)
    assert [p.fine for p in s._pending] == [False, True]  # the coarse pass stays queued, without the class
    written = {zz for zz, _ in s.propagate()}
    assert len(written) > 2 and (s.labels() == big).sum() > (labels[z] == big).sum()
    assert s.undo() and not (s.labels() == big).any()
    coarse_only = predictor.session(image[:, ::2, ::2], ph.spacing, "CT")
    assert not coarse_only.zoom  # a 2 mm image is not zoomed


def test_only_the_newest_clicks_of_a_class_become_centres(predictor, ct_crop):
    import dataclasses

    from napari_s2vnet.inference import Predictor
    from napari_s2vnet.model.s2vnet import S2VNet

    image, gt, spacing = ct_crop
    model = S2VNet(dataclasses.replace(predictor.config, click_centres="per_click"))
    model.load_state_dict(predictor.model.state_dict())
    s = Predictor(model).session(image, spacing, "CT")
    z, y, x = _click_on(gt, LIVER)
    keep = model.config.max_clicks
    s.add_clicks([Click(z, y + dy, x, LIVER) for dy in range(-(keep + 2) // 2, (keep + 3) // 2)])
    anchors = s._anchors([LIVER])
    assert int((anchors.groups[0] == 1).sum()) == keep * model.config.centres_per_class
    assert len(s.clicks()) == keep + 2  # all clicks are kept (undo, autosave); only the centres are bounded


def test_corrections_do_what_their_sign_says(ct_session_factory, ct_crop):
    """A round of positive clicks never takes voxels from its class, a round of negative clicks never
    gives it any, on any slice; a round with both signs may do either."""
    from napari_s2vnet.inference.session import _effect

    _, gt, _ = ct_crop
    s = ct_session_factory()
    z, y, x = _click_on(gt, LIVER)
    s.add_click(z, y, x, LIVER)
    list(s.propagate())
    missed = (gt == LIVER) & (s.labels() != LIVER)
    zz, yy, xx = (int(v) for v in np.argwhere(missed)[len(np.argwhere(missed)) // 2])
    before = s.labels() == LIVER
    s.add_click(zz, yy, xx, LIVER)  # positive, on a missed voxel of another part of the liver
    list(s.propagate())
    after = s.labels() == LIVER
    assert not (before & ~after).any() and after[zz, yy, xx] and after.sum() > before.sum()
    wrong = after & (gt != LIVER)
    zn, yn, xn = (int(v) for v in np.argwhere(wrong)[len(np.argwhere(wrong)) // 2])
    s.add_click(zn, yn, xn, LIVER, positive=False)
    list(s.propagate())
    trimmed = s.labels() == LIVER
    assert not (trimmed & ~after).any() and not trimmed[zn, yn, xn] and trimmed.sum() < after.sum()
    clicks = [Click(0, 0, 0, LIVER, True), Click(0, 1, 1, LIVER, False), Click(0, 2, 2, SPLEEN, True)]
    assert [_effect(clicks, LIVER, True), _effect(clicks, SPLEEN, True), _effect(clicks[1:2], LIVER, True),
            _effect(clicks, SPLEEN, False)] == ["replace", "add", "remove", "replace"]  # a first click: replace


def test_a_correction_reaches_only_the_error_it_was_made_in():
    from napari_s2vnet.inference.masks import local_change

    old = np.zeros((20, 40), bool)
    old[5:15, 5:15] = True  # the class so far
    mask = np.zeros_like(old)
    mask[5:15, 5:20] = True  # the decode grows it to the right (where the click was) ...
    mask[2:4, 30:38] = True  # ... and also leaks far away
    seed = np.zeros_like(old)
    seed[10, 17] = True
    new, change = local_change(mask, old, "add", seed)
    assert new[5:15, 5:20].all() and not new[2:4, 30:38].any() and change.sum() == 50
    assert not local_change(mask, old, "add", np.zeros_like(old))[1].any()  # no seed: no change
    shrunk = old.copy()
    shrunk[5:15, 12:15] = False  # the decode drops the right edge ...
    shrunk[5:7, 5:8] = False  # ... and a corner far from the negative click
    seed = np.zeros_like(old)
    seed[10, 13] = True
    new, change = local_change(shrunk, old, "remove", seed)
    assert not new[5:15, 12:15].any() and new[5:7, 5:8].all() and change.sum() == 30
    assert local_change(mask, old, "replace", seed)[0] is mask


def test_uncertain_slices_rank_the_doubt_of_written_labels_and_follow_undo(ct_session_factory, ct_crop):
    """Every round scores the slices it wrote (review guidance); undo/redo/remove_class return the
    changed slices and put the scores back as they were."""
    _, gt, _ = ct_crop
    s = ct_session_factory()
    assert not s.slice_doubt().any() and s.uncertain_slices(5) == []
    z, y, x = _click_on(gt, LIVER)
    s.add_click(z, y, x, LIVER)
    written = {z} | {zz for zz, _ in s.propagate()}
    doubt = s.slice_doubt()
    assert doubt.shape == (gt.shape[0],) and doubt[z] > 0
    assert set(np.flatnonzero(doubt)) <= written  # only slices the round decoded have a score
    top = s.uncertain_slices(3)
    assert len(top) == 3 and list(doubt[top]) == sorted(doubt[top], reverse=True) and doubt[top[0]] == doubt.max()
    assert top[0] not in s.uncertain_slices(3, skip=[top[0]])
    after = s.labels().copy()
    undone = s.undo()
    assert set(undone) == set(np.flatnonzero((after != 0).reshape(len(after), -1).any(1)))
    assert all(np.array_equal(undone[k], s.labels()[k]) for k in undone) and not s.slice_doubt().any()
    redone = s.redo()
    assert set(redone) == set(undone) and np.array_equal(s.labels(), after)
    assert np.array_equal(s.slice_doubt(), doubt)
    removed = s.remove_class(LIVER)
    assert set(removed) == set(undone) and not s.labels().any() and not s.slice_doubt().any()
    assert s.undo() is not None and s.redo() is not None and s.redo() is None
    s.auto(classes=[SPLEEN, COLON])
    assert s.slice_doubt().sum() > 0


def test_repropagate_finishes_pending_passes_or_reruns_the_last_round(ct_session_factory, ct_crop):
    _, gt, _ = ct_crop
    s = ct_session_factory()
    z, y, x = _click_on(gt, LIVER)
    s.add_click(z, y, x, LIVER)
    first = [zz for zz, _ in s.repropagate()]  # the pending pass
    assert z not in first and not s.pending
    labels = s.labels().copy()
    again = [zz for zz, _ in s.repropagate()]  # nothing pending: the clicked slice again, then outward
    assert again[0] == z and len(again) > 1 and s.state.rounds == 2
    assert np.array_equal(s.labels(), labels)  # the same clicks decode the same labels
    s.undo()
    s.undo()
    assert list(s.repropagate()) == []  # its clicks were undone


def test_box_and_scribble_prompts_segment_and_propagate(ct_session_factory, ct_crop):
    """A box gives its class inside the box on its slice, then propagates; a scribble's
    sampled pixels are all obeyed; both are ordinary undoable rounds."""
    from napari_s2vnet.inference.prompts import SCRIBBLE_POINTS, stroke_pixels

    _, gt, _ = ct_crop
    s = ct_session_factory()
    z = _click_on(gt, LIVER)[0]
    ys, xs = np.nonzero(gt[z] == LIVER)
    box = (int(ys.min()), int(xs.min()), int(ys.max()), int(xs.max()))
    out = s.add_box(z, *box, LIVER)
    got = out[z] == LIVER
    inside = np.zeros(got.shape, bool)
    inside[box[0] : box[2] + 1, box[1] : box[3] + 1] = True
    assert got.any() and not (got & ~inside).any()  # on its slice the class stays inside the box
    # (where inside the box the object is, is a heuristic: on this slice, where the liver fills 22 % of
    # its box, the positive click lands on another organ; see docs/method.md)
    assert {c.positive for c in s.clicks()} == {True, False}
    assert len({zz for zz, _ in s.propagate()}) > 10
    assert s.undo() is not None and not s.labels().any() and not s.clicks()

    zs, ys_, xs_ = _click_on(gt, SPLEEN)
    stroke = [(ys_ - 3, xs_ - 3), (ys_ + 3, xs_ + 3)]
    out = s.add_scribble(zs, stroke, SPLEEN)
    clicks = s.clicks()
    assert 1 < len(clicks) <= SCRIBBLE_POINTS and all(out[zs][c.y, c.x] == SPLEEN for c in clicks)
    assert {(c.y, c.x) for c in clicks} <= {tuple(p) for p in stroke_pixels(stroke)}


def test_session_auto_uses_the_coarse_z_grid_of_automatic_mode(predictor, ct_internal):
    """Auto-segment in a session gives ``Predictor.segment_internal``'s labels, z step included: on
    1.5 mm slices every second slice is decoded (``z_mm`` None), unlike ``z_mm=0``."""
    image, _, spacing = ct_internal
    fine = np.repeat(image[50:58], 2, axis=0)
    sp = (spacing[0] / 2, *spacing[1:])
    s = predictor.session(fine, sp, "CT")
    assert s.z_step == 2 and predictor.session(fine, sp, "CT", z_mm=0).z_step == 1
    assert np.array_equal(s.auto(), predictor.segment_internal(fine, sp, "CT"))
    assert not np.array_equal(s.labels(), predictor.segment_internal(fine, sp, "CT", z_mm=0))
