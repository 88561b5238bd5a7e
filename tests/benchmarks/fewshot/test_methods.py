import pytest
import torch

from benchmarks.fewshot import (
    DiffusionHead,
    center_l2,
    diffusion_shot,
    laplacian_shot,
    prototypes,
    rectified_prototypes,
    shift_query,
    simple_shot,
)
from torch_geometric_diff.transforms import gaussian_knn_graph


def test_center_l2():
    x = torch.tensor([[4.0, 5.0], [1.0, 1.0]])
    out = center_l2(x, torch.tensor([1.0, 1.0]))
    assert torch.allclose(out[0], torch.tensor([0.6, 0.8]))
    assert torch.equal(out[1], torch.zeros(2))  # Zero vector stays zero.
    assert torch.allclose(center_l2(x).norm(dim=1), torch.ones(2))


def test_simple_shot_by_hand():
    support = torch.tensor([[0., 0.], [0., 2.], [10., 0.]])
    support_y = torch.tensor([0, 0, 1])  # Prototypes (0, 1) and (10, 0).
    query = torch.tensor([[4., 1.], [6., 0.], [0., 5.]])
    assert simple_shot(support, support_y, query, 2).tolist() == [0, 1, 0]
    assert torch.equal(prototypes(support, support_y, 2),
                       torch.tensor([[0., 1.], [10., 0.]]))


def test_shift_query():
    s, q = torch.randn(5, 3), torch.randn(9, 3) + 4
    assert torch.allclose(shift_query(s, q).mean(0), s.mean(0), atol=1e-6)


def test_rectified_prototypes_by_formula():
    torch.manual_seed(0)
    s, q = torch.randn(4, 3), torch.randn(10, 3)
    y = torch.tensor([0, 0, 1, 1])
    out = rectified_prototypes(s, y, q, 2, temperature=10.0)
    proto = prototypes(s, y, 2)
    whole = torch.cat([s, q])
    cos = torch.stack([torch.nn.functional.cosine_similarity(whole, p[None])
                       for p in proto], 1) * 10
    w = cos.softmax(1)
    for c in range(2):
        m = cos.argmax(1) == c
        ref = (w[m, c, None] * whole[m]).sum(0) / w[m, c].sum()
        assert torch.allclose(out[c], ref, atol=1e-6)


def test_laplacian_shot():
    support = torch.tensor([[0., 0.], [10., 0.]])
    y = torch.tensor([0, 1])
    # Without the Laplacian term it is the nearest prototype.
    torch.manual_seed(1)
    query = torch.randn(30, 2) * 3 + torch.tensor([5., 0.])
    plain = laplacian_shot(support, y, query, 2, lam=0.0, rectify=False,
                           shift=False)
    assert torch.equal(plain, simple_shot(support, y, query, 2))
    # A chain of queries from class 0 towards class 1: the point at x = 5.5
    # (nearer prototype 1) follows its neighbours on the left when lam is
    # large, but not when lam = 0.
    query = torch.tensor([[1.], [2.], [3.], [4.], [5.5], [9.], [9.5]])
    query = torch.cat([query, torch.zeros(7, 1)], 1)
    no = laplacian_shot(support, y, query, 2, knn=2, lam=0.0, rectify=False,
                        shift=False)
    yes = laplacian_shot(support, y, query, 2, knn=2, lam=20.0,
                         rectify=False, shift=False)
    assert no[4] == 1 and yes[4] == 0
    assert yes[-1] == 1


def dense_head(model, x, ei, w, gamma, K):
    W = torch.zeros(x.size(0), x.size(0))
    W[ei[1], ei[0]] = w
    L = torch.diag(W.sum(1)) - W
    h = x + model.fc2(torch.relu(model.fc1(x)))
    for _ in range(K):
        h = h - gamma * L @ h
    return model.classifier(h)


def test_diffusion_head_matches_dense():
    torch.manual_seed(2)
    x = torch.randn(30, 8)
    ei, w = gaussian_knn_graph(x, 5, sigma_k=3)
    model = DiffusionHead(8, 3, num_steps=4, step_size=0.5)
    out = model(x, ei, w)
    assert out.shape == (30, 3)
    assert torch.allclose(out, dense_head(model, x, ei, w, 0.5, 4),
                          atol=1e-5)


def blobs(seed, shot=1):
    g = torch.Generator().manual_seed(seed)
    centers = torch.eye(5, 16) * 6
    support = centers.repeat_interleave(shot, 0) + torch.randn(
        5 * shot, 16, generator=g)
    query = centers.repeat_interleave(10, 0) + torch.randn(50, 16, generator=g)
    return support, torch.arange(5).repeat_interleave(shot), query


