"""The exported IR predicts exactly what the trained torch network predicts (ties included)."""
import numpy as np
import pytest
import torch

from bnnlogic.nn import BNN, NetConfig
from bnnlogic.nn.layers import SignBlock

ARCHS = ["mlp:6,5", "cnn:c3k2s1,p2,d4", "cnn:c2k2s2,d3", "cnn:c3k3s1p1,c2k2s2p1,d4"]  # the last padded (with -1)


def randomized(arch, quant, scale, seed, ties, tied_levels=False):
    torch.manual_seed(seed)
    cfg = NetConfig(arch=arch, feature_shape=(1, 4, 4), lo=0, hi=4, thresholds=[1, 3], n_classes=3,
                    quant=quant, scale=scale, tied_levels=tied_levels)
    net = BNN(cfg)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for block in net.blocks:
            if isinstance(block, SignBlock):
                bn, n = block.bn, block.bn.num_features
                gamma = torch.randn(n, generator=g)
                gamma[0] = 0.0          # a constant neuron
                gamma[-1] = -abs(gamma[-1])  # a negative-gamma neuron
                bn.weight.copy_(gamma)
                if ties:  # integer means, zero beta, unit variance: BN output exactly 0 happens
                    bn.running_mean.copy_(torch.randint(-3, 4, (n,), generator=g).float())
                    bn.bias.zero_()
                    bn.running_var.fill_(1.0)
                    bn.eps = 0.0
                else:
                    bn.running_mean.copy_(torch.randn(n, generator=g) * 2)
                    bn.bias.copy_(torch.randn(n, generator=g))
                    bn.running_var.copy_(torch.rand(n, generator=g) + 0.1)
        net.output.bias.copy_(torch.randint(-2, 3, (3,), generator=g).float() / 2)  # score ties happen
        for layer in net.binary_layers():
            if quant["mode"] == "binmask":  # about a third of the weights masked out
                layer.mask.copy_(torch.rand(layer.mask.shape, generator=g) - 0.33)
    net.eval()
    return net


@pytest.mark.parametrize("arch,tied", [(a, False) for a in ARCHS] + [("mlp:6,5", True)])
@pytest.mark.parametrize("quant,scale", [({"mode": "binary"}, False), ({"mode": "ternary", "percentile": 40.0}, True),
                                         ({"mode": "binmask", "decay": 1e-5}, False)])
@pytest.mark.parametrize("ties", [False, True])
def test_ir_agrees_with_torch_on_random_nets(arch, tied, quant, scale, ties):
    rng = np.random.default_rng(0)
    X = rng.integers(0, 5, size=(3000, 1, 4, 4))
    X[:200] = rng.choice([0, 1, 3, 4], size=(200, 1, 4, 4))  # values at and next to the thresholds
    for seed in range(3):
        net = randomized(arch, quant, scale, seed, ties, tied)
        ir = net.to_ir()
        np.testing.assert_array_equal(net.predict(X), ir.predict(X.reshape(len(X), -1)))
        # hidden activations agree too, not only the argmax
        with torch.no_grad():
            h = net.features(torch.as_tensor(X, dtype=torch.float32)).numpy()
        np.testing.assert_array_equal((h > 0).astype(np.uint8), ir.activations(X.reshape(len(X), -1))[-1].reshape(len(X), -1))


def test_ternary_zeros_are_exact_zeros_in_the_ir():
    net = randomized("mlp:6,5", {"mode": "ternary", "percentile": 50.0}, False, 0, False)
    ir = net.to_ir()
    w = net.blocks[0].layer.quantized_weight().detach().numpy()
    assert (w == 0).mean() > 0.3
    # row 0 is the gamma = 0 constant neuron (all zeros); the others keep exactly their zeros
    np.testing.assert_array_equal(ir.layers[0].A[1:] == 0, w[1:] == 0)
    assert not ir.layers[0].A[0].any()


def test_tied_levels_see_the_quantized_value_and_export_tiled():
    """A quantized coding's first layer computes w . (2q - M) for the quantized value q, and its
    IR row is the weight repeated over the M level-major bit blocks."""
    net = randomized("mlp:6,5", {"mode": "ternary", "delta": 0.3}, False, 1, False, tied_levels=True)
    lin = net.blocks[0].layer
    X = np.random.default_rng(1).integers(0, 5, size=(50, 1, 4, 4))
    q = (X.reshape(50, 1, -1) >= np.array([1, 3])[:, None]).sum(1)  # number of levels met, (50, 16)
    w = lin.quantized_weight().detach().numpy()
    with torch.no_grad():
        s = lin.integer_sum(net.coding(torch.as_tensor(X, dtype=torch.float32)).flatten(1).double()).numpy()
    np.testing.assert_array_equal(s, (2 * q - 2) @ w.T)
    A = net.to_ir().layers[0].A
    assert A.shape == (6, 32)
    nz = ~np.all(A == 0, axis=1)  # constant neurons fold to all-zero rows
    np.testing.assert_array_equal(A[nz, :16], A[nz, 16:])


def test_quantized_coding_thresholds_are_the_rounding_midpoints():
    from bnnlogic.spec import parse_coding, tied_levels

    taus = parse_coding("quantized:11", 0, 255)
    x = np.arange(256)
    q = np.floor(x / 25.5 + 0.5)  # round(x / 255 / 0.1), no exact halves for integer pixels
    np.testing.assert_array_equal((x[:, None] >= np.array(taus)[None]).sum(1), q)
    assert tied_levels("quantized:11") and not tied_levels("levels:3")


def test_binmask_prunes_by_its_mask_and_pushes_kept_masks_down():
    from bnnlogic.nn.quantizers import binmask

    w = torch.tensor([0.5, -0.2, 0.1, -0.7], requires_grad=True)
    m = torch.tensor([0.1, 0.0, -0.3, 0.4], requires_grad=True)
    q = binmask(w, m, 0.25)
    assert q.tolist() == [1.0, -1.0, 0.0, -1.0]
    q.backward(torch.tensor([1.0, 2.0, 3.0, 4.0]))
    assert w.grad.tolist() == [1.0, 2.0, 0.0, 4.0]  # straight through where kept
    assert m.grad.tolist() == [1.25, -1.75, 3.0, -3.75]  # g sign(w) + decay on kept entries
