"""The compiled kernels equal their torch references: the LIF/LI loop (forward and gradients,
float64, with recurrence, per-neuron parameters and noise), the sparse input projection, and
the sparse-backward cut-off of the surrogate."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from workbench.backends import build
from workbench.fused import lif_scan, project
from workbench.neurons import LIFParameters, Surrogate
from workbench.spec import NetworkSpec, Population, Projection

F64 = torch.float64


def _params(n, subtract, generator):
    def r(lo, hi):
        return lo + (hi - lo) * torch.rand(n, dtype=F64, generator=generator)

    # per-neuron decays, gains and thresholds: an emulated chip's fixed-pattern mismatch
    return LIFParameters(
        alpha=r(0.4, 0.9),
        beta=r(0.6, 0.95),
        current_gain=r(0.2, 1.2),
        threshold=r(0.5, 1.5),
        v_leak=0.1,
        v_reset=-0.1,
        reset_subtract=subtract,
    )


def _run(kernel, external, w_rec, p, spiking, surrogate, noise):
    out = lif_scan(external, w_rec, p, spiking, surrogate, noise, kernel=kernel)
    g = torch.Generator().manual_seed(7)
    weights = [torch.randn(external.shape, dtype=F64, generator=g) for _ in out]
    loss = sum((o * w).sum() for o, w in zip(out, weights))
    inputs = [external] + ([w_rec] if w_rec is not None else [])
    return [o.detach() for o in out], torch.autograd.grad(loss, inputs)


CASES = list(itertools.product([True, False], [False, True], [False, True], [False, True]))


@pytest.mark.parametrize("spiking, recurrent, subtract, noisy", CASES)
def test_the_compiled_loop_equals_the_torch_loop_forward_and_gradients(
    spiking, recurrent, subtract, noisy
):
    g = torch.Generator().manual_seed(1)
    n_steps, batch, n = 40, 3, 9
    p = _params(n, subtract, g)
    external = (2 * torch.randn(n_steps, batch, n, dtype=F64, generator=g)).requires_grad_()
    w_rec = torch.randn(n, n, dtype=F64, generator=g).requires_grad_() if recurrent else None
    noise = 0.1 * torch.randn(n_steps, batch, n, dtype=F64, generator=g) if noisy else None
    surrogate = Surrogate("arctan", 3.0)
    ref_out, ref_grads = _run("torch", external, w_rec, p, spiking, surrogate, noise)
    out, grads = _run("compiled", external, w_rec, p, spiking, surrogate, noise)
    if spiking:
        assert 0 < ref_out[0].sum() < ref_out[0].numel()  # some spikes, not all
    for a, b in zip(ref_out, out):
        torch.testing.assert_close(b, a, rtol=0, atol=1e-12)
    for a, b in zip(ref_grads, grads):
        torch.testing.assert_close(b, a, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("kind", ["superspike", "arctan", "triangle"])
@pytest.mark.parametrize("cutoff", [None, 0.3])
def test_the_compiled_backward_uses_the_same_surrogate_and_cutoff(kind, cutoff):
    g = torch.Generator().manual_seed(2)
    p = _params(6, False, g)
    external = torch.randn(30, 2, 6, dtype=F64, generator=g).requires_grad_()
    surrogate = Surrogate(kind, 4.0, cutoff)
    _, ref = _run("torch", external, None, p, True, surrogate, None)
    _, got = _run("compiled", external, None, p, True, surrogate, None)
    torch.testing.assert_close(got[0], ref[0], rtol=1e-12, atol=1e-12)


def test_a_compiled_network_matches_finite_differences():
    """The compiled loop's gradient of a small recurrent network, against central differences
    in float64 (the surrogate replaced by the exact derivative is not available, so the check
    runs where no neuron is near its threshold: the leaky-integrator readout's gradient)."""
    spec = NetworkSpec(
        4,
        [
            Population("hidden", 6, "lif", {"tau_mem": 10.0, "tau_syn": 5.0}),
            Population("out", 2, "li", {"tau_mem": 10.0, "tau_syn": 5.0}),
        ],
        [Projection("input", "hidden"), Projection("hidden", "out")],
        dt=1.0,
        n_steps=25,
    )
    net = build(spec, "float", seed=3, dtype=F64)
    x = (torch.rand(25, 3, 4, generator=torch.Generator().manual_seed(4)) < 0.3).to(F64)
    w = net.weights["hidden__out"]

    def loss():
        return (net(x).output ** 2).mean()

    (grad,) = torch.autograd.grad(loss(), [w])
    eps = 1e-6
    numeric = torch.zeros_like(w)
    with torch.no_grad():
        for idx in itertools.product(*map(range, w.shape)):
            w[idx] += eps
            up = loss()
            w[idx] -= 2 * eps
            down = loss()
            w[idx] += eps
            numeric[idx] = (up - down) / (2 * eps)
    torch.testing.assert_close(grad, numeric, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("density", [0.01, 0.05, 0.5])
@pytest.mark.parametrize("needs_input_grad", [False, True])
def test_sparse_input_projection_equals_dense(density, needs_input_grad):
    g = torch.Generator().manual_seed(5)
    shape = (60, 7, 50)
    x = (torch.rand(shape, generator=g) < density).to(F64)
    x = x * torch.rand(shape, dtype=F64, generator=g)  # graded values are kept too
    x.requires_grad_(needs_input_grad)
    w = torch.randn(13, 50, dtype=F64, generator=g, requires_grad=True)
    weight = torch.randn(60, 7, 13, dtype=F64, generator=g)
    results = []
    for kernel in ("torch", "compiled"):
        out = project(x, w, kernel)
        inputs = [w, x] if needs_input_grad else [w]
        results.append((out.detach(), torch.autograd.grad((out * weight).sum(), inputs)))
    (ref, ref_grads), (got, got_grads) = results
    torch.testing.assert_close(got, ref, rtol=1e-12, atol=1e-12)
    for a, b in zip(ref_grads, got_grads):
        torch.testing.assert_close(b, a, rtol=1e-12, atol=1e-12)


def test_a_network_trains_the_same_on_either_kernel():
    """Three Adam steps of a recurrent network with delays and a readout: the weights after
    them agree between the compiled and the torch path (float64)."""
    spec = NetworkSpec(
        20,
        [
            Population("hidden", 16, "lif", {"tau_mem": 20.0, "tau_syn": 5.0}),
            Population("out", 3, "li", {"tau_mem": 20.0, "tau_syn": 5.0}),
        ],
        [
            Projection("input", "hidden", weight_std=1.5),
            Projection("hidden", "hidden", recurrent=True, weight_std=0.3),
            Projection("hidden", "out"),
        ],
        dt=1.0,
        n_steps=50,
    )
    x = (torch.rand(50, 8, 20, generator=torch.Generator().manual_seed(6)) < 0.1).to(F64)
    finals = []
    for kernel in ("torch", "compiled"):
        net = build(spec, "float", seed=0, dtype=F64)
        net.kernel = kernel
        opt = torch.optim.Adam(net.parameters(), lr=1e-2)
        for _ in range(3):
            opt.zero_grad()
            loss = net(x).output.max(0).values.logsumexp(1).mean()
            loss.backward()
            opt.step()
        finals.append({k: v.detach().clone() for k, v in net.state_dict().items()})
    for key in finals[0]:
        torch.testing.assert_close(finals[1][key], finals[0][key], rtol=1e-10, atol=1e-12)


def test_an_infinite_cutoff_changes_nothing_and_a_finite_one_zeroes_far_gradients():
    x = torch.linspace(-3, 3, 61, dtype=F64)
    plain = Surrogate("superspike", 10.0).derivative(x)
    assert torch.equal(Surrogate("superspike", 10.0, None).derivative(x), plain)
    assert torch.equal(Surrogate("superspike", 10.0, math.inf).derivative(x), plain)
    cut = Surrogate("superspike", 10.0, 0.5).derivative(x)
    assert torch.equal(cut[x.abs() <= 0.5], plain[x.abs() <= 0.5])
    assert (cut[x.abs() > 0.5] == 0).all()


@pytest.mark.parametrize("cutoff", [0.0, -1.0, math.nan])
def test_a_cutoff_that_is_not_positive_is_refused_by_name(cutoff):
    with pytest.raises(ValueError, match="surrogate.cutoff"):
        Surrogate(cutoff=cutoff)


def test_the_surrogate_algorithm_trains_with_the_cutoff_it_is_given(monkeypatch):
    from workbench.algorithms import surrogate
    from workbench.experiment import prepare, reference_config

    config = reference_config("digits")
    config.training.update(epochs=1, surrogate_cutoff=0.5)
    data, _, network, hyper = prepare(config)
    assert hyper.surrogate_cutoff == 0.5  # a run setting (sweep: training.surrogate_cutoff)
    monkeypatch.setattr(surrogate, "fit_epochs", lambda *args: None)  # the loop is not the point
    surrogate.fit(network, data, hyper)
    assert network.surrogate.cutoff == 0.5
    with pytest.raises(Exception, match="surrogate_cutoff"):
        surrogate.fit(network, data, surrogate.SurrogateConfig(surrogate_cutoff=-1.0))
