import math

import torch
from torch.nn import functional as F

from fundus_cbr.losses import batch_hard_triplet_loss, fine_triplet_loss, relevance_degree, relevance_weights


def fine_triplet_by_loop(embeddings, labels, relevance, margin, gamma, floor):
    n = len(labels)
    total, anchors = 0.0, 0
    for i in range(n):
        positive_sum, negative_sum, has_positive, has_negative = 0.0, 0.0, False, False
        for j in range(n):
            if i == j:
                continue
            s = float(embeddings[i] @ embeddings[j])
            if labels[i] == labels[j]:
                alpha = max(1 + margin - s, 0.0)
                w = 1.0
                if relevance is not None:
                    r_i = min(max(float(relevance[i]), floor), 1.0)
                    r_j = min(max(float(relevance[j]), floor), 1.0)
                    w = r_j / r_i
                positive_sum += math.exp(-gamma * w * alpha * (s - (1 - margin)))
                has_positive = True
            else:
                alpha = max(s + margin, 0.0)
                negative_sum += math.exp(gamma * alpha * (s - margin))
                has_negative = True
        if has_positive and has_negative:
            total += math.log(1 + positive_sum * negative_sum)
            anchors += 1
    return total / anchors


def test_fine_triplet_matches_hand_computed_value():
    embeddings = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    labels = torch.tensor([0, 0, 1])
    # anchors 0 and 1: positive s=1 -> a_p=0.25, term exp(-0.0625); negative s=0 -> a_n=0.25, term exp(-0.0625);
    # anchor 2 has no positive and is left out.
    expected = math.log(1 + math.exp(-0.125))
    assert abs(fine_triplet_loss(embeddings, labels).item() - expected) < 1e-6


def test_fine_triplet_matches_plain_loop_with_and_without_relevance():
    torch.manual_seed(0)
    embeddings = F.normalize(torch.randn(9, 4), dim=1)
    labels = torch.tensor([0, 0, 1, 1, 1, 2, 2, 3, 0])
    relevance = torch.tensor([0.9, 0.5, -0.2, 0.05, 1.0, 0.7, 0.3, 0.8, 0.6])
    for rel in (None, relevance):
        for margin, gamma in ((0.25, 1.0), (0.4, 8.0)):
            expected = fine_triplet_by_loop(embeddings, labels, rel, margin, gamma, 0.1)
            got = fine_triplet_loss(embeddings, labels, rel, margin, gamma, 0.1).item()
            assert abs(got - expected) < 1e-5, (rel is None, margin, gamma)


def test_relevance_weights_are_bounded_when_relevance_is_zero_or_negative():
    weights = relevance_weights(torch.tensor([0.0, -0.5, 1.0]), floor=0.1)
    assert torch.isfinite(weights).all()
    assert weights.max().item() <= 10.0 + 1e-6 and weights.min().item() >= 0.1 - 1e-6


def test_no_gradient_flows_into_relevance_or_alpha():
    torch.manual_seed(1)
    horizontal = torch.randn(6, 5, requires_grad=True)
    vertical = torch.randn(6, 5)
    embeddings = F.normalize(torch.randn(6, 3), dim=1).requires_grad_(True)
    loss = fine_triplet_loss(embeddings, torch.tensor([0, 0, 1, 1, 2, 2]), relevance_degree(horizontal, vertical))
    loss.backward()
    assert horizontal.grad is None
    assert embeddings.grad is not None and torch.isfinite(embeddings.grad).all()


def test_relevance_degree_is_cosine_of_branch_descriptors():
    horizontal = torch.tensor([[1.0, 0.0], [1.0, 1.0]])
    vertical = torch.tensor([[0.0, 2.0], [2.0, 2.0]])
    torch.testing.assert_close(relevance_degree(horizontal, vertical), torch.tensor([0.0, 1.0]))


def test_batch_hard_triplet_matches_plain_loop():
    torch.manual_seed(2)
    embeddings = F.normalize(torch.randn(8, 4), dim=1)
    labels = torch.tensor([0, 0, 1, 1, 2, 2, 2, 3])
    total, count = 0.0, 0
    for i in range(8):
        positives = [1 - float(embeddings[i] @ embeddings[j]) for j in range(8) if j != i and labels[j] == labels[i]]
        negatives = [1 - float(embeddings[i] @ embeddings[j]) for j in range(8) if labels[j] != labels[i]]
        if positives and negatives:
            total += max(max(positives) - min(negatives) + 0.2, 0.0)
            count += 1
    assert abs(batch_hard_triplet_loss(embeddings, labels, 0.2).item() - total / count) < 1e-6


def test_losses_are_zero_not_nan_without_any_valid_anchor():
    embeddings = F.normalize(torch.randn(3, 4), dim=1)
    labels = torch.tensor([0, 1, 2])
    assert fine_triplet_loss(embeddings, labels).item() == 0.0
    assert batch_hard_triplet_loss(embeddings, labels).item() == 0.0
