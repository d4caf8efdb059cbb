"""Verification-friendly presets: ternary zeros, exact IR agreement, L1 and StableSign, metadata."""
import numpy as np
import pytest
import torch

from bnnlogic import load
from bnnlogic.data import load_dataset
from bnnlogic.errors import UserError
from bnnlogic.logic import propagate
from bnnlogic.nn import BNN, NetConfig, train
from bnnlogic.nn.layers import SparsityRamp, WeightQuant
from bnnlogic.nn.presets import KEEP, PRESETS, get_preset
from bnnlogic.nn.quantizers import top_mask
from bnnlogic.nn.regularizers import L1, StableSign, interval_bounds, stable_fraction


@pytest.fixture(scope="module")
def digits():
    d = load_dataset("digits")
    d.X_train, d.y_train = d.X_train[:600], d.y_train[:600]
    return d


@pytest.fixture(scope="module")
def models(digits):
    return {p: train(digits, "mlp:24,16", epochs=6, batch_size=32, preset=p, stable_eps=1 if "stable" in p else None,
                     progress=False) for p in PRESETS}


def test_presets_keep_exact_ir_agreement_and_are_recorded(models, tmp_path):
    for name, m in models.items():
        assert m.meta["ir_agreement"] == 1.0
        assert m.meta["test_accuracy"] > 0.4
        m.save(tmp_path / "m.bnn")
        back = load(tmp_path / "m.bnn")
        assert back.meta["preset"] == name
        assert back.meta["preset_settings"] == get_preset(name, 1 if "stable" in name else None).settings()


def test_ternary_zeros_are_exact_zeros_in_the_ir(models):
    for name in ("ternary", "l1-ternary", "stablesign-sparse"):
        m = models[name]
        net = BNN.from_state(NetConfig.from_json(m.meta["net"]), m.torch_state)
        zeros = 0
        for layer, ir_layer in zip(net.binary_layers(), list(m.ir.layers) + [m.ir.output]):
            w = layer.quantized_weight().detach().numpy().reshape(ir_layer.A.shape[0], -1)
            A = ir_layer.A.reshape(len(w), -1)
            constant = ~A.any(1)  # gamma = 0 neurons drop all inputs
            np.testing.assert_array_equal(A[~constant] == 0, w[~constant] == 0)
            zeros += int((w == 0).sum())
        assert zeros > 0.1 * sum(layer.weight.numel() for layer in net.binary_layers())
    assert np.count_nonzero(models["plain"].ir.layers[0].A) == models["plain"].ir.layers[0].A.size


def test_sparse_preset_keeps_its_fraction_per_layer_by_rank(models):
    m = models["stablesign-sparse"]
    net = BNN.from_state(NetConfig.from_json(m.meta["net"]), m.torch_state)
    kept = [float((layer.quantized_weight() != 0).float().mean()) for layer in net.binary_layers()]
    assert kept == pytest.approx(KEEP[:2] + [1.0], abs=1e-3)  # mlp:24,16: two hidden layers, then the output


@pytest.mark.parametrize("n", [1, 2, 7, 100, 1000])
def test_top_mask_keeps_exactly_the_largest_by_rank(n):
    """Heavy ties (7 distinct |w|): exactly round(keep * n) kept, none smaller than one dropped."""
    w = torch.randint(-3, 4, (n,), generator=torch.Generator().manual_seed(n)).float() / 3
    for keep in (0.0, 0.05, 0.3, 0.5, 0.99, 1.0):
        m, k = top_mask(w, keep), round(keep * n)
        assert int(m.sum()) == k
        if 0 < k < n:
            assert w.abs()[m].min() >= w.abs()[~m].max()


def test_rank_band_survives_ties_at_the_clip():
    """70% of the weights sit at |w| = 1 (clipped): a quantile threshold would zero all of them."""
    w = torch.tensor([1.0] * 7 + [0.5, -0.2, 0.1], requires_grad=True)
    for q, nonzero in ((WeightQuant("ternary", percentile=85), 2), (WeightQuant("ternary", keep=0.5), 5)):
        out = q(w)
        assert int((out != 0).sum()) == nonzero and set(out.abs().tolist()) <= {0.0, 1.0}
        out.sum().backward()
        assert torch.equal(w.grad, torch.ones(10))  # straight through (every |w| <= 1)
        w.grad = None


