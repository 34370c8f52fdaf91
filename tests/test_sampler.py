"""MultiTaskBatchSampler: strategies, epochs, DDP blocks, len(), length grouping."""

from __future__ import annotations

import bisect
import itertools
from collections import Counter

import pytest
import torch
from accelerate.data_loader import BatchSamplerShard

from mtl_hf.data import MultiTaskBatchSampler, TaskSamplingStrategy, padding_waste

SIZES = [100, 35, 60]  # task starts at 0, 100, 135


def task_of(batch: list[int], sizes=SIZES) -> int:
    """The task of a batch, checking that all its rows belong to that task."""
    starts = list(itertools.accumulate([0, *sizes[:-1]]))
    tasks = {bisect.bisect_right(starts, index) - 1 for index in batch}
    assert len(tasks) == 1, f"batch {batch} mixes tasks {tasks}"
    return tasks.pop()


def test_proportional_covers_every_row_once_in_a_random_interleaving():
    sampler = MultiTaskBatchSampler(SIZES, batch_size=10)
    batches = list(sampler)
    assert sorted(i for batch in batches for i in batch) == list(range(sum(SIZES)))
    tasks = [task_of(batch) for batch in batches]
    assert Counter(tasks) == {0: 10, 1: 4, 2: 6}
    assert tasks != sorted(tasks)  # interleaved, not task after task
    assert sorted(len(batch) for batch in batches if task_of(batch) == 1) == [5, 10, 10, 10]


def test_drop_last_drops_short_batches():
    batches = list(MultiTaskBatchSampler(SIZES, batch_size=10, drop_last=True))
    assert Counter(task_of(batch) for batch in batches) == {0: 10, 1: 3, 2: 6}
    assert all(len(batch) == 10 for batch in batches)


def test_round_robin_order_stops_when_the_smallest_task_runs_out():
    # 3, 2 and 4 batches: A B C A B C A, then B has none left (sentence-transformers' RoundRobinBatchSampler).
    batches = list(MultiTaskBatchSampler([30, 20, 40], batch_size=10, strategy="round_robin"))
    assert [task_of(batch, [30, 20, 40]) for batch in batches] == [0, 1, 2, 0, 1, 2, 0]


def test_temperature_frequencies_match_size_power():
    sizes, batch_size, epochs = [900, 100], 10, 150
    for temperature in (1.0, 2.0, 100.0):
        sampler = MultiTaskBatchSampler(sizes, batch_size, strategy="temperature", temperature=temperature)
        counts = Counter()
        for epoch in range(epochs):
            sampler.set_epoch(epoch)
            batches = list(sampler)
            assert len(batches) == 100  # as many steps as proportional: 90 + 10
            counts.update(task_of(batch, sizes) for batch in batches)
        weights = [size ** (1 / temperature) for size in sizes]
        expected = weights[1] / sum(weights)  # 0.1, 0.25, ~0.49
        assert counts[1] / (100 * epochs) == pytest.approx(expected, abs=0.02), temperature


def test_temperature_cycles_a_small_task_through_reshuffled_passes():
    sampler = MultiTaskBatchSampler([1000, 20], batch_size=10, strategy="temperature", temperature=50.0, seed=3)
    small = [batch for batch in sampler if task_of(batch, [1000, 20]) == 1]
    assert len(small) > 10  # far more than its 2 batches per pass
    rows = Counter(i for batch in small for i in batch)
    assert set(rows) == set(range(1000, 1020))
    assert len({tuple(sorted(batch)) for batch in small}) > 2  # reshuffled, not the same two batches


def test_epochs_reseed_without_touching_the_global_rng():
    sampler = MultiTaskBatchSampler(SIZES, batch_size=8, seed=7)
    torch.manual_seed(0)
    state = torch.random.get_rng_state()
    first = list(sampler)
    assert torch.equal(torch.random.get_rng_state(), state)
    torch.manual_seed(123)  # the global seed plays no part
    assert list(sampler) == first
    sampler.set_epoch(1)
    second = list(sampler)
    assert second != first
    sampler.set_epoch(0)
    assert list(sampler) == first
    assert list(MultiTaskBatchSampler(SIZES, batch_size=8, seed=8)) != first


@pytest.mark.parametrize("strategy", ["proportional", "temperature", "round_robin"])
@pytest.mark.parametrize("drop_last", [False, True])
def test_ddp_ranks_see_the_same_task_at_every_step(strategy, drop_last):
    world = 2
    sampler = MultiTaskBatchSampler(SIZES, batch_size=8, strategy=strategy, num_processes=world, drop_last=drop_last)
    batches = list(sampler)
    assert len(batches) % world == 0
    # BatchSamplerShard (accelerate) gives rank r the batches i * world + r.
    ranks = [batches[rank::world] for rank in range(world)]
    for step, (batch0, batch1) in enumerate(zip(*ranks)):
        assert task_of(batch0) == task_of(batch1), f"step {step}"
    assert len({task_of(batch) for batch in ranks[0]}) == 3  # every rank trains every task


