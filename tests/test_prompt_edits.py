"""Editing prompts (remove, move) and the propagation limits (slice only, slice range) of Session,
on the real CT with the bundled weights (``inference/edits.py``, ``PassRunner._region``)."""

from __future__ import annotations

import numpy as np
import pytest

from napari_s2vnet.errors import InputError
from napari_s2vnet.inference import Click
from napari_s2vnet.inference.prompts import Box
from test_session import COLON, LIVER, SPLEEN, _click_on, ct_crop, ct_session_factory  # noqa: F401 (fixtures)


def _run(s, round_out):
    """A round's slices, then its propagation: every slice it changed."""
    out = dict(round_out) if isinstance(round_out, dict) else {}  # add_click: its slice only
    out.update(s.propagate())
    return out


def _slices_with(labels, label):
    return set(np.flatnonzero((labels == label).reshape(labels.shape[0], -1).any(1)).tolist())


def test_removing_a_click_recomputes_its_class_from_the_rest(ct_session_factory, ct_crop):
    """Two liver clicks on two slices; removing the second gives the class as the first alone gives
    it, as one undoable round; undo and redo are exact; the other class is untouched."""
    _, gt, _ = ct_crop
    zs = sorted(np.flatnonzero((gt == LIVER).reshape(gt.shape[0], -1).any(1)))
    first, second = _click_on(gt, LIVER, int(zs[len(zs) // 3])), _click_on(gt, LIVER, int(zs[2 * len(zs) // 3]))
    alone = ct_session_factory()
    _run(alone, alone.add_click(*first, LIVER))
    expected = alone.labels().copy()

    s = ct_session_factory()
    _run(s, s.add_clicks([Click(*_click_on(gt, SPLEEN), SPLEEN)]))
    spleen = s.labels() == SPLEEN
    _run(s, s.add_clicks([Click(*first, LIVER)]))
    _run(s, s.add_clicks([Click(*second, LIVER)]))
    before = s.labels().copy()
    assert s.prompts()[-1] == Click(*second, LIVER)
    changed = _run(s, s.remove_prompt(Click(*second, LIVER)))
    after = s.labels().copy()
    assert Click(*second, LIVER) not in s.clicks() and Click(*first, LIVER) in s.clicks()
    np.testing.assert_array_equal(after == LIVER, expected == LIVER)
    np.testing.assert_array_equal(after == SPLEEN, spleen)
    moved = set(np.flatnonzero((before != after).reshape(after.shape[0], -1).any(1)).tolist())
    assert moved and moved <= set(changed)
    assert s.undo() is not None
    np.testing.assert_array_equal(s.labels(), before)
    assert Click(*second, LIVER) in s.clicks()
    assert s.redo() is not None
    np.testing.assert_array_equal(s.labels(), after)


def test_removing_the_last_prompt_removes_the_class_and_keeps_locked_voxels(ct_session_factory, ct_crop):
    """The last prompt of a class gone: nothing the model wrote of it stays; voxels of locked labels
    (the dock locks the labels painted by hand) stay as they were, its own included."""
    _, gt, _ = ct_crop
    s = ct_session_factory()
    _run(s, s.add_clicks([Click(*_click_on(gt, SPLEEN), SPLEEN), Click(*_click_on(gt, LIVER), LIVER)]))
    liver = s.labels() == LIVER
    s.locked = {LIVER}
    _run(s, s.remove_prompt(Click(*_click_on(gt, SPLEEN), SPLEEN)))
    assert not (s.labels() == SPLEEN).any()
    np.testing.assert_array_equal(s.labels() == LIVER, liver)
    assert list(s.propagate()) == [] and SPLEEN not in {c.label for c in s.clicks()}
    _run(s, s.remove_prompt(Click(*_click_on(gt, LIVER), LIVER)))  # locked: its voxels are kept
    np.testing.assert_array_equal(s.labels() == LIVER, liver)
    assert s.clicks() == [] and s.prompts() == []
    with pytest.raises(InputError, match="not a prompt in effect"):
        s.remove_prompt(Click(*_click_on(gt, LIVER), LIVER))


def test_moving_a_click_and_removing_a_box(ct_session_factory, ct_crop):
    """A moved click is one round (the class follows it); a box is one prompt: removing it removes
    its five clicks and its class."""
    _, gt, _ = ct_crop
    s = ct_session_factory()
    z, y, x = _click_on(gt, SPLEEN)
    _run(s, s.add_click(z, y, x, SPLEEN))
    zs = sorted(_slices_with(gt, SPLEEN))
    z2 = int(zs[-3])
    new = Click(*_click_on(gt, SPLEEN, z2), SPLEEN)
    _run(s, s.move_prompt(Click(z, y, x, SPLEEN), new))
    assert s.clicks() == [new] and s.labels()[new.z, new.y, new.x] == SPLEEN
    assert s.state.rounds == 2 and s.undo() is not None and s.clicks() == [Click(z, y, x, SPLEEN)]

    zl = _click_on(gt, LIVER)[0]
    ys, xs = np.nonzero(gt[zl] == LIVER)
    box = Box(zl, int(ys.max()), int(xs.max()), int(ys.min()), int(xs.min()), LIVER)  # corners in any order
    _run(s, s.add_box(zl, box.y0, box.x0, box.y1, box.x1, LIVER))
    assert s.prompts()[-1] == box.ordered() and len(s.clicks()) == 1 + 5
    _run(s, s.remove_prompt(box))
    assert not (s.labels() == LIVER).any() and s.clicks() == [Click(z, y, x, SPLEEN)]


def test_slice_only_and_slice_range_limit_where_rounds_write(ct_session_factory, ct_crop):
    """Slice only: a round writes its clicked slice and nothing else (Propagate spreads it later). A slice range: propagation stays
    inside it (a click outside it writes only its own slice); labels outside it are kept."""
    _, gt, _ = ct_crop
    s = ct_session_factory()
    z, y, x = _click_on(gt, LIVER)
    s.slice_only = True
    s.add_click(z, y, x, LIVER)
    assert list(s.propagate()) == [] and _slices_with(s.labels(), LIVER) == {z}
    s.slice_only = False
    assert len({zz for zz, _ in s.repropagate()}) > 10  # the Propagate button then spreads it
    s.undo()
    s.undo()
    s.z_range = (z - 3, z + 2)
    _run(s, s.add_click(z, y, x, LIVER))
    assert _slices_with(s.labels(), LIVER) == set(range(z - 3, z + 3))
    zc, yc, xc = _click_on(gt, COLON)
    assert not z - 3 <= zc <= z + 2  # the colon's middle slice is outside the range on this crop
    _run(s, s.add_click(zc, yc, xc, COLON))
    assert _slices_with(s.labels(), COLON) == {zc}
    with pytest.raises(InputError, match="slice range"):
        s.z_range = (z + 2, z - 3)


def test_restore_puts_boxes_and_scribbles_back_as_prompts(ct_session_factory, ct_crop):
    """An autosave's prompts (clicks, a box, a scribble) restored on a new session: the same prompts
    and the same clicks (the box's clicks found again), the labels as saved, and a box still removes
    as one prompt."""
    from napari_s2vnet.inference.prompts import Scribble, prompt_from_dict, prompt_to_dict

    _, gt, _ = ct_crop
    s = ct_session_factory()
    z, y, x = _click_on(gt, SPLEEN)
    zl = _click_on(gt, LIVER)[0]
    ys, xs = np.nonzero(gt[zl] == LIVER)
    box = Box(zl, int(ys.min()), int(xs.min()), int(ys.max()), int(xs.max()), LIVER)
    _run(s, s.add_prompts([box, Scribble(z, ((y - 2, x - 2), (y + 2, x + 2)), SPLEEN), Click(z, y + 3, x, SPLEEN)]))
    saved = [prompt_from_dict(prompt_to_dict(p)) for p in s.prompts()]  # through the autosave's JSON data
    assert saved == s.prompts()
    r = ct_session_factory()
    r.restore(s.labels().copy(), saved)
    assert r.prompts() == s.prompts() and r.clicks() == s.clicks()
    np.testing.assert_array_equal(r.labels(), s.labels())
    _run(r, r.remove_prompt(box))
    assert not (r.labels() == LIVER).any() and len(r.clicks()) == len(s.clicks()) - 5


def test_a_box_clicks_the_deepest_point_of_what_fills_it():
    """The box's positive click: the deepest candidate of the positive region that holds the best
    score, not the best score itself when that lies at the region's edge; none positive: the best."""
    from napari_s2vnet.inference.prompts import box_candidates, deepest_candidate

    b = Box(0, 0, 0, 60, 60, 1)
    candidates = box_candidates(b)  # a 7 x 7 grid
    ys = sorted({y for y, _ in candidates})
    xs = sorted({x for _, x in candidates})
    grid = -np.ones((7, 7))
    grid[1:6, 1:6] = 0.5  # the object: a 5 x 5 block of candidates like the box
    grid[1, 5] = 0.9  # its best candidate sits on its edge
    score = np.array([grid[ys.index(y), xs.index(x)] for y, x in candidates])
    assert deepest_candidate(candidates, score) == (ys[3], xs[3])
    score = np.array([-1.0 if (y, x) != (ys[0], xs[6]) else -0.1 for y, x in candidates])
    assert deepest_candidate(candidates, score) == (ys[0], xs[6])