def test_rank_mask_follows_in_place_weight_updates():
    net = BNN(NetConfig("mlp:4", (3,), 0, 1, [1], 2, {"mode": "ternary", "keep": [0.25], "keep_output": 1.0}))
    layer = net.binary_layers()[0]
    with torch.no_grad():
        layer.weight.copy_(torch.arange(12.0).view(4, 3) / 12)
    first = layer.quantized_weight().detach().clone()
    with torch.no_grad():
        layer.weight.mul_(-1).add_(1)  # in place, as an optimizer step: the order of |w| reverses
    assert layer.quantized_weight().detach().flatten().nonzero().flatten().tolist() == [0, 1, 2]
    assert first.flatten().nonzero().flatten().tolist() == [9, 10, 11]


def test_sparsity_ramp_is_cubic_from_all_to_the_target():
    net = BNN(NetConfig("mlp:8", (6,), 0, 1, [1], 2, {"mode": "ternary", "keep": [0.25], "keep_output": 0.5}))
    ramp = SparsityRamp(net.binary_layers(), 0.5)
    for t, f in ((0.0, 0.0), (0.25, 0.5), (0.5, 1.0), (0.9, 1.0)):
        ramp(t)
        share = 1 - (1 - f) ** 3
        assert [layer.quant.keep for layer in net.binary_layers()] == pytest.approx(
            [1 - 0.75 * share, 1 - 0.5 * share])


def test_l1_value_and_gradient():
    torch.manual_seed(0)
    net = BNN(NetConfig("mlp:3", (4,), 0, 3, [2], 2))
    with torch.no_grad():
        for layer in net.binary_layers():
            layer.weight.copy_(torch.linspace(-0.5, 0.5, layer.weight.numel()).view_as(layer.weight))
    reg = L1(0.1)(net, torch.zeros(1, 4))
    expected = 0.1 * sum(float(layer.weight.detach().abs().sum()) for layer in net.binary_layers())
    assert float(reg.detach()) == pytest.approx(expected)
    reg.backward()
    w = net.binary_layers()[0].weight
    np.testing.assert_allclose(w.grad.numpy(), 0.1 * np.sign(w.detach().numpy()))


def test_bounds_contain_every_sampled_preactivation(models, digits):
    m = models["stablesign-ternary"]
    net = BNN.from_state(NetConfig.from_json(m.meta["net"]), m.torch_state)
    x = torch.as_tensor(digits.X_test[:20], dtype=torch.float64)
    eps = 2
    bounds = interval_bounds(net, x, eps)
    rng = np.random.default_rng(0)
    for _ in range(30):
        xs = np.clip(digits.X_test[:20] + rng.integers(-eps, eps + 1, size=x.shape), 0, 16)
        h = net.coding(torch.as_tensor(xs)).double()
        for block, (lb, ub) in zip(net.blocks, bounds):
            h = h.flatten(1)
            s = block.layer.integer_sum(h)
            bn = block.bn
            y = (s - bn.running_mean.double()) / torch.sqrt(bn.running_var.double() + bn.eps) \
                * bn.weight.double() + bn.bias.double()
            assert bool(((lb - 1e-9 <= y) & (y <= ub + 1e-9)).all())
            h = torch.where(y >= 0, 1.0, -1.0).double()


@pytest.mark.parametrize("name", ["stablesign-ternary", "plain"])
def test_differentiable_bounds_fix_the_same_neurons_as_the_irs(models, digits, name):
    """On the trained model, neuron by neuron: the torch bounds say "always on" (LB >= 0) or
    "always off" (UB < 0) exactly where the IR's integer bound propagation fixes the bit."""
    m = models[name]
    net = BNN.from_state(NetConfig.from_json(m.meta["net"]), m.torch_state).eval()
    X, eps = digits.X_test[:50].astype(np.int64), 2
    with torch.no_grad():
        torch_bounds = interval_bounds(net, torch.as_tensor(X), eps)
    c = m.ir.coding
    ir_bounds = propagate(m.ir, np.maximum(X - eps, c.lo), np.minimum(X + eps, c.hi))[1:]
    assert len(torch_bounds) == len(ir_bounds)
    for (lb, ub), (blo, bhi) in zip(torch_bounds, ir_bounds):
        lb, ub = lb.numpy().reshape(blo.shape), ub.numpy().reshape(bhi.shape)
        np.testing.assert_array_equal(lb >= 0, blo == 1)
        np.testing.assert_array_equal(ub < 0, bhi == 0)
    assert 0 < sum(int((blo == bhi).sum()) for blo, bhi in ir_bounds) < sum(b.size for b, _ in ir_bounds)


