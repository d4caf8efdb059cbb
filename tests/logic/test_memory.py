"""A CNF that would not fit in memory is refused before it is built, with one clear line."""
from __future__ import annotations

import numpy as np
import pytest
from pysat.card import CardEnc, EncType

from bnnlogic import Model
from bnnlogic.cli import main
from bnnlogic.errors import UserError
from bnnlogic.logic import Query, encode, region, to_cnf
from bnnlogic.logic.memory import card_clauses, cnf_clauses
from tests.helpers import random_ir


@pytest.mark.parametrize("encoding", ["seqcounter", "totalizer", "sortnetwrk", "cardnetwrk", "mtotalizer"])
def test_estimates_are_within_a_factor_three(encoding):
    for n, b in ((40, 10), (120, 60), (300, 20)):
        real = len(CardEnc.atleast(list(range(1, n + 1)), b, top_id=n, encoding=getattr(EncType, encoding)).clauses)
        assert real / 3 <= card_clauses(n, b, encoding, both=False) <= 3 * real, (n, b)
    ir = random_ir(0, image=(1, 6, 6), hi=3, conv=((3, 3, 1),), hidden=(8,))
    f = encode(ir, region.domain(ir.coding), [[(0, [1])]], use_bounds=False).formula
    real = len(to_cnf(f, encoding)[0])
    assert real / 3 <= cnf_clauses(f, encoding) <= 3 * real


def test_a_too_large_cnf_is_refused_before_it_is_built(tmp_path, monkeypatch, capsys):
    ir = random_ir(1, image=(1, 8, 8), hi=3, levels=2, conv=((4, 3, 1),), hidden=(16,))
    R = region.domain(ir.coding)
    monkeypatch.setenv("BNNLOGIC_MAX_MEMORY", str(10 ** 6))  # 1 MB: the naive CNF does not fit
    with pytest.raises(UserError, match="GB"):
        Query(ir, R, [[(0, [1])]], "cnf:glucose4:seqcounter", use_bounds=False).solve()
    assert Query(ir, R, [[(0, [1])]], "exact", use_bounds=False).solve().status in ("sat", "unsat")  # no CNF
    Model(ir).save(tmp_path / "m.bnn")
    np.save(tmp_path / "x.npy", np.ones((1, 8, 8), np.int64))
    assert main(["encode", str(tmp_path / "m.bnn"), "--input", str(tmp_path / "x.npy"), "--eps", "3",
                 "--out", str(tmp_path / "q.cnf")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and not (tmp_path / "q.cnf").exists()
