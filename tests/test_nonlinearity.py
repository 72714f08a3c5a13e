"""The analog neuron's integration non-linearity (a current mirror charging the membrane,
workbench.nonlinearity): its transfer function by hand, the compiled loop against the torch
references, finite-difference gradients in float64, and the backends that carry it."""

from __future__ import annotations

import pytest
import torch

from workbench.backends import build
from workbench.fused import lif_scan
from workbench.limits import backend_option_problems
from workbench.neurons import LIFParameters, Surrogate
from workbench.nonlinearity import Mirror, MirrorFigures, mirror_gain, mirror_gain_and_slope
from workbench.spec import SpecError, feedforward

# strength, vdd, v_rest, volts per unit, overdrive, lambda, v_ref: the default figures
M = Mirror(1.0, 0.9, 0.2, 0.4, 0.15, 0.5, 0.45)
F64 = torch.float64


def gain(v: float, charge: float, m: Mirror = M) -> float:
    return mirror_gain(torch.tensor([v], dtype=F64), torch.tensor([charge], dtype=F64), m).item()


def test_the_default_figures_are_the_mirror():
    assert MirrorFigures().mirror() is None  # strength 0: the linear neuron
    assert MirrorFigures(integration_nonlinearity=1.0).mirror() == M


def test_the_gain_by_hand_in_saturation_in_triode_and_at_the_rails():
    scale = 1 + 0.5 * 0.45
    # rest (0.2 V): the PMOS has 0.7 V of headroom, the NMOS 0.2 V; both saturated
    assert gain(0.0, 1.0) == pytest.approx((1 + 0.5 * 0.7) / scale, abs=1e-15)
    assert gain(0.0, -1.0) == pytest.approx((1 + 0.5 * 0.2) / scale, abs=1e-15)
    # at threshold (0.6 V) excitation charges through 0.3 V of headroom: 6 % less than ideal
    assert gain(1.0, 1.0) == pytest.approx((1 + 0.5 * 0.3) / scale, abs=1e-15)
    assert gain(1.0, 1.0) == pytest.approx(0.9388, abs=1e-4)
    # 0.1 V above ground the NMOS is in triode: x = 0.1 / 0.15
    x = 0.1 / 0.15
    assert gain(-0.25, -1.0) == pytest.approx((2 * x - x * x) * (1 + 0.05) / scale, abs=1e-15)
    # 0.05 V below the supply the PMOS is in triode too
    x = 0.05 / 0.15
    assert gain(1.625, 1.0) == pytest.approx((2 * x - x * x) * (1 + 0.025) / scale, abs=1e-15)
    # at and beyond the rails no current flows
    assert gain(-0.5, -1.0) == 0.0 and gain(-2.0, -1.0) == 0.0
    assert gain(1.75, 1.0) == 0.0 and gain(3.0, 1.0) == 0.0
    # the other mirror is unaffected at the rails
    assert gain(-0.5, 1.0) > 1.0 and gain(1.75, -1.0) > 1.0


def test_strength_scales_the_departure_from_the_ideal_gain():
    for v in (-0.3, 0.0, 0.5, 1.0, 1.7):
        for charge in (1.0, -1.0):
            g = gain(v, charge)
            assert gain(v, charge, M._replace(strength=0.0)) == 1.0
            assert gain(v, charge, M._replace(strength=0.5)) == pytest.approx(1 + 0.5 * (g - 1))
            assert gain(v, charge, M._replace(strength=2.0)) == pytest.approx(
                max(0.0, 1 + 2 * (g - 1))
            )


def test_the_written_out_slope_is_the_derivative():
    v = torch.linspace(-1.0, 2.5, 3001, dtype=F64, requires_grad=True)
    for strength in (0.5, 1.0, 3.0):
        for sign in (1.0, -1.0):
            g, slope = mirror_gain_and_slope(
                v, torch.full_like(v, sign), M._replace(strength=strength)
            )
            (auto,) = torch.autograd.grad(g.sum(), v)
            assert torch.allclose(slope, auto, atol=1e-12)
            # and a central difference where the gain is smooth
            h = 1e-6
            up = mirror_gain(
                v.detach() + h, torch.full_like(v, sign), M._replace(strength=strength)
            )
            down = mirror_gain(
                v.detach() - h, torch.full_like(v, sign), M._replace(strength=strength)
            )
            smooth = (up - down).abs() < 0.5  # not across a kink
            fd = (up - down) / (2 * h)
            kinks = (fd - slope).abs() > 1e-5
            assert kinks.sum() <= 8  # only the few points beside a kink of the piecewise law
            assert smooth.all()