def test_stablesign_value_on_a_hand_computed_case():
    net = BNN(NetConfig("mlp:1", (2,), 0, 10, [5], 2))
    with torch.no_grad():
        net.blocks[0].layer.weight.copy_(torch.tensor([[0.5, -0.5]]))
    net.eval()
    bn = net.blocks[0].bn  # running stats: mean 0, var 1, gamma 1, beta 0 -> y = s / sqrt(1 + 1e-5)
    x = torch.tensor([[5.0, 9.0]])  # eps 1: bit 0 free (4 < 5 <= 6), bit 1 fixed +1: s in [-2, 0]
    (lb, ub), = interval_bounds(net, x, 1)
    c = 1 / np.sqrt(1 + bn.eps)
    assert float(lb.detach()) == pytest.approx(-2 * c) and float(ub.detach()) == pytest.approx(0.0)
    assert float(StableSign(1.0, 1)(net, x).detach()) == pytest.approx(-np.tanh(1.0))
    assert stable_fraction(net, x, 1) == 0.0 and stable_fraction(net, x, 0) == 1.0


def test_stablesign_makes_neurons_stable(models, digits):
    X = digits.X_test[:200]
    frac = {}
    for name in ("ternary", "stablesign-ternary"):
        m = models[name]
        net = BNN.from_state(NetConfig.from_json(m.meta["net"]), m.torch_state)
        frac[name] = stable_fraction(net, X, 1)
    assert frac["stablesign-ternary"] > frac["ternary"] + 0.05


@pytest.mark.parametrize("name,eps,msg", [("nope", None, "unknown preset"), ("ternary", 3, "only applies"),
                                          ("stablesign-ternary", -1, ">= 0")])
def test_bad_preset_is_a_user_error(name, eps, msg):
    with pytest.raises(UserError, match=msg):
        get_preset(name, eps)


def test_cli_bad_preset_is_one_line(capsys):
    from bnnlogic.cli import main

    assert main(["train", "--data", "digits", "--preset", "bogus", "--out", "x.bnn"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: unknown preset 'bogus'") and err.count("\n") == 1


@pytest.mark.parametrize("lo,hi,eps", [(0, 255, 5), (0, 16, 1), (0, 1, 1), (-100, 100, 4), (0, 1000, 20)])
def test_default_stable_eps_is_two_percent_of_the_range_at_least_one(lo, hi, eps):
    from bnnlogic.nn.presets import default_stable_eps

    assert default_stable_eps(lo, hi) == eps
    p = get_preset("stablesign-sparse").for_range(lo, hi)
    assert p.stable_eps == eps and p.stable_eps_rule and str(hi) in p.stable_eps_rule
    assert get_preset("stablesign-sparse", 3).for_range(lo, hi).stable_eps == 3  # the user's value wins
    assert get_preset("ternary").for_range(lo, hi).stable_eps is None  # no StableSign, nothing to scale


def test_training_on_digits_records_the_scaled_default(digits):
    m = train(digits, "mlp:8", epochs=1, preset="stablesign-ternary", progress=False)
    s = m.meta["preset_settings"]
    assert s["stable_eps"] == 1 and "16" in s["stable_eps_rule"]


def test_a_preset_without_eps_refuses_to_build_its_regularizer():
    with pytest.raises(ValueError, match="for_range"):
        get_preset("stablesign-ternary").regularizers()


def test_padded_conv_bounds_fix_the_same_neurons_as_the_irs(digits):
    """StableSign's bounds on a net with padded convs (padding -1, lo = hi): neuron by neuron
    the IR's integer bound propagation fixes the same bits."""
    m = train(digits, "cnn:c4k3s1p1,c4k3s2p1,d8", epochs=2, batch_size=64, preset="stablesign-ternary",
              stable_eps=1, progress=False)
    assert m.meta["ir_agreement"] == 1.0 and m.ir.layers[0].padding == 1
    net = BNN.from_state(NetConfig.from_json(m.meta["net"]), m.torch_state).eval()
    X, eps = digits.X_test[:30].reshape(30, -1).astype(np.int64), 1
    with torch.no_grad():
        torch_bounds = interval_bounds(net, torch.as_tensor(X).reshape(30, 1, 8, 8), eps)
    c = m.ir.coding
    ir_bounds = propagate(m.ir, np.maximum(X - eps, c.lo), np.minimum(X + eps, c.hi))[1:]
    for (lb, ub), (blo, bhi) in zip(torch_bounds, ir_bounds):
        lb, ub = lb.numpy().reshape(blo.shape), ub.numpy().reshape(bhi.shape)
        np.testing.assert_array_equal(lb >= 0, blo == 1)
        np.testing.assert_array_equal(ub < 0, bhi == 0)
