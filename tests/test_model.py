"""Per-module behaviour of the network at tiny size: shapes, gradients, NaN, determinism, propagation."""

from __future__ import annotations

import dataclasses
import json
import math

import pytest
import torch

from napari_s2vnet.errors import InputError
from napari_s2vnet.model.clicks import ClickBatch
from napari_s2vnet.model.config import ModelConfig, preset
from napari_s2vnet.model.s2vnet import S2VNet, group_probabilities
from napari_s2vnet.model.weights import WeightsError, load_weights, save_weights, train_info


def _feats(model, b=2, h=32, w=48):
    torch.manual_seed(1)
    return model.encode(torch.randn(b, 2, h, w))


def test_encoder_shapes(tiny_model):
    feats = _feats(tiny_model)
    d = tiny_model.config.dim
    assert {s: tuple(f.shape) for s, f in feats.items()} == {
        2: (2, d, 16, 24), 4: (2, d, 8, 12), 8: (2, d, 4, 6), 16: (2, d, 2, 3)}


@torch.inference_mode()
def test_two_centre_sets_on_shared_features_decode_as_two_calls(tiny_model):
    """Batch-1 features with a batch of two centre sets (automatic mode's fused decode) give what
    two separate decodes give."""
    feats = _feats(tiny_model, b=1)
    a = tiny_model.auto_anchors(1)
    other = a.centres + 0.3 * torch.randn_like(a.centres)
    pair = tiny_model.decode(feats, torch.cat([a.centres, other]), a.valid.expand(2, -1))
    for i, centres in enumerate((a.centres, other)):
        one = tiny_model.decode(feats, centres, a.valid)
        for got, want in ((pair.mask_logits, one.mask_logits), (pair.centres, one.centres),
                          (pair.objectness, one.objectness), (pair.aux_logits[-1], one.aux_logits[-1])):
            torch.testing.assert_close(got[i : i + 1], want)


def test_auto_decode_shapes_backward_no_nan(tiny_config):
    model = S2VNet(tiny_config).train()
    x = torch.randn(2, 2, 32, 32, requires_grad=False)
    feats = model.encode(x)
    anchors = model.auto_anchors(2)
    out = model.decode(feats, anchors.centres, anchors.valid)
    k = tiny_config.num_background + tiny_config.num_classes
    assert out.mask_logits.shape == (2, k, 16, 16)
    assert out.class_logits.shape == (2, k, tiny_config.num_classes + 1)
    assert out.objectness.shape == (2, k)
    assert len(out.aux_logits) == len(tiny_config.decoder_strides)
    loss = out.mask_logits.mean() + out.class_logits.mean() + out.objectness.mean() + sum(a.mean() for a in out.aux_logits)
    loss.backward()
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)
    assert model.backbone.stages[0][0][0].weight.grad.abs().sum() > 0  # gradient reaches the backbone
    probs = group_probabilities(out.mask_logits, anchors.groups, anchors.valid, tiny_config.num_classes + 1)
    assert torch.allclose(probs.sum(1), torch.ones(2, 16, 16), atol=1e-5)


def test_deterministic_on_cpu(tiny_config):
    outs = []
    for _ in range(2):
        torch.manual_seed(3)
        model = S2VNet(tiny_config).eval()
        feats = _feats(model, b=1)
        a = model.auto_anchors(1)
        outs.append(model.run_chain([feats, feats], a)[-1].mask_logits)
    assert torch.equal(outs[0], outs[1])


def test_kmeans_assignment_is_hard(tiny_model):
    feats = _feats(tiny_model, b=1)
    a = tiny_model.auto_anchors(1)
    block = tiny_model.decoder.blocks[0]
    pixels = feats[tiny_model.decoder.strides[0]]
    centres, logits = block.kmeans(a.centres, pixels, a.valid)
    # every pixel votes for exactly one centre: the update of a centre with no pixel is zero
    assign = logits.flatten(2).argmax(1)
    empty = [k for k in range(a.centres.shape[1]) if not (assign == k).any()]
    for k in empty:
        expected = block.kmeans.norm(a.centres[:, k] + block.kmeans.out(torch.zeros_like(a.centres[:, k])))
        assert torch.allclose(centres[:, k], expected, atol=1e-5)


