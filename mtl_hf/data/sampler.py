"""A batch sampler over several task datasets: one task per batch, named task-mixing strategies, DDP-aligned.

Indices are global indices into the concatenation of the task datasets in the given order (`ConcatDataset`):
task k's rows start at `sum(dataset_sizes[:k])`.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence

import torch
from torch.utils.data import Sampler
from transformers.utils import ExplicitEnum

#: Batches per mega-batch when grouping by length (as transformers' `LengthGroupedSampler`).
MEGABATCH_BATCHES = 50


class TaskSamplingStrategy(ExplicitEnum):
    """How [`MultiTaskBatchSampler`] picks the task of each batch.

    - `proportional`: every batch of every task exactly once per epoch, in a random interleaving, so a task's
      share of the steps is proportional to its size (sentence-transformers' `ProportionalBatchSampler`).
    - `temperature`: for as many steps as `proportional`, draw the task of each step with probability
      proportional to `size ** (1 / temperature)`; a task that runs out of batches starts a new, reshuffled
      pass over its data. `temperature=1` is proportional in expectation, large temperatures approach uniform,
      which up-samples small tasks.
    - `round_robin`: tasks in turn A, B, C, A, B, C, ... until the smallest task runs out of batches (the
      first task, in task order, to have none left ends the epoch), as sentence-transformers'
      `RoundRobinBatchSampler`. Larger tasks are cut short each epoch.
    """

    PROPORTIONAL = "proportional"
    TEMPERATURE = "temperature"
    ROUND_ROBIN = "round_robin"


class MultiTaskBatchSampler(Sampler[list[int]]):
    """Yields lists of global row indices, one task per batch, for `DataLoader(ConcatDataset(...), batch_sampler=...)`.

    Args:
        dataset_sizes (`list[int]`): rows per task, in task order.
        batch_size (`int`): rows per batch (per process); a task's last batch of a pass may be shorter unless
            `drop_last`.
        strategy (`str` or [`TaskSamplingStrategy`], defaults to `"proportional"`): how tasks are interleaved.
        temperature (`float`, defaults to 2.0): the `temperature` strategy's T.
        seed (`int`, defaults to 42): each epoch's order comes from a `torch.Generator` seeded with
            `seed + epoch` (never the global RNG), so every process computes the same order.
        drop_last (`bool`, defaults to `False`): drop each task's short last batch, and the blocks that cannot be
            filled (see `num_processes`), instead of filling them with the task's first batches.
        num_processes (`int`, defaults to 1): data-parallel world size. `accelerator.prepare` hands consecutive
            batches to consecutive processes, so each task choice is emitted as a block of `num_processes`
            batches of that task: at every step all processes work on the same task (STYLE.md P7).
        mixed (`bool`, defaults to `False`): draw batches from the shuffled union of all tasks instead (rows of
            several tasks per batch); only with `strategy="proportional"`.
        lengths (`list[list[int]]`, *optional*): token count of every row, per task. With `group_by_length`,
            batches are built from rows of similar length to cut padding.
        group_by_length (`bool`, defaults to `True`): as transformers' `LengthGroupedSampler`: shuffle, cut into
            mega-batches of 50 batches, sort each by length, split into batches, then shuffle the batch order.

    Call `set_epoch(epoch)` at the start of every epoch (the Trainer does); without it every epoch repeats the
    same order. `len()` is the number of batches one epoch yields (a multiple of `num_processes`).

    Batches vary in size, so the sampler reports `batch_size = None` (the configured size is
    `max_batch_size`): accelerate's `BatchSamplerShard` then hands out whole batches in turn, where an integer
    `batch_size` would make it drop every group of batches that ends in a short one.
    """

    def __init__(
        self,
        dataset_sizes: Sequence[int],
        batch_size: int,
        strategy: str | TaskSamplingStrategy = "proportional",
        temperature: float = 2.0,
        seed: int = 42,
        drop_last: bool = False,
        num_processes: int = 1,
        mixed: bool = False,
        lengths: Sequence[Sequence[int]] | None = None,
        group_by_length: bool = True,
    ):
        self.dataset_sizes = [int(size) for size in dataset_sizes]
        if not self.dataset_sizes or any(size <= 0 for size in self.dataset_sizes):
            raise ValueError(f"`dataset_sizes` must be a non-empty list of positive sizes, got {dataset_sizes}.")
        for name, value in (("batch_size", batch_size), ("num_processes", num_processes)):
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"`{name}` must be a positive integer, got {value!r}.")
        self.strategy = TaskSamplingStrategy(strategy)
        if self.strategy == TaskSamplingStrategy.TEMPERATURE and not temperature > 0:
            raise ValueError(f"`temperature` must be > 0, got {temperature!r}.")
        if mixed and self.strategy != TaskSamplingStrategy.PROPORTIONAL:
            raise ValueError(
                f"`mixed=True` draws batches from the shuffled union of the tasks, which is proportional sampling; "
                f"strategy {self.strategy.value!r} needs task-homogeneous batches. Use strategy='proportional' or "
                "mixed=False."
            )
        if lengths is not None:
            if [len(task_lengths) for task_lengths in lengths] != self.dataset_sizes:
                raise ValueError(
                    f"`lengths` must hold one length per row of every task: sizes {self.dataset_sizes}, got "
                    f"{[len(task_lengths) for task_lengths in lengths]}."
                )
            lengths = [torch.as_tensor(list(task_lengths), dtype=torch.long) for task_lengths in lengths]
        self.lengths = lengths
        self.max_batch_size = batch_size
        self.batch_size = None
        self.temperature = float(temperature)
        self.seed = seed
        self.drop_last = drop_last
        self.num_processes = num_processes
        self.mixed = mixed
        self.group_by_length = group_by_length
        self.offsets = [sum(self.dataset_sizes[:k]) for k in range(len(self.dataset_sizes))]
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose order `__iter__` yields (seed + epoch)."""
        self.epoch = epoch

    # ------------------------------------------------------------------ counts

    def _batches_per_pass(self, size: int) -> int:
        return size // self.max_batch_size if self.drop_last else math.ceil(size / self.max_batch_size)

    def _blocks(self, num_batches: int) -> int:
        return num_batches // self.num_processes if self.drop_last else math.ceil(num_batches / self.num_processes)

    def _task_blocks(self) -> list[int]:
        return [self._blocks(self._batches_per_pass(size)) for size in self.dataset_sizes]

    def __len__(self) -> int:
        if self.mixed:
            return self.num_processes * self._blocks(self._batches_per_pass(sum(self.dataset_sizes)))
        blocks = self._task_blocks()
        if self.strategy == TaskSamplingStrategy.ROUND_ROBIN:
            fewest = min(blocks)
            return self.num_processes * (fewest * len(blocks) + blocks.index(fewest))
        return self.num_processes * sum(blocks)

    # ------------------------------------------------------------------ iteration

    def __iter__(self) -> Iterator[list[int]]:
        generator = torch.Generator()
        generator.manual_seed(self.seed + self.epoch)
        if self.mixed:
            union = torch.cat([torch.arange(size) + offset for size, offset in zip(self.dataset_sizes, self.offsets)])
            lengths = torch.cat(self.lengths) if self.lengths is not None else None
            yield from self._fill_blocks(self._one_pass(union, lengths, generator))
        elif self.strategy == TaskSamplingStrategy.PROPORTIONAL:
            yield from self._proportional(generator)
        elif self.strategy == TaskSamplingStrategy.TEMPERATURE:
            yield from self._temperature(generator)
        else:
            yield from self._round_robin(generator)

    def _proportional(self, generator: torch.Generator) -> Iterator[list[int]]:
        blocks = [self._fill_blocks(self._task_pass(k, generator)) for k in range(len(self.dataset_sizes))]
        choices = [k for k, task_blocks in enumerate(blocks) for _ in range(len(task_blocks) // self.num_processes)]
        cursors = [0] * len(blocks)
        for position in torch.randperm(len(choices), generator=generator).tolist():
            k = choices[position]
            yield from blocks[k][cursors[k] : cursors[k] + self.num_processes]
            cursors[k] += self.num_processes

    def _temperature(self, generator: torch.Generator) -> Iterator[list[int]]:
        steps = sum(self._task_blocks())
        usable = torch.tensor([float(self._batches_per_pass(size) > 0) for size in self.dataset_sizes])
        weights = torch.tensor(self.dataset_sizes, dtype=torch.float64) ** (1.0 / self.temperature) * usable
        if steps == 0:
            return
        choices = torch.multinomial(weights, steps, replacement=True, generator=generator).tolist()
        streams = [self._endless(k, generator) for k in range(len(self.dataset_sizes))]
        for k in choices:
            for _ in range(self.num_processes):
                yield next(streams[k])

    def _round_robin(self, generator: torch.Generator) -> Iterator[list[int]]:
        blocks = [self._fill_blocks(self._task_pass(k, generator)) for k in range(len(self.dataset_sizes))]
        cursors = [0] * len(blocks)
        while True:
            for k, task_blocks in enumerate(blocks):
                if cursors[k] >= len(task_blocks):
                    return
                yield from task_blocks[cursors[k] : cursors[k] + self.num_processes]
                cursors[k] += self.num_processes

    def _endless(self, k: int, generator: torch.Generator) -> Iterator[list[int]]:
        """Task k's batches, pass after reshuffled pass."""
        while True:
            yield from self._task_pass(k, generator)

    def _task_pass(self, k: int, generator: torch.Generator) -> list[list[int]]:
        """One shuffled pass over task k, as batches of global indices."""
        local = torch.arange(self.dataset_sizes[k])
        lengths = self.lengths[k] if self.lengths is not None else None
        return [[index + self.offsets[k] for index in batch] for batch in self._one_pass(local, lengths, generator)]

    def _one_pass(
        self, indices: torch.Tensor, lengths: torch.Tensor | None, generator: torch.Generator
    ) -> list[list[int]]:
        """Shuffle `indices` into batches (length-grouped when lengths are known), in random batch order."""
        order = indices[torch.randperm(len(indices), generator=generator)]
        if lengths is not None and self.group_by_length:
            megabatch = MEGABATCH_BATCHES * self.max_batch_size
            chunks = []
            for start in range(0, len(order), megabatch):
                chunk = order[start : start + megabatch]
                chunks.append(chunk[torch.argsort(lengths[chunk], descending=True, stable=True)])
            order = torch.cat(chunks)
        batches = [batch.tolist() for batch in torch.split(order, self.max_batch_size)]
        if self.drop_last and batches and len(batches[-1]) < self.max_batch_size:
            batches.pop()
        return [batches[i] for i in torch.randperm(len(batches), generator=generator).tolist()]

    def _fill_blocks(self, batches: list[list[int]]) -> list[list[int]]:
        """Trim (drop_last) or extend with the first batches so that len is a multiple of num_processes."""
        target = self.num_processes * self._blocks(len(batches))
        if target <= len(batches) or not batches:
            return batches[:target]
        repeats = math.ceil(target / len(batches))
        return (batches * repeats)[:target]


def padding_waste(batches: Sequence[Sequence[int]], lengths_flat: Sequence[int]) -> float:
    """Padding tokens per real token when each batch is padded to its longest row (0.0 = no padding).

    `lengths_flat[i]` is the token count of global row i (the task lengths concatenated in task order).
    """
    padded = real = 0
    for batch in batches:
        batch_lengths = [lengths_flat[i] for i in batch]
        padded += len(batch_lengths) * max(batch_lengths, default=0)
        real += sum(batch_lengths)
    return (padded - real) / real if real else 0.0


__all__ = ["MEGABATCH_BATCHES", "MultiTaskBatchSampler", "TaskSamplingStrategy", "padding_waste"]
