"""The compiled kernels equal their torch references: the LIF/LI loop (forward and gradients,
float64, with recurrence, per-neuron parameters and noise), the sparse input projection, and
the sparse-backward cut-off of the surrogate; the torch kernel's filtered form (no recurrence)
equals its general loop, autograd through the step functions and finite differences."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from workbench import fused
from workbench.backends import build
from workbench.fused import FILTER_METHODS, lif_scan, linear_filter, project
from workbench.neurons import LIFParameters, Surrogate, initial_state, li_step, lif_step
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


# ----------------------------------------------------------------- the torch kernel's filters
# Without a recurrent weight the torch kernel computes every linear part of the recursion for
# all steps at once (workbench.fused.linear_filter), by either method; both are held equal to
# the step-by-step recursion and, through the whole population, to the general loop (which
# runs when a recurrent weight is given: an all-zero one changes nothing) and to autograd
# through the step functions.

OUTPUT_SUBSETS = {"all": (0, 1, 2), "spikes": (0,), "v": (1,), "i": (2,), "v and i": (1, 2)}


def _filter_by_steps(x, a, reverse):
    """The recursion y_t = a_t y_{t-1} + x_t (reverse: from the end), one step at a time."""
    varying = torch.is_tensor(a) and a.dim() == x.dim()
    y = torch.empty_like(x)
    carry = torch.zeros_like(x[0])
    for t in reversed(range(x.shape[0])) if reverse else range(x.shape[0]):
        carry = (a[t] if varying else a) * carry + x[t]
        y[t] = carry
    return y


@pytest.mark.parametrize("method", FILTER_METHODS)
@pytest.mark.parametrize("reverse", [False, True], ids=["forward", "reverse"])
@pytest.mark.parametrize("coefficient", ["number", "zero", "per neuron", "per step"])
@pytest.mark.parametrize("n_steps", [1, 2, 5, 64, 100])
def test_a_linear_filter_equals_the_step_by_step_recursion(method, reverse, coefficient, n_steps):
    g = torch.Generator().manual_seed(n_steps)
    x = torch.randn(n_steps, 3, 4, dtype=F64, generator=g)
    a = {
        "number": 0.93,
        "zero": 0.0,
        "per neuron": 0.5 + 0.49 * torch.rand(4, dtype=F64, generator=g),
        # beta * (1 - z): a membrane adjoint cut at every spike
        "per step": 0.9 * (torch.rand(n_steps, 3, 4, dtype=F64, generator=g) > 0.2).to(F64),
    }[coefficient]
    before = x.clone()
    got = linear_filter(x, a, reverse, method)
    assert torch.equal(x, before)  # the input is not written
    torch.testing.assert_close(got, _filter_by_steps(x, a, reverse), rtol=1e-13, atol=1e-13)


def test_a_linear_filter_refuses_an_unknown_method_by_name():
    with pytest.raises(ValueError, match="method: 'scan' must be one of"):
        linear_filter(torch.zeros(3, 1, 1), 0.5, method="scan")


def _scan_case(spiking, subtract, per_neuron, noisy, n_steps=40, batch=3, n=9, seed=11):
    g = torch.Generator().manual_seed(seed)
    if per_neuron:
        p = _params(n, subtract, g)
    else:
        p = LIFParameters(0.8, 0.9, 0.6, 1.0, v_leak=0.1, v_reset=-0.1, reset_subtract=subtract)
    external = (2 * torch.randn(n_steps, batch, n, dtype=F64, generator=g)).requires_grad_()
    noise = 0.1 * torch.randn(n_steps, batch, n, dtype=F64, generator=g) if noisy else None
    return p, external, noise


def _outputs_and_gradient(outputs, external, subset, seed=7):
    """The outputs and d loss / d external for a loss on the outputs in ``subset`` only (the
    others reach the backward pass as None)."""
    g = torch.Generator().manual_seed(seed)
    weights = [torch.randn(external.shape, dtype=F64, generator=g) for _ in outputs]
    weights = [w.to(external.device) for w in weights]
    loss = sum((outputs[k] * weights[k]).sum() for k in subset)
    (grad,) = torch.autograd.grad(loss, [external])
    return [o.detach() for o in outputs], grad


@pytest.mark.parametrize("method", FILTER_METHODS)
@pytest.mark.parametrize("subset", list(OUTPUT_SUBSETS), ids=list(OUTPUT_SUBSETS))
@pytest.mark.parametrize("spiking, subtract, per_neuron, noisy", CASES)
def test_the_filtered_torch_kernel_equals_the_general_loop(
    spiking, subtract, per_neuron, noisy, subset, method, monkeypatch
):
    monkeypatch.setattr(fused, "FILTER_METHOD", method)
    p, external, noise = _scan_case(spiking, subtract, per_neuron, noisy)
    n = external.shape[2]
    surrogate = Surrogate("arctan", 3.0)
    runs = []
    for w_rec in (None, torch.zeros(n, n, dtype=F64)):  # None: filtered; zeros: the loop
        outputs = lif_scan(external, w_rec, p, spiking, surrogate, noise, kernel="torch")
        runs.append(_outputs_and_gradient(outputs, external, OUTPUT_SUBSETS[subset]))
    (got, got_grad), (ref, ref_grad) = runs
    if spiking:
        assert torch.equal(got[0], ref[0])
        assert 0 < ref[0].sum() < ref[0].numel()  # some spikes, not all
    for a, b in zip(ref, got):
        torch.testing.assert_close(b, a, rtol=0, atol=1e-12)
    assert ref_grad.abs().sum() > 0
    torch.testing.assert_close(got_grad, ref_grad, rtol=1e-12, atol=1e-12)


def _step_function_reference(external, p, spiking, surrogate):
    """``(output, v, i)`` by autograd through ``lif_step`` / ``li_step``, one step at a time."""
    step, spike_fn = (lif_step, surrogate) if spiking else (li_step, None)
    state = initial_state(external.shape[1:], p, F64)
    out, vs, is_ = [], [], []
    for t in range(external.shape[0]):
        state, o = step(state, external[t], p, spike_fn)
        out.append(o)
        vs.append(state.v)
        is_.append(state.i)
    return [torch.stack(x) for x in (out, vs, is_)]


@pytest.mark.parametrize("method", FILTER_METHODS)
@pytest.mark.parametrize("subset", ["all", "spikes", "v and i"])
@pytest.mark.parametrize(
    "spiking, subtract, per_neuron", list(itertools.product(*[[True, False]] * 3))
)
def test_the_filtered_torch_kernel_equals_autograd_through_the_step_functions(
    spiking, subtract, per_neuron, subset, method, monkeypatch
):
    monkeypatch.setattr(fused, "FILTER_METHOD", method)
    p, external, _ = _scan_case(spiking, subtract, per_neuron, noisy=False)
    surrogate = Surrogate("superspike", 5.0)
    outputs = lif_scan(external, None, p, spiking, surrogate, kernel="torch")
    got, got_grad = _outputs_and_gradient(outputs, external, OUTPUT_SUBSETS[subset])
    reference = _step_function_reference(external, p, spiking, surrogate)
    ref, ref_grad = _outputs_and_gradient(reference, external, OUTPUT_SUBSETS[subset])
    if spiking:
        assert torch.equal(got[0], ref[0]) and ref[0].any()
    for a, b in zip(ref, got):
        torch.testing.assert_close(b, a, rtol=0, atol=1e-12)
    torch.testing.assert_close(got_grad, ref_grad, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("method", FILTER_METHODS)
@pytest.mark.parametrize("spiking, subtract", [(False, False), (True, False), (True, True)])
def test_the_filtered_torch_kernel_passes_gradcheck(spiking, subtract, method, monkeypatch):
    """Finite differences in float64 on a tiny case with per-neuron parameters and noise.  The
    spikes' surrogate gradient is no derivative, so a spiking population is checked on ``v``
    and ``i`` (its spikes held fixed: no membrane is within 1e-3 of its threshold)."""
    monkeypatch.setattr(fused, "FILTER_METHOD", method)
    p, external, noise = _scan_case(spiking, subtract, True, True, n_steps=12, batch=2, n=3)

    def run(x):
        out = lif_scan(x, None, p, spiking, Surrogate(), noise, kernel="torch")
        return out[1:] if spiking else out

    if spiking:
        zs, _, _, distance = fused._filtered_forward(external.detach(), p, True, noise)
        assert zs.any() and distance.abs().min() > 1e-3
    assert torch.autograd.gradcheck(run, (external,), eps=1e-6, atol=1e-8, rtol=1e-6)


@pytest.mark.parametrize("recurrent", [False, True], ids=["filtered", "loop"])
@pytest.mark.parametrize(
    "spiking, subtract, per_neuron", list(itertools.product(*[[True, False]] * 3))
)
def test_the_torch_kernel_makes_its_tensors_on_the_inputs_device_and_dtype(
    spiking, subtract, per_neuron, recurrent
):
    """A GPU runs the torch kernel; the meta device (shapes only) stands in for it here: a
    tensor the kernel made on the CPU would meet the meta tensors and be refused."""
    meta = {"device": "meta", "dtype": torch.float32}
    p = LIFParameters(0.8, 0.9, 0.6, 1.0, v_leak=0.1, v_reset=-0.1, reset_subtract=subtract)
    if per_neuron:
        p = p._replace(
            **{k: torch.full((5,), getattr(p, k), **meta) for k in ("beta", "threshold")}
        )
    external = torch.empty(20, 2, 5, **meta, requires_grad=True)
    w_rec = torch.empty(5, 5, **meta, requires_grad=True) if recurrent else None
    noise = torch.empty(20, 2, 5, **meta)
    outputs = lif_scan(external, w_rec, p, spiking, Surrogate(), noise, kernel="torch")
    for subset in OUTPUT_SUBSETS.values():
        loss = sum(outputs[k].sum() for k in subset)
        inputs = [external] + ([w_rec] if recurrent else [])
        grads = torch.autograd.grad(loss, inputs, retain_graph=True)
        for t in (*outputs, *grads):
            assert (t.device.type, t.dtype) == ("meta", torch.float32)


@pytest.mark.parametrize("method", FILTER_METHODS)
def test_the_filtered_torch_kernel_in_float32_fires_as_in_float64(method, monkeypatch):
    """The GPU's precision: 100 steps of a busy population in float32 give the same spikes as
    float64, and membranes and currents within float32 rounding (16 units in the last place,
    and 1e-5 near zero)."""
    monkeypatch.setattr(fused, "FILTER_METHOD", method)
    p, external, noise = _scan_case(True, False, False, True, n_steps=100, batch=4, n=50)
    runs = [
        lif_scan(external.detach().to(dtype), None, p, True, Surrogate(), noise.to(dtype), "torch")
        for dtype in (torch.float32, F64)
    ]
    (z32, v32, i32), (z64, v64, i64) = runs
    assert z32.dtype == v32.dtype == i32.dtype == torch.float32
    assert torch.equal(z32.to(F64), z64) and z64.mean() > 0.05
    torch.testing.assert_close(v32.to(F64), v64, rtol=2e-6, atol=1e-5)
    torch.testing.assert_close(i32.to(F64), i64, rtol=2e-6, atol=1e-5)


@pytest.mark.parametrize("subset", list(OUTPUT_SUBSETS), ids=list(OUTPUT_SUBSETS))
@pytest.mark.parametrize("spiking, recurrent", [(True, False), (True, True), (False, False)])
def test_both_kernels_take_a_loss_on_some_outputs_only(spiking, recurrent, subset):
    """Outputs the loss does not use reach the backward pass as None, not as zeros."""
    p, external, noise = _scan_case(spiking, False, True, True)
    n = external.shape[2]
    g = torch.Generator().manual_seed(3)
    w_rec = torch.randn(n, n, dtype=F64, generator=g).requires_grad_() if recurrent else None
    inputs = [external] + ([w_rec] if recurrent else [])
    grads = []
    for kernel in ("torch", "compiled"):
        outputs = lif_scan(external, w_rec, p, spiking, Surrogate(), noise, kernel=kernel)
        loss = sum(
            (outputs[k] * torch.linspace(-1, 1, n, dtype=F64)).sum() for k in OUTPUT_SUBSETS[subset]
        )
        grads.append(torch.autograd.grad(loss, inputs))
    for ref, got in zip(*grads):
        assert ref.abs().sum() > 0
        torch.testing.assert_close(got, ref, rtol=1e-12, atol=1e-12)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize(
    "spiking, subtract, per_neuron", list(itertools.product(*[[True, False]] * 3))
)
def test_the_torch_kernel_on_a_gpu_equals_it_on_the_cpu(spiking, subtract, per_neuron):
    """Float64 on both; the GPU runs the doubling scan, the CPU the step loop."""
    p, external, noise = _scan_case(spiking, subtract, per_neuron, True)
    runs = []
    for device in ("cpu", "cuda"):
        q = p._replace(**{k: v.to(device) for k, v in p._asdict().items() if torch.is_tensor(v)})
        x = external.detach().to(device).requires_grad_()
        outputs = lif_scan(x, None, q, spiking, Surrogate(), noise.to(device), kernel="torch")
        out, grad = _outputs_and_gradient(outputs, x, OUTPUT_SUBSETS["all"])
        runs.append([t.cpu() for t in (*out, grad)])
    for ref, got in zip(*runs):
        torch.testing.assert_close(got, ref, rtol=1e-12, atol=1e-12)