def test_propagation_changes_next_initialisation(tiny_model):
    feats = _feats(tiny_model, b=1)
    a = tiny_model.auto_anchors(1)
    out = tiny_model.decode(feats, a.centres, a.valid)
    init = tiny_model.next_init(a.centres, [out.centres])
    assert not torch.allclose(init, a.centres)  # the slice's result initialises the next slice
    # and it depends on that result: a different slice gives a different initialisation
    out2 = tiny_model.decode(_feats(tiny_model, b=1, h=48, w=32), a.centres, a.valid)
    assert not torch.allclose(tiny_model.next_init(a.centres, [out2.centres]), init)


def test_ablation_switches(tiny_config):
    feats_model = S2VNet(dataclasses.replace(tiny_config, use_propagation=False))
    a = feats_model.auto_anchors(1)
    hist = [torch.randn_like(a.centres)]
    assert torch.equal(feats_model.next_init(a.centres, hist), a.centres)
    plain = S2VNet(dataclasses.replace(tiny_config, use_aggregation=False))
    assert torch.equal(plain.next_init(a.centres, hist), hist[-1])


def _clicks(model, rounds):
    torch.manual_seed(0)
    f = 4 * model.config.dim
    p = len(rounds)
    return ClickBatch(
        pos_feats=torch.randn(1, p, f), pos_group=torch.zeros(1, p, dtype=torch.long),
        pos_round=torch.tensor([rounds]), pos_valid=torch.ones(1, p, dtype=torch.bool),
        neg_feats=torch.randn(1, 1, f), neg_valid=torch.ones(1, 1, dtype=torch.bool),
        class_valid=torch.ones(1, 1, dtype=torch.bool))


def test_adaptive_click_weights_favour_newest_round(tiny_model):
    batch = _clicks(tiny_model, [0, 1, 2])
    w = tiny_model.click_encoder.round_weights(batch, 1)[0]
    assert torch.allclose(w.sum(), torch.tensor(1.0))
    assert w[2] > w[1] > w[0]
    assert torch.allclose(w[2] / w[1], torch.tensor(2.0), atol=1e-4)  # ln 2 decay at initialisation
    tiny_model.click_encoder.adaptive = False
    assert torch.allclose(tiny_model.click_encoder.round_weights(batch, 1)[0], torch.full((3,), 1 / 3))


def test_click_anchors_layout(tiny_model):
    """One centre per positive click (with a recency bias), then the negatives; or one pooled centre."""
    anchors = tiny_model.click_anchors(_clicks(tiny_model, [0, 1]))
    nb = tiny_model.config.num_background
    assert anchors.centres.shape == (1, nb + 2 + 1, tiny_model.config.dim)
    assert anchors.groups[0].tolist() == [0] * nb + [1, 1, 0]  # two click centres, then the negative
    bias = anchors.bias[0].tolist()
    assert bias[nb + 1] == 0 and bias[nb] == pytest.approx(-math.log(2), abs=1e-5)  # older round: half weight
    assert bias[:nb] == [0] * nb and bias[-1] == 0
    pooled = S2VNet(dataclasses.replace(tiny_model.config, click_centres="pooled"))
    pooled.load_state_dict(tiny_model.state_dict())
    one = pooled.click_anchors(_clicks(pooled, [0, 1]))
    assert one.groups[0].tolist() == [0] * nb + [1, 0]


