"""detrex.data.samplers as detectron2's: grouped batches, repeat factors, subsets, seeds."""

import itertools
import math
from collections import Counter

import numpy as np
import pytest
import torch
from torch.utils.data import SequentialSampler

from detrex.data.samplers import (
    GroupedBatchSampler,
    InferenceSampler,
    RandomSubsetTrainingSampler,
    RepeatFactorTrainingSampler,
    TrainingSampler,
)
from detrex.utils import seed_all_rng


def _batches(sampler):
    return [batch for batch in sampler]  # not list(): it asks for len(), which is undefined here


def test_grouped_batch_sampler_keeps_groups_and_order():
    batches = _batches(GroupedBatchSampler(SequentialSampler(range(100)), [1] * 100, 2))
    assert batches == [[i, i + 1] for i in range(0, 100, 2)]  # a single group id that is not 0
    batches = _batches(GroupedBatchSampler(SequentialSampler(range(100)), [1, 0] * 50, 2))
    assert batches == [[j, j + 2] for i in range(0, 100, 4) for j in (i, i + 1)]
    groups = [0, 0, 1, 0, 1, 1, 1]
    assert _batches(GroupedBatchSampler(SequentialSampler(range(7)), groups, 3)) == [[0, 1, 3], [2, 4, 5]]
    with pytest.raises(NotImplementedError):
        len(GroupedBatchSampler(SequentialSampler(range(4)), [0] * 4, 2))
    with pytest.raises(ValueError, match="torch Sampler"):
        GroupedBatchSampler(range(4), [0] * 4, 2)


def test_training_sampler_seed_is_drawn_once_from_the_global_rng():
    seed_all_rng(42)
    first = list(itertools.islice(TrainingSampler(30), 65))
    seed_all_rng(42)
    sampler = TrainingSampler(30)
    seed_all_rng(999)  # after construction the global RNG no longer matters
    assert list(itertools.islice(sampler, 65)) == first
    assert sorted(first[:30]) == list(range(30)) and sorted(first[30:60]) == list(range(30))
    with pytest.raises(TypeError, match="positive int"):
        TrainingSampler(3.0)
    with pytest.raises(ValueError, match="positive int"):
        TrainingSampler(0)


def test_repeat_factors_from_category_frequency():
    dicts = [
        {"annotations": [{"category_id": 0}, {"category_id": 1}]},
        {"annotations": [{"category_id": 0}]},
        {"annotations": []},
    ]
    factors = RepeatFactorTrainingSampler.repeat_factors_from_category_frequency(dicts, 0.5)
    # f(0) = 2/3 -> r = 1; f(1) = 1/3 -> r = sqrt(0.5 / (1/3)); an image without annotations: 1
    assert factors.dtype == torch.float32
    torch.testing.assert_close(factors, torch.tensor([math.sqrt(1.5), 1.0, 1.0]))
    no_sqrt = RepeatFactorTrainingSampler.repeat_factors_from_category_frequency(dicts, 0.5, sqrt=False)
    torch.testing.assert_close(no_sqrt, torch.tensor([1.5, 1.0, 1.0]))


def test_repeat_factor_sampler_repeats_in_expectation():
    sampler = RepeatFactorTrainingSampler(torch.tensor([1.0, 2.0, 0.5, 3.25]), seed=3)
    first_pass = sampler._get_epoch_indices(torch.Generator().manual_seed(0))
    counts = Counter(first_pass.tolist())
    assert counts[0] == 1 and counts[1] == 2 and counts[3] in (3, 4) and counts[2] in (0, 1)
    assert first_pass.tolist() == sorted(first_pass.tolist())  # a pass lists indices in order
    factors = torch.tensor([1.0, 2.0, 0.5, 3.25]).repeat(100)  # index i has factor [1, 2, 0.5, 3.25][i % 4]
    sampler = RepeatFactorTrainingSampler(factors, seed=3)
    stream = list(itertools.islice(sampler, 40000))
    frequency = np.bincount(np.asarray(stream) % 4, minlength=4) / len(stream)
    np.testing.assert_allclose(frequency, np.array([1.0, 2.0, 0.5, 3.25]) / 6.75, atol=0.01)
    again = RepeatFactorTrainingSampler(factors, seed=3)
    assert list(itertools.islice(again, 200)) == stream[:200]
    ordered = RepeatFactorTrainingSampler(torch.ones(5), shuffle=False, seed=0)
    assert list(itertools.islice(ordered, 12)) == [0, 1, 2, 3, 4, 0, 1, 2, 3, 4, 0, 1]


def test_random_subset_sampler_cycles_over_one_subset():
    sampler = RandomSubsetTrainingSampler(20, 0.25, seed_shuffle=1, seed_subset=2)
    stream = list(itertools.islice(sampler, 50))
    subset = set(stream[:5])
    assert len(subset) == 5 and subset <= set(range(20))
    assert all(set(stream[i : i + 5]) == subset for i in range(0, 50, 5))  # each pass: the same 5, reshuffled
    with pytest.raises(ValueError, match="subset_ratio"):
        RandomSubsetTrainingSampler(20, 1.5, seed_shuffle=1, seed_subset=2)


def test_inference_sampler_local_indices():
    cases = {
        (0, 5): [range(0)] * 5,
        (16, 2): [range(8), range(8, 16)],
        (2, 3): [range(1), range(1, 2), range(0)],
        (42, 4): [range(11), range(11, 22), range(22, 32), range(32, 42)],
    }
    for (size, world), expected in cases.items():
        assert [InferenceSampler._get_local_indices(size, world, r) for r in range(world)] == expected


def test_repeat_factor_sampler_splits_ranks_as_training_sampler_and_refuses_no_factors():
    """It is a TrainingSampler whose passes repeat indices: the same seed, rank split and size check (no
    factors would be an endless stream of empty passes)."""
    sampler = RepeatFactorTrainingSampler(torch.ones(6), shuffle=False, seed=0)
    assert isinstance(sampler, TrainingSampler)
    assert list(itertools.islice(iter(sampler), 8)) == [0, 1, 2, 3, 4, 5, 0, 1]
    with pytest.raises(ValueError, match="RepeatFactorTrainingSampler: size must be a positive int, got 0"):
        RepeatFactorTrainingSampler(torch.tensor([]))