def test_ddp_blocks_through_accelerate_batch_sampler_shard():
    """Short batches stay in: the sampler reports `batch_size=None`, so the shard does not drop the groups that
    end in a short batch (with an integer `batch_size`, seeds 0-3 here lose 1 to 3 steps per rank)."""
    world = 2
    for seed in range(4):
        sampler = MultiTaskBatchSampler(SIZES, batch_size=8, num_processes=world, seed=seed)
        batches = list(sampler)
        shards = [list(BatchSamplerShard(sampler, num_processes=world, process_index=r)) for r in range(world)]
        assert shards == [batches[rank::world] for rank in range(world)]
        assert [task_of(a) for a in shards[0]] == [task_of(b) for b in shards[1]]
        seen = {i for shard in shards for batch in shard for i in batch}
        assert seen == set(range(sum(SIZES)))  # 13+5+8 batches; odd counts padded with the task's first batches


@pytest.mark.parametrize("strategy", ["proportional", "temperature", "round_robin"])
@pytest.mark.parametrize("num_processes", [1, 2, 3])
@pytest.mark.parametrize("drop_last", [False, True])
def test_len_matches_iteration(strategy, num_processes, drop_last):
    sampler = MultiTaskBatchSampler(
        [37, 5, 64], batch_size=4, strategy=strategy, num_processes=num_processes, drop_last=drop_last
    )
    for epoch in range(3):
        sampler.set_epoch(epoch)
        assert len(list(sampler)) == len(sampler)
        assert len(sampler) % num_processes == 0


@pytest.mark.parametrize("drop_last", [False, True])
def test_mixed_batches_draw_from_the_union(drop_last):
    sampler = MultiTaskBatchSampler(SIZES, batch_size=16, mixed=True, drop_last=drop_last, num_processes=2)
    batches = list(sampler)
    assert len(batches) == len(sampler) == (12 if drop_last else 14)
    starts = [0, 100, 135]
    assert any(len({bisect.bisect_right(starts, i) for i in batch}) > 1 for batch in batches)
    if not drop_last:
        assert {i for batch in batches for i in batch} == set(range(sum(SIZES)))


def test_mixed_needs_proportional():
    with pytest.raises(ValueError, match="`mixed=True` draws batches from the shuffled union"):
        MultiTaskBatchSampler(SIZES, 8, strategy="round_robin", mixed=True)


def test_bad_arguments():
    with pytest.raises(ValueError, match=r"uniform is not a valid TaskSamplingStrategy, please select one of"):
        MultiTaskBatchSampler(SIZES, 8, strategy="uniform")
    with pytest.raises(ValueError, match=r"`lengths` must hold one length per row of every task"):
        MultiTaskBatchSampler([2, 3], 8, lengths=[[1, 2], [1]])
    with pytest.raises(ValueError, match="`dataset_sizes` must be a non-empty list of positive sizes"):
        MultiTaskBatchSampler([4, 0], 8)
    assert TaskSamplingStrategy("temperature") is TaskSamplingStrategy.TEMPERATURE


def test_group_by_length_cuts_padding():
    generator = torch.Generator().manual_seed(0)
    sizes = [2000, 1200]
    lengths = [torch.randint(5, 128, (size,), generator=generator).tolist() for size in sizes]
    flat = lengths[0] + lengths[1]
    grouped = MultiTaskBatchSampler(sizes, batch_size=16, lengths=lengths)
    plain = MultiTaskBatchSampler(sizes, batch_size=16, lengths=lengths, group_by_length=False)
    grouped_batches = list(grouped)
    waste_grouped, waste_plain = padding_waste(grouped_batches, flat), padding_waste(list(plain), flat)
    assert waste_plain > 0.5
    assert waste_grouped < waste_plain / 5
    assert sorted(i for batch in grouped_batches for i in batch) == list(range(sum(sizes)))
    assert all(len({task_of(batch, sizes)}) == 1 for batch in grouped_batches)
    mixed = MultiTaskBatchSampler(sizes, batch_size=16, lengths=lengths, mixed=True)
    assert padding_waste(list(mixed), flat) < waste_plain / 5


def test_padding_waste():
    assert padding_waste([[0, 1], [2]], [3, 1, 4]) == pytest.approx(2 / 8)
    assert padding_waste([[0], [1]], [3, 1]) == 0.0
