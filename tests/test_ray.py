"""--executor ray: a local Ray cluster with two workers (started here) computes exactly the
engine's batches, so its answers equal the local executor's bit for bit, also when a worker is
killed mid-run (its units go to a fresh worker)."""

from __future__ import annotations

import json
import os
import signal
import time

import pytest
from conftest import POOL_DATA, samples_from

from iclselect.lm import Engine, Template
from iclselect.lm.executors import RayExecutor, WorkerSpec
from iclselect.lm.precision import dtype_name
from iclselect.methods.loss_requests import conditioned

ray = pytest.importorskip("ray", reason="--executor ray needs the ray extra")
# Small batches make ~20 units of work, so a worker can be killed with work still to do.
BATCH_TOKENS = 1024


@pytest.fixture(scope="module")
def requests():
    """L(y | x) of the first 200 rows of the shipped 500-row Alpaca slice (what perplexity,
    IFD and MIWV ask of every row)."""
    samples = samples_from(json.loads(POOL_DATA.read_text(encoding="utf-8"))[:200])
    return [conditioned(s) for s in samples]


@pytest.fixture(scope="module")
def local_answers(lm, requests):
    engine = Engine(lm, Template("chat", lm.tokenizer), BATCH_TOKENS, show_progress=False)
    return [r.logprob for r in engine.loglikelihood(requests)]


@pytest.fixture(scope="module")
def spec(lm):
    yield WorkerSpec(
        model="smollm2-135m-instruct",
        model_id=lm.model_id,
        dtype=dtype_name(lm.model.dtype),
        device="cpu",
        template="chat",
        max_batch_tokens=BATCH_TOKENS,
        max_length=2048,
        threads=1,
    )
    ray.shutdown()


def ray_engine(lm, executor):
    return Engine(
        lm, Template("chat", lm.tokenizer), BATCH_TOKENS, show_progress=False, executor=executor
    )


def test_two_ray_workers_give_the_local_answers(lm, requests, local_answers, spec):
    executor = RayExecutor(spec, workers=2)
    answers = [r.logprob for r in ray_engine(lm, executor).loglikelihood(requests)]
    assert answers == local_answers  # the same batches on the same kernels: exact
    assert executor.restarts == 0


def test_a_worker_killed_mid_run_changes_nothing(lm, requests, local_answers, spec):
    executor = RayExecutor(spec, workers=2, in_flight=1)
    victim = ray.get(executor.workers[0].pid.remote())
    run = executor.run

    def run_then_kill(engine, units):
        for n, item in enumerate(run(engine, units)):
            if n == 2:
                os.kill(victim, signal.SIGKILL)
            yield item

    executor.run = run_then_kill  # type: ignore[method-assign]
    answers = [r.logprob for r in ray_engine(lm, executor).loglikelihood(requests)]
    assert executor.restarts == 1
    assert answers == local_answers


def test_closing_the_engine_kills_its_workers(lm, requests, local_answers, spec):
    with ray_engine(lm, RayExecutor(spec, workers=1)) as engine:
        actors = list(engine.executor.workers)
        answers = [r.logprob for r in engine.loglikelihood(requests[:8])]
        assert answers == pytest.approx(local_answers[:8], abs=1e-3)  # other rows: rounding
    assert engine.executor.workers == []
    for actor in actors:  # a killed actor answers no call, once ray.kill (asynchronous) lands
        deadline = time.monotonic() + 60
        with pytest.raises(ray.exceptions.RayActorError):
            while time.monotonic() < deadline:
                ray.get(actor.pid.remote(), timeout=60)
                time.sleep(0.1)


def test_sharded_embedding_on_two_workers_matches_local(embedder):
    from iclselect.embed.sharded import ShardedEmbedder

    texts = [s.full_text for s in samples_from(json.loads(POOL_DATA.read_text("utf-8"))[:200])]
    sharded = ShardedEmbedder("all-minilm-l6-v2", workers=2, shard=48)  # 5 shards, one short
    try:
        vectors = sharded.encode(texts)
        victim = ray.get(sharded.pool.workers[0].pid.remote())
        os.kill(victim, signal.SIGKILL)
        again = sharded.encode(texts)  # the dead worker is replaced, its shards redone
    finally:
        sharded.close()
    local = embedder.encode(texts)
    # Same model and texts, other batch boundaries and thread counts: equal to float rounding.
    assert vectors.shape == local.shape == (200, 384)
    assert abs(vectors - local).max() < 1e-5
    assert abs(again - local).max() < 1e-5
    assert sharded.pool.restarts == 1
