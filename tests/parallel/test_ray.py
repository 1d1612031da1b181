"""Fan-out on Ray: a simulated cluster of two one-CPU nodes, one for the whole module
(Ray takes seconds to start). Tasks on both nodes, shared data from the object store, a
worker killed mid-task, and calibration that gives the same model as one process."""

import numpy as np
import pytest
import ray
from ray.cluster_utils import Cluster

from npuc.compiler.parallel import Fanout, FanoutError, fan_out, share, split_range
from tests.parallel import tasks


@pytest.fixture(scope="module")
def cluster():
    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    c.add_node(num_cpus=1)
    c.wait_for_nodes()
    ray.init(address=c.address, include_dashboard=False, log_to_driver=False)
    try:
        yield c
    finally:
        ray.shutdown()
        c.shutdown()


def test_tasks_spread_over_the_nodes_and_read_the_shared_data(cluster):
    fanout = Fanout(ray=cluster.address)
    weights = np.arange(4000, dtype=np.float32)
    shared = share({"weights": weights, "bias": 2.0}, fanout)
    parts = split_range(4000, 6)
    assert fan_out(tasks.weighted_sum, parts, fanout, shared=shared) == \
        [float(weights[a:b].sum()) + 2.0 for a, b in parts]
    nodes = fan_out(tasks.node_of, list(range(8)), fanout)
    assert len(set(nodes)) == 2
    assert fanout.events == []
    assert fanout.items_for(100) == 4  # two per CPU of the cluster


def test_a_killed_worker_is_retried_and_reported(cluster, tmp_path):
    fanout = Fanout(ray=cluster.address)
    got = fan_out(tasks.dies_once, list(range(4)), fanout, shared=share(str(tmp_path), fanout))
    assert got == [0, 10, 20, 30]
    assert len(fanout.events) == 1 and "worker was lost" in fanout.events[0]


def test_a_task_that_keeps_failing_fails_the_run(cluster):
    fanout = Fanout(ray=cluster.address, retries=1)
    with pytest.raises(FanoutError, match="failed 2 times.*broken for good"):
        fan_out(tasks.always_fails, [0, 1, 2], fanout)


def test_calibration_on_ray_writes_the_same_artifacts(cluster):
    from npuc.compiler import driver

    one = driver.compile("zoo:bert-tiny", "warboy", calibration="random:4")
    on_ray = driver.compile("zoo:bert-tiny", "warboy", calibration="random:4",
                            fanout=Fanout(ray=cluster.address))
    for name in one.files:
        assert one.files[name] == on_ray.files[name], name
