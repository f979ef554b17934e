"""Episodes that run past a class's end (``--end-episodes``): where they start, and that the default
sampler is untouched by the option."""

import numpy as np
from napari_s2vnet.train.episodes import EpisodeSampler
from napari_s2vnet.train.volumes import TrainVolume


def _volume(auto: bool = False) -> TrainVolume:
    labels = np.zeros((30, 40, 40), np.int32)
    labels[5:20, 10:20, 10:20] = 1  # a class on slices 5..19
    labels[:, 30:36, 30:36] = 2  # a class on every slice: no end inside the volume
    image = np.random.default_rng(0).random((2, 30, 40, 40)).astype(np.float32)
    return TrainVolume("box", image, labels, auto=auto, weight=1.0)


def test_end_episodes_start_inside_the_class_and_cross_its_end():
    vol = _volume()
    sampler = EpisodeSampler([vol], slices=4, crop=32, rng=np.random.default_rng(1), end_fraction=1.0)
    crossed = 0
    for _ in range(40):
        batch = sampler.sample(1, auto=False)
        lab = batch.labels[0].numpy()
        present = [(lab[i] == 1).any() for i in range(4)]
        assert present[0], "the episode starts on a slice of the class"
        assert not present[-1], "and its last slice lies past the class's end"
        assert present == sorted(present, reverse=True), "present, then absent: one end crossed"
        crossed += 1
    assert crossed == 40


def test_end_fraction_zero_draws_exactly_the_default_episodes():
    vol = _volume(auto=True)
    a = EpisodeSampler([vol], slices=4, crop=32, rng=np.random.default_rng(7))
    b = EpisodeSampler([vol], slices=4, crop=32, rng=np.random.default_rng(7), end_fraction=0.0)
    for auto in (False, True, False):
        x, y = a.sample(2, auto=auto), b.sample(2, auto=auto)
        assert np.array_equal(x.labels.numpy(), y.labels.numpy()) and np.array_equal(x.images.numpy(), y.images.numpy())


def test_end_episodes_fall_back_when_no_class_ends_inside_the_volume():
    vol = _volume()
    vol.labels[:] = np.where(vol.labels == 1, 0, vol.labels)  # only the class on every slice is left
    sampler = EpisodeSampler([vol], slices=4, crop=32, rng=np.random.default_rng(2), end_fraction=1.0)
    batch = sampler.sample(3, auto=False)
    assert batch.labels.shape == (3, 4, 32, 32) and (batch.labels == 2).any()


def test_automatic_episodes_never_use_the_end_start():
    vol = _volume(auto=True)
    a = EpisodeSampler([vol], slices=4, crop=32, rng=np.random.default_rng(3))
    b = EpisodeSampler([vol], slices=4, crop=32, rng=np.random.default_rng(3), end_fraction=1.0)
    assert np.array_equal(a.sample(2, auto=True).labels.numpy(), b.sample(2, auto=True).labels.numpy())