def test_diffusion_shot_separable_and_deterministic():
    support, y, query = blobs(0)
    truth = torch.arange(5).repeat_interleave(10)
    s, q = center_l2(support), center_l2(query)
    p1 = diffusion_shot(s, y, q, 5, epochs=30, seed=3)
    p2 = diffusion_shot(s, y, q, 5, epochs=30, seed=3)
    assert torch.equal(p1, p2)
    assert float((p1 == truth).float().mean()) == 1.0
    p0 = diffusion_shot(s, y, q, 5, epochs=30, num_steps=0, seed=3)
    assert p0.shape == (50, )


def test_bad_input():
    with pytest.raises(ValueError, match='same number of columns'):
        simple_shot(torch.randn(2, 3), torch.tensor([0, 1]),
                    torch.randn(4, 2), 2)
    with pytest.raises(ValueError, match='support_y'):
        simple_shot(torch.randn(2, 3), torch.tensor([0, 2]),
                    torch.randn(4, 3), 2)


def nearest_mean_reference(support, support_y, query):
    # Brute force: the label of the closest class mean.
    classes = sorted(set(support_y.tolist()))
    means = [support[support_y == c].double().mean(0) for c in classes]
    return [classes[min(range(len(means)), key=lambda i: float(
        (q.double() - means[i]).norm()))] for q in query]


def test_every_class_needs_a_support_example():
    torch.manual_seed(2)
    support, query = torch.randn(5, 3), torch.randn(7, 3)
    y = torch.arange(5)
    # n_way = 8 with labels 0..4: classes 5..7 have no prototype.
    for method in (simple_shot, laplacian_shot, diffusion_shot):
        with pytest.raises(ValueError, match="'support_y'.*class"):
            method(support, y, query, 8)
    assert simple_shot(support, y, query, 5).tolist() == \
        nearest_mean_reference(support, y, query)


@pytest.mark.parametrize('dtype', [torch.float32, torch.bool])
def test_labels_must_be_integers(dtype):
    support, query = torch.randn(4, 3), torch.randn(6, 3)
    y = torch.tensor([0, 0, 1, 1]).to(dtype)
    for method in (simple_shot, laplacian_shot, diffusion_shot):
        with pytest.raises(TypeError, match="'support_y'"):
            method(support, y, query, 2)


def test_int32_labels_work_like_int64():
    support, y, query = blobs(1, shot=2)
    y32 = y.to(torch.int32)
    assert torch.equal(simple_shot(support, y32, query, 5),
                       simple_shot(support, y, query, 5))
    assert simple_shot(support, y32, query, 5).tolist() == \
        nearest_mean_reference(support, y, query)
    assert torch.equal(laplacian_shot(support, y32, query, 5),
                       laplacian_shot(support, y, query, 5))
    assert torch.equal(diffusion_shot(support, y32, query, 5, epochs=2,
                                      seed=0),
                       diffusion_shot(support, y, query, 5, epochs=2, seed=0))


@pytest.mark.parametrize('kwargs', [
    dict(lam=float('nan')), dict(lam=float('inf')), dict(lam=-0.5),
    dict(knn=-1), dict(max_iter=0), dict(knn=1.5)])
def test_laplacian_shot_bad_arguments(kwargs):
    support, y, query = blobs(2, shot=1)
    name = next(iter(kwargs))
    with pytest.raises((ValueError, TypeError), match=f"'{name}'"):
        laplacian_shot(support, y, query, 5, **kwargs)


@pytest.mark.parametrize('kwargs', [
    dict(epochs=-1), dict(epochs=0), dict(epochs=2.5), dict(lr=0.0),
    dict(lr=float('nan')), dict(k=0), dict(sigma_k=0), dict(num_steps=-1),
    dict(step_size=0.0), dict(step_size=float('nan')),
    dict(weight_decay=-1.0)])
def test_diffusion_shot_bad_arguments(kwargs):
    support, y, query = blobs(2, shot=1)
    name = next(iter(kwargs))
    with pytest.raises((ValueError, TypeError), match=f"'{name}'"):
        diffusion_shot(support, y, query, 5, **kwargs)


def test_non_finite_features():
    support, y, query = blobs(2, shot=1)
    query[3, 0] = float('nan')
    for method in (simple_shot, laplacian_shot, diffusion_shot):
        with pytest.raises(ValueError, match="'query'.*NaN"):
            method(support, y, query, 5)