def params(**kw) -> LIFParameters:
    return LIFParameters(alpha=0.8, beta=0.9, current_gain=0.5, threshold=1.0, mirror=M, **kw)


def loss_of(output, v):
    weights = torch.linspace(-1, 1, output.numel(), dtype=output.dtype).view(output.shape)
    return (output * weights).sum() + 0.1 * (v**2).sum()


@pytest.mark.parametrize("recurrent", [False, True])
@pytest.mark.parametrize("spiking", [True, False])
@pytest.mark.parametrize("subtract", [False, True])
def test_the_compiled_loop_agrees_with_the_torch_loop_in_float64(recurrent, spiking, subtract):
    """Within 1e-12 (bit for bit without recurrence): the torch loop's recurrent input is a
    BLAS product, whose summation order depends on the CPU."""
    generator = torch.Generator().manual_seed(3)
    external = (0.6 * torch.randn(40, 3, 6, generator=generator, dtype=F64)).requires_grad_()
    w_rec = None
    if recurrent:
        w_rec = (0.3 * torch.randn(6, 6, generator=generator, dtype=F64)).requires_grad_()
    p = params(reset_subtract=subtract)
    results = {}
    for kernel in ("compiled", "torch"):
        output, v, _ = lif_scan(external, w_rec, p, spiking, Surrogate(), kernel=kernel)
        inputs = [external] + ([w_rec] if recurrent else [])
        grads = torch.autograd.grad(loss_of(output, v), inputs)
        results[kernel] = (output.detach(), v.detach(), grads)
    (o1, v1, g1), (o2, v2, g2) = results["compiled"], results["torch"]
    if recurrent:
        torch.testing.assert_close(o1, o2, rtol=0, atol=0 if spiking else 1e-12)
        torch.testing.assert_close(v1, v2, rtol=0, atol=1e-12)
    else:
        assert torch.equal(o1, o2) and torch.equal(v1, v2)
    for a, b in zip(g1, g2):
        assert torch.allclose(a, b, rtol=1e-12, atol=1e-12)
    # the mirror changes the dynamics: without it the membranes differ
    plain, v_plain, _ = lif_scan(external, w_rec, p._replace(mirror=None), spiking, Surrogate())
    assert not torch.equal(v_plain.detach(), v1)


@pytest.mark.parametrize("kernel", ["compiled", "torch"])
def test_gradients_pass_a_finite_difference_check_in_float64(kernel):
    """A leaky integrator has no spike, so its gradient is exact: gradcheck against central
    differences, through the mirror, with a recurrent weight as well."""
    generator = torch.Generator().manual_seed(5)
    external = (0.8 * torch.randn(25, 2, 4, generator=generator, dtype=F64)).requires_grad_()
    w_rec = (0.4 * torch.randn(4, 4, generator=generator, dtype=F64)).requires_grad_()
    p = params()
    assert torch.autograd.gradcheck(
        lambda e: lif_scan(e, None, p, False, Surrogate(), kernel=kernel)[0], (external,)
    )
    assert torch.autograd.gradcheck(
        lambda e, w: lif_scan(e, w, p, False, Surrogate(), kernel=kernel)[1], (external, w_rec)
    )


@pytest.mark.parametrize("model", ["lif", "if"])
def test_the_step_loop_agrees_with_the_fused_loop_forward_and_backward(model):
    """Two independent forms of one step: ``neurons.lif_step`` / ``if_step`` (autograd
    through the gain) and the fused loop with its written-out adjoint (IF: ``if_scan``)."""
    if model == "if":  # IF hidden and output, as the proxy algorithm trains them
        params = {"threshold": 0.5}
        spec = feedforward([5, 30, 3], "if", "if", params, params, dt=0.5, n_steps=50)
    else:
        spec = feedforward([5, 30, 3], dt=0.5, n_steps=50)
    generator = torch.Generator().manual_seed(1)
    x = (torch.rand(50, 4, 5, generator=generator) < 0.3).to(F64)
    outputs, grads = [], []
    for fused in (True, False):
        net = build(spec, "float", seed=2, dtype=F64, profile={"integration_nonlinearity": 1.5})
        assert all(p.mirror is not None for p in net.neuron_params.values())
        net.fused = fused
        result = net(x, record=True)
        loss = result.output.sum() + result.recordings["hidden"]["v"].pow(2).sum()
        loss.backward()
        outputs.append(result)
        grads.append({k: w.grad for k, w in net.weights.items()})
    a, b = outputs
    assert torch.allclose(a.output, b.output, atol=1e-12)
    assert torch.equal(a.recordings["hidden"]["spikes"], b.recordings["hidden"]["spikes"])
    for k in grads[0]:
        assert torch.allclose(grads[0][k], grads[1][k], rtol=1e-9, atol=1e-12)