def test_recency_bias_moves_pixels_to_the_newer_click(tiny_model):
    feats = _feats(tiny_model, b=1, h=32, w=32)
    a = tiny_model.click_anchors(_clicks(tiny_model, [0, 3]))
    out = tiny_model.decode(feats, a.centres, a.valid, a.bias)
    plain = tiny_model.decode(feats, a.centres, a.valid)
    nb = tiny_model.config.num_background
    share = lambda o: torch.softmax(o.mask_logits, 1)[0, nb].mean()  # the older click's centre
    assert share(out) < share(plain)


def test_weights_without_click_centres_setting_load_as_pooled():
    cfg = preset("tiny", {5: "liver"})
    raw = json.loads(cfg.to_json())
    del raw["click_centres"]
    assert ModelConfig.from_json(json.dumps(raw)).click_centres == "pooled"
    assert cfg.click_centres == "per_click"


def test_config_json_roundtrip_and_validation():
    cfg = preset("tiny", {5: "liver", 1: "spleen"})
    assert cfg.class_ids == (1, 5)
    assert ModelConfig.from_json(cfg.to_json()) == cfg
    with pytest.raises(ValueError):
        preset("tiny", {0: "background"})
    with pytest.raises(ValueError):
        ModelConfig.from_json('{"bogus": 1}')


def test_weights_roundtrip_and_strict_loading(tiny_model, tmp_path):
    path = save_weights(tiny_model, tmp_path / "w.safetensors", {"seed": 0})
    loaded = load_weights(path)
    assert loaded.config == tiny_model.config
    assert train_info(path) == {"seed": 0}
    for k, v in tiny_model.state_dict().items():
        assert torch.equal(v, loaded.state_dict()[k])
    from safetensors.torch import load_file, save_file
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata()
    tensors = load_file(str(path))
    extra = dict(tensors, bogus=torch.zeros(1))
    save_file(extra, str(tmp_path / "extra.safetensors"), metadata=meta)
    with pytest.raises(WeightsError, match="unexpected"):
        load_weights(tmp_path / "extra.safetensors")
    missing = {k: v for k, v in tensors.items() if not k.startswith("aggregator")}
    save_file(missing, str(tmp_path / "missing.safetensors"), metadata=meta)
    with pytest.raises(WeightsError, match="missing"):
        load_weights(tmp_path / "missing.safetensors")
    (tmp_path / "junk.safetensors").write_bytes(b"not a weights file")
    with pytest.raises(InputError):
        load_weights(tmp_path / "junk.safetensors")


def test_several_centres_per_class_layout_and_gradients(tiny_config):
    """``centres_per_class=3``: each class owns 3 centres (learned, or clicks + per-copy offsets)."""

    torch.manual_seed(0)
    model = S2VNet(dataclasses.replace(tiny_config, centres_per_class=3))
    nb, n, m = model.config.num_background, model.config.num_classes, 3
    auto = model.auto_anchors(2)
    assert auto.centres.shape == (2, nb + n * m, model.config.dim)
    assert auto.groups[0].tolist() == [0] * nb + [g for g in range(1, n + 1) for _ in range(m)]
    assert torch.equal(auto.centres[0, model.class_centres(2)], model.slot_embeddings(1))
    clicks = model.click_anchors(_clicks(model, [0, 1]))
    assert clicks.groups[0].tolist() == [0] * nb + [1] * (2 * m) + [0]  # 2 clicks x m copies
    copies = clicks.centres[0, model.class_centres(1)]
    assert not torch.allclose(copies[0], copies[1])  # the per-copy offsets separate the copies
    feats = model.encode(torch.randn(2, 2, 32, 32))
    out = model.decode(feats, auto.centres, auto.valid)
    probs = group_probabilities(out.mask_logits, auto.groups, auto.valid, n + 1)
    assert probs.shape == (2, n + 1, 16, 16) and torch.allclose(probs.sum(1), torch.ones(2, 16, 16), atol=1e-5)
    out_c = model.decode({s: f[:1] for s, f in feats.items()}, clicks.centres, clicks.valid)
    (out.mask_logits.mean() + out_c.mask_logits.mean()).backward()
    assert model.copy_embed.grad is not None and torch.isfinite(model.copy_embed.grad).all()
    assert model.copy_embed.grad.abs().sum() > 0


