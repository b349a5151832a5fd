import torch

from worldmodels.nn.dists import (
    TwoHotSymlog,
    categorical_kl,
    sample_index,
    symexp,
    symlog,
    symlog_bins,
    two_hot,
    unimix_probs,
)
from worldmodels.nn.layers import OneHotTailLinear, SparseFeat


def test_symlog_round_trip():
    x = torch.tensor([-1e4, -3.5, -1e-3, 0.0, 2e-3, 7.0, 1e5])
    torch.testing.assert_close(symexp(symlog(x)), x, rtol=1e-5, atol=1e-6)


def test_two_hot_weights_sum_to_one_and_decode_to_input():
    bins = symlog_bins(255)
    x = torch.tensor([-19.0, -0.3, 0.0, 0.01, 5.5, 19.99])
    w = two_hot(x, bins)
    torch.testing.assert_close(w.sum(-1), torch.ones(6))
    torch.testing.assert_close((w * bins).sum(-1), x, atol=1e-5, rtol=0)
    assert ((w > 0).sum(-1) <= 2).all()


def test_two_hot_symlog_round_trip_through_logits():
    bins = symlog_bins(255)
    target = torch.tensor([-300.0, -1.0, 0.0, 0.5, 42.0, 1000.0])
    logits = torch.log(two_hot(symlog(target), bins) + 1e-12)
    torch.testing.assert_close(TwoHotSymlog(logits, bins).mean(), target, rtol=1e-3, atol=1e-4)


def test_two_hot_log_prob_is_highest_at_target():
    bins = symlog_bins(41)
    target = torch.tensor([3.0])
    logits = torch.log(two_hot(symlog(target), bins) + 1e-6)
    dist = TwoHotSymlog(logits, bins)
    assert dist.log_prob(target) > dist.log_prob(torch.tensor([10.0]))


def test_unimix_floor_and_kl_zero_on_equal():
    probs = unimix_probs(torch.tensor([[100.0, 0.0, 0.0, 0.0]]), 0.01)
    assert probs.min() >= 0.01 / 4 - 1e-7
    logits = torch.randn(3, 5, 4)
    torch.testing.assert_close(categorical_kl(logits, logits), torch.zeros(3), atol=1e-6, rtol=0)


def test_sample_index_matches_probabilities():
    probs = torch.tensor([0.1, 0.6, 0.3]).expand(20000, 3)
    freq = torch.bincount(sample_index(probs), minlength=3).float() / 20000
    torch.testing.assert_close(freq, probs[0], atol=0.02, rtol=0)


def test_onehot_tail_linear_sparse_equals_dense():
    layer = OneHotTailLinear(head=5, groups=3, classes=4, out=7)
    head = torch.randn(6, 5)
    index = torch.randint(0, 4, (6, 3))
    onehot = torch.nn.functional.one_hot(index, 4).float().flatten(-2)
    dense = layer(torch.cat([head, onehot], -1))
    sparse = layer(SparseFeat(head, index))
    torch.testing.assert_close(sparse, dense, atol=1e-5, rtol=1e-5)
    # The all-zero reset state contributes nothing (the dense path is exact for any input).
    zero = layer(torch.cat([head, torch.zeros(6, 12)], -1))
    torch.testing.assert_close(zero, layer.head_part(head))
