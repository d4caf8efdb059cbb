"""Score-sum ensembles: the one IR's scores equal the members' summed scores on every input."""
import dataclasses

import numpy as np
import pytest

from bnnlogic.ensemble import ensemble, score_sum
from bnnlogic.model import Model
from helpers import box_inputs, random_ir


def _members(seed: int, k: int, hidden=(5, 4), **kw) -> list:
    irs = [random_ir(seed + 10 * i, n_features=3, hi=3, levels=2, hidden=hidden, **kw) for i in range(k)]
    first = irs[0]
    return [dataclasses.replace(ir, coding=first.coding,
                                output=dataclasses.replace(ir.output, scale=first.output.scale)) for ir in irs]


@pytest.mark.parametrize("seed,k,hidden", [(0, 2, (5, 4)), (1, 3, (6,)), (2, 2, (3, 3, 2)), (3, 1, (4,))])
def test_scores_are_the_members_sum_on_every_input(seed, k, hidden):
    irs = _members(seed, k, hidden)
    X = box_inputs(np.zeros(3), np.full(3, 3))
    ir = score_sum(irs)
    want = sum(m.scores(X) for m in irs)
    assert np.array_equal(ir.scores(X), want)
    assert np.array_equal(Model(ir).engine.scores(X), want)  # the compiled engine agrees
    assert [layer.A.shape[0] for layer in ir.layers] == [k * h for h in hidden]


def test_model_metadata_names_the_members():
    models = [Model(ir, {"arch": "mlp:5,4", "test_accuracy": a, "dataset": "d"})
              for ir, a in zip(_members(4, 2), (.5, .7))]
    m = ensemble(models, {"cascade_side": "lower"})
    assert m.meta["ensemble"] == {"members": 2, "member_arch": "mlp:5,4", "member_test_accuracy": [.5, .7]}
    assert m.meta["arch"] == "2 x mlp:5,4" and m.meta["dataset"] == "d" and m.meta["cascade_side"] == "lower"


def test_members_that_do_not_fit_are_refused():
    a, b = _members(5, 2)
    with pytest.raises(ValueError, match="input coding"):
        score_sum([a, dataclasses.replace(b, coding=random_ir(99, n_features=3, hi=3, levels=2).coding)])
    with pytest.raises(ValueError, match="output scale"):
        score_sum([a, dataclasses.replace(b, output=dataclasses.replace(b.output, scale=b.output.scale * 3))])
    with pytest.raises(ValueError, match="same depth"):
        score_sum([a, _members(5, 1, hidden=(4,))[0]])
    conv = random_ir(6, image=(1, 3, 3), conv=((2, 2, 1),), hidden=())
    with pytest.raises(ValueError, match="dense"):
        score_sum([conv, conv])