def test_one_centre_models_have_no_copy_embedding(tiny_model):
    """Weights saved before ``centres_per_class`` existed must still load strictly."""
    assert tiny_model.config.centres_per_class == 1
    assert not any(k.startswith("copy_embed") for k in tiny_model.state_dict())
    with pytest.raises(ValueError):
        preset("tiny", {1: "spleen"}, centres_per_class=0)


# ----------------------------------------------------------------- embed_stride=4 (lighter pixel decoder)
STRIDE2_LAYERS = ("pixel_decoder.lateral.0.", "pixel_decoder.smooth.0.")


def test_stride4_shapes_backward_no_nan_and_clicks(tiny_config):
    cfg = dataclasses.replace(tiny_config, embed_stride=4)
    torch.manual_seed(0)
    model = S2VNet(cfg).train()
    feats = model.encode(torch.randn(2, 2, 32, 48))
    d = cfg.dim
    assert {s: tuple(f.shape) for s, f in feats.items()} == {4: (2, d, 8, 12), 8: (2, d, 4, 6), 16: (2, d, 2, 3)}
    anchors = model.auto_anchors(2)
    out = model.run_chain([feats, feats], anchors)[-1]
    k = cfg.num_background + cfg.num_classes
    assert out.mask_logits.shape == (2, k, 8, 12)
    clicks = model.sample_clicks(feats, torch.tensor([[[5.0, 7.0]], [[20.0, 30.0]]]), (32, 48))
    assert clicks.shape == (2, 1, 4 * d)
    loss = out.mask_logits.mean() + out.objectness.mean() + sum(a.mean() for a in out.aux_logits) + clicks.mean()
    loss.backward()
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)
    assert torch.isfinite(out.mask_logits).all()
    assert model.pixel_decoder.embed[1].weight.grad.abs().sum() > 0
    assert model.backbone.stages[0][0][0].weight.grad.abs().sum() > 0  # the stride-2 stage still feeds stride 4


def test_stride4_has_no_stride2_layers_and_other_names_match(tiny_config):
    two = S2VNet(tiny_config).state_dict()
    four = S2VNet(dataclasses.replace(tiny_config, embed_stride=4)).state_dict()
    gone = set(two) - set(four)
    assert gone and all(k.startswith(STRIDE2_LAYERS) for k in gone)
    assert not any(k.startswith(STRIDE2_LAYERS) for k in four)
    assert set(four) <= set(two) and all(four[k].shape == two[k].shape for k in four)
    with pytest.raises(ValueError, match="embed_stride"):
        dataclasses.replace(tiny_config, embed_stride=8)


def test_stride4_weights_roundtrip_strict(tiny_config, tmp_path):
    torch.manual_seed(0)
    model = S2VNet(dataclasses.replace(tiny_config, embed_stride=4)).eval()
    path = save_weights(model, tmp_path / "w4.safetensors", {"seed": 0})
    loaded = load_weights(path)
    assert loaded.config.embed_stride == 4 and loaded.config == model.config
    assert loaded.state_dict().keys() == model.state_dict().keys()
    for k, v in model.state_dict().items():
        assert torch.equal(v, loaded.state_dict()[k])
    feats = _feats(model, b=1)
    a = model.auto_anchors(1)
    with torch.no_grad():
        torch.testing.assert_close(loaded.run_chain([feats], a)[0].mask_logits, model.run_chain([feats], a)[0].mask_logits)


def test_config_without_embed_stride_loads_as_2():
    raw = json.loads(preset("tiny", {5: "liver"}).to_json())
    del raw["embed_stride"]
    assert ModelConfig.from_json(json.dumps(raw)).embed_stride == 2
    assert ModelConfig.from_json(preset("tiny", {5: "liver"}, embed_stride=4).to_json()).embed_stride == 4
