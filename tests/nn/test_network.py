"""The exported IR predicts exactly what the trained torch network predicts (ties included)."""
import numpy as np
import pytest
import torch

from bnnlogic.nn import BNN, NetConfig
from bnnlogic.nn.layers import SignBlock

ARCHS = ["mlp:6,5", "cnn:c3k2s1,p2,d4", "cnn:c2k2s2,d3", "cnn:c3k3s1p1,c2k2s2p1,d4"]  # the last padded (with -1)


def randomized(arch, quant, scale, seed, ties):
    torch.manual_seed(seed)
    cfg = NetConfig(arch=arch, feature_shape=(1, 4, 4), lo=0, hi=4, thresholds=[1, 3], n_classes=3,
                    quant=quant, scale=scale)
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
    net.eval()
    return net


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("quant,scale", [({"mode": "binary"}, False), ({"mode": "ternary", "percentile": 40.0}, True)])
@pytest.mark.parametrize("ties", [False, True])
def test_ir_agrees_with_torch_on_random_nets(arch, quant, scale, ties):
    rng = np.random.default_rng(0)
    X = rng.integers(0, 5, size=(3000, 1, 4, 4))
    X[:200] = rng.choice([0, 1, 3, 4], size=(200, 1, 4, 4))  # values at and next to the thresholds
    for seed in range(3):
        net = randomized(arch, quant, scale, seed, ties)
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