def test_strength_zero_is_the_plain_float_network_bit_for_bit():
    spec = feedforward([5, 40, 3], dt=0.5, n_steps=40)
    x = (torch.rand(40, 3, 5, generator=torch.Generator().manual_seed(0)) < 0.3).float()
    plain = build(spec, "float", seed=1)
    zero = build(spec, "float", seed=1, profile={"integration_nonlinearity": 0.0})
    mirrored = build(spec, "float", seed=1, profile={"integration_nonlinearity": 1.0})
    assert zero.neuron_params == plain.neuron_params
    assert all(p.mirror == M for p in mirrored.neuron_params.values())
    a, b, c = (net(x, record=True) for net in (plain, zero, mirrored))
    assert torch.equal(a.output, b.output)
    assert not torch.equal(a.recordings["output"]["v"], c.recordings["output"]["v"])


def test_the_analog_backends_carry_it_and_the_digital_ones_refuse_it_by_name():
    spec = feedforward([5, 40, 3], dt=0.5, n_steps=40)
    x = (torch.rand(40, 3, 5, generator=torch.Generator().manual_seed(0)) < 0.3).float()
    profile = {"integration_nonlinearity": 1.0}
    for backend in ("float", "brainscales2", "crossbar"):
        assert backend_option_problems(backend, {"profile": profile}) == []
        ideal = build(spec, backend, seed=1)
        analog = build(spec, backend, seed=1, profile=profile)
        assert all(p.mirror == M for p in analog.neuron_params.values()), backend
        assert all(p.mirror is None for p in ideal.neuron_params.values()), backend
        ideal.eval(), analog.eval()
        assert not torch.equal(ideal(x, record=True).recordings["output"]["v"],
                               analog(x, record=True).recordings["output"]["v"])  # fmt: skip
    for backend in ("loihi", "xylo", "fpga"):
        (problem,) = backend_option_problems(backend, {"profile": profile})
        assert problem.path == "backend_options.profile.integration_nonlinearity"
        assert "no analog neuron" in problem.message
        assert problem.message.endswith("the backends with it: float, brainscales2, crossbar")
    (problem,) = backend_option_problems("event", {"profile": profile})  # no profile at all
    assert problem.path == "backend_options.profile"


@pytest.mark.parametrize(
    "figure, value",
    [
        ("integration_nonlinearity", -1.0),
        ("integration_nonlinearity", 11.0),
        ("mirror_overdrive", 0.0),
    ],
)
def test_figures_out_of_range_are_refused_naming_them(figure, value):
    problems = backend_option_problems("float", {"profile": {figure: value}})
    assert [p.path for p in problems] == [f"backend_options.profile.{figure}"]
    with pytest.raises(SpecError, match=figure):
        build(feedforward([2, 3, 2]), "float", profile={figure: value})


def test_a_run_and_a_compare_sweep_take_it_through_the_backend_options():
    from workbench.compare import sweep_grid
    from workbench.experiment import config_problems, prepare, reference_config

    config = reference_config("yinyang", "surrogate", "float", 0)
    config.backend_options = {"profile": {"integration_nonlinearity": 1.0}}
    assert config_problems(config) == []
    _, spec, network, _ = prepare(config)
    assert all(network.neuron_params[p.name].mirror == M for p in spec.populations)
    key = "backend_options.profile.integration_nonlinearity"
    cells = sweep_grid("yinyang", "surrogate", {key: [0.0, 1.0, 2.0]}, "float")
    assert [c["params"] for c in cells] == [{key: 0.0}, {key: 1.0}, {key: 2.0}]
