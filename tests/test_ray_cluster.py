"""A two-node Ray cluster on this machine (a head and a worker node, separate raylet
processes, one CPU each): `verify --ray-address` joins it from another process, both nodes
run queries, and the verdicts equal a run in this process."""
import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np

from bnnlogic import Model
from bnnlogic.batch import run_batch
from bnnlogic.data import load_dataset
from tests.helpers import random_ir

ROOT = Path(__file__).resolve().parents[1]

NODES = """
import sys, time
from collections import Counter
import bnnlogic
from bnnlogic.executors import Call, make_executor

def node(model, i):
    import ray
    time.sleep(0.3)
    return ray.get_runtime_context().get_node_id()

with make_executor(bnnlogic.load(sys.argv[1]), ray_address=sys.argv[2]) as ex:
    print(ex.slots, len(Counter(o.value for o in ex.run([Call(i, node, (i,)) for i in range(12)]))))
"""


def test_verify_joins_a_two_node_cluster(tmp_path):
    from ray.cluster_utils import Cluster

    Model(random_ir(5, image=(1, 8, 8), hi=16, hidden=(6,), n_classes=10)).save(tmp_path / "d.bnn")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    try:
        cluster.add_node(num_cpus=1)
        cluster.wait_for_nodes()
        run = subprocess.run([sys.executable, "-m", "bnnlogic", "verify", str(tmp_path / "d.bnn"), "--data", "digits",
                              "--indices", "0:6", "--eps", "1,2", "--out", str(tmp_path / "res.jsonl"), "--json",
                              "--timeout", "300",  # a fresh worker's start-up counts against the hard limit
                              "--ray-address", cluster.address], capture_output=True, text=True, env=env, timeout=600)
        assert run.returncode == 0, run.stderr[-2000:]
        nodes = subprocess.run([sys.executable, "-c", NODES, str(tmp_path / "d.bnn"), cluster.address],
                               capture_output=True, text=True, env=env, timeout=600)
        assert nodes.returncode == 0, nodes.stderr[-2000:]
    finally:
        cluster.shutdown()
    assert nodes.stdout.split()[-2:] == ["2", "2"]  # two slots, calls answered on both nodes
    data = load_dataset("digits")
    X = data.X_test.reshape(len(data.X_test), -1).astype(np.int64)
    here = run_batch(str(tmp_path / "d.bnn"), X, data.y_test, range(6), [1, 2], str(tmp_path / "here.jsonl"), jobs=0,
                     progress=False)
    there = [json.loads(line) for line in (tmp_path / "res.jsonl").read_text().splitlines()]
    assert Counter((r["index"], r["eps"], r["status"]) for r in there) == \
        Counter((r["index"], r["eps"], r["status"]) for r in here)
