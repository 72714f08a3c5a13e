"""Neuron dynamics and surrogate spike functions: what a user of workbench.neurons relies on.

The subthreshold dynamics are checked against an independent solution of the ODE (a matrix
exponential of the linear system, and scipy's solve_ivp), so the propagators are exact for any
dt, not just close for small dt as forward Euler would be.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.integrate import solve_ivp
from scipy.linalg import expm

from workbench.neurons import (
    MODELS,
    STEPS,
    SURROGATES,
    LIFState,
    Surrogate,
    if_step,
    initial_state,
    li_step,
    lif_parameters,
    lif_step,
    propagators,
    surrogate_derivative,
)

F64 = torch.float64
NEVER = 1e9  # a threshold no membrane here reaches


def params(model: str, dt: float = 1.0, **overrides):
    """Per-step constants of ``model`` with its defaults and ``overrides``."""
    return lif_parameters(model, {**MODELS[model].defaults(), **overrides}, dt)


def state(v, i=0.0, refractory=0.0, adaptation=0.0) -> LIFState:
    v = torch.as_tensor(v, dtype=F64).reshape(1, -1)

    def like(x):
        return torch.as_tensor(x, dtype=F64).expand_as(v).clone()

    return LIFState(v, like(i), like(refractory), like(adaptation))


def run(step, p, inputs, start: LIFState, spike_fn=None):
    """Step through ``inputs`` (one value or row per step); returns states and outputs."""
    states, outputs = [], []
    s = start
    for x in inputs:
        s, out = step(s, torch.as_tensor(x, dtype=F64).expand_as(s.v), p, spike_fn)
        states.append(s)
        outputs.append(out)
    return states, torch.stack(outputs)[:, 0]


def exact_solution(v0, i0, t, tau_mem, tau_syn, v_leak):
    """``(V(t), I(t))`` of tau_syn I' = -I, tau_mem V' = -(V - v_leak) + I: the matrix
    exponential of the linear system on ``(V, I, 1)``."""
    a = np.array(
        [[-1 / tau_mem, 1 / tau_mem, v_leak / tau_mem], [0.0, -1 / tau_syn, 0.0], [0, 0, 0]]
    )
    y = expm(a * t) @ np.array([v0, i0, 1.0])
    return float(y[0]), float(y[1])


# --------------------------------------------------------------------------------- propagators
TAUS = [(20.0, 5.0), (5.0, 20.0), (10.0, 10.0), (8.0, 8.0 * (1 + 1e-10)), (8.0, 8.0 * (1 + 1e-4))]


@pytest.mark.parametrize(("tau_mem", "tau_syn"), TAUS)
@pytest.mark.parametrize("dt", [0.1, 0.5, 1.0, 3.0, 25.0])
def test_one_lif_step_equals_the_exact_solution_of_the_ode(dt, tau_mem, tau_syn):
    v0, i0, v_leak = 0.7, 1.3, -0.3
    p = params("lif", dt, tau_mem=tau_mem, tau_syn=tau_syn, v_leak=v_leak, threshold=NEVER)
    new, spikes = lif_step(state(v0, i0), torch.zeros(1, 1, dtype=F64), p)
    v_exact, i_exact = exact_solution(v0, i0, dt, tau_mem, tau_syn, v_leak)
    assert new.v.item() == pytest.approx(v_exact, rel=1e-9, abs=1e-12)
    assert new.i.item() == pytest.approx(i_exact, rel=1e-12, abs=1e-15)
    assert spikes.item() == 0.0


@pytest.mark.parametrize(("tau_mem", "tau_syn"), [(20.0, 5.0), (10.0, 10.0)])
def test_lif_step_matches_solve_ivp(tau_mem, tau_syn):
    v0, i0, v_leak, dt = -0.2, 2.0, 0.1, 2.5

    def rhs(_t, y):
        v, i = y
        return [(-(v - v_leak) + i) / tau_mem, -i / tau_syn]

    sol = solve_ivp(rhs, (0.0, dt), [v0, i0], method="DOP853", rtol=1e-13, atol=1e-14)
    p = params("lif", dt, tau_mem=tau_mem, tau_syn=tau_syn, v_leak=v_leak, threshold=NEVER)
    new, _ = lif_step(state(v0, i0), torch.zeros(1, 1, dtype=F64), p)
    assert new.v.item() == pytest.approx(sol.y[0, -1], abs=1e-11)
    assert new.i.item() == pytest.approx(sol.y[1, -1], abs=1e-11)


@pytest.mark.parametrize("difference", [1e-7, 1e-8, 2e-9])
def test_propagator_gain_stays_exact_when_the_time_constants_nearly_meet(difference):
    mpmath = pytest.importorskip("mpmath")
    dt, tau_mem = 1.0, 8.0
    tau_syn = tau_mem * (1 + difference)
    with mpmath.workdps(40):
        m, s = mpmath.mpf(tau_mem), mpmath.mpf(tau_syn)
        exact = s / (s - m) * (mpmath.exp(-dt / s) - mpmath.exp(-dt / m))
    _, _, gain = propagators(dt, tau_mem, tau_syn)
    assert gain == pytest.approx(float(exact), rel=1e-12)


def test_propagators_are_continuous_where_the_time_constants_meet():
    alpha, beta, gain = propagators(1.0, 10.0, 10.0)
    for tau_syn in (10.0 * (1 + 1e-6), 10.0 * (1 - 1e-6)):
        a, b, g = propagators(1.0, 10.0, tau_syn)
        assert g == pytest.approx(gain, rel=1e-5)
    assert alpha == beta == math.exp(-0.1)
    assert gain == pytest.approx(0.1 * math.exp(-0.1), rel=1e-15)


@pytest.mark.parametrize(("tau_mem", "tau_syn"), [(20.0, 5.0), (10.0, 10.0)])
def test_exact_propagator_composes_where_forward_euler_would_not(tau_mem, tau_syn):
    v0, i0, v_leak = 0.4, 3.0, 0.2
    fine = params("lif", 0.1, tau_mem=tau_mem, tau_syn=tau_syn, v_leak=v_leak, threshold=NEVER)
    coarse = params("lif", 1.0, tau_mem=tau_mem, tau_syn=tau_syn, v_leak=v_leak, threshold=NEVER)
    states, _ = run(lif_step, fine, [0.0] * 10, state(v0, i0))
    one, _ = lif_step(state(v0, i0), torch.zeros(1, 1, dtype=F64), coarse)
    assert states[-1].v.item() == pytest.approx(one.v.item(), rel=1e-12)
    assert states[-1].i.item() == pytest.approx(one.i.item(), rel=1e-12)

    # the same comparison for forward Euler differs visibly: the check above has teeth
    def euler(v, i, dt, n):
        for _ in range(n):
            v, i = v + dt / tau_mem * (-(v - v_leak) + i), i - dt / tau_syn * i
        return v, i

    assert abs(euler(v0, i0, 0.1, 10)[0] - euler(v0, i0, 1.0, 1)[0]) > 1e-3


def test_input_reaches_the_current_at_once_and_the_membrane_one_step_later():
    p = params("lif", threshold=NEVER)
    states, _ = run(lif_step, p, [2.0, 0.0, 0.0], state(0.0))
    assert states[0].v.item() == 0.0 and states[0].i.item() == 2.0
    assert states[1].v.item() == pytest.approx(p.current_gain * 2.0, rel=1e-15)
    assert states[1].i.item() == pytest.approx(p.alpha * 2.0, rel=1e-15)


@pytest.mark.parametrize("model", ["lif", "alif", "li"])
def test_tau_syn_zero_is_a_delta_synapse_in_the_steps_and_the_fused_loop(model):
    """tau_syn = 0: no synaptic current; an input of weight w moves V by exactly w one step
    after it arrives (the current-based form's ordering), then V decays by beta to v_leak."""
    from workbench.fused import lif_scan

    dt, tau_mem, v_leak, w = 0.5, 8.0, 0.1, 0.7
    overrides = {"tau_mem": tau_mem, "tau_syn": 0.0, "v_leak": v_leak}
    if model != "li":
        overrides["threshold"] = NEVER
    p = params(model, dt, **overrides)
    beta = math.exp(-dt / tau_mem)
    assert (p.alpha, p.beta, p.current_gain) == (0.0, beta, 1.0)
    assert propagators(dt, tau_mem, 0.0) == (0.0, beta, 1.0)
    drive = [0.0, w, 0.0, 0.0, 0.0, -2 * w, 0.0]
    step = li_step if model == "li" else lif_step
    states, _ = run(step, p, drive, state(v_leak))
    v = [s.v.item() for s in states]
    assert v[0] == v[1] == pytest.approx(v_leak, abs=1e-15)  # the input of step 1 not yet
    assert v[2] == pytest.approx(v_leak + w, rel=1e-15)  # ... jumps by w in step 2
    assert v[3] == pytest.approx(v_leak + beta * w, rel=1e-14)  # then decays by beta
    assert v[4] == pytest.approx(v_leak + beta**2 * w, rel=1e-14)
    assert v[6] == pytest.approx(v_leak + beta**4 * w - 2 * w, rel=1e-14)
    assert [s.i.item() for s in states] == drive  # I holds only this step's input

    if model == "alif":
        return  # the fused loop runs lif and li populations (an alif's AHP current steps)
    # the fused loop runs the same recursion (spiking here, with a reachable threshold)
    if model != "li":
        overrides["threshold"] = 0.5
        p = params(model, dt, **overrides)
    x = torch.tensor(drive * 3, dtype=F64).reshape(-1, 1, 1) * torch.linspace(0.5, 2.0, 4)
    fused_out, fused_v, fused_i = lif_scan(x, None, p, model != "li", Surrogate())
    states, outputs = run(step, p, x[:, 0], initial_state((1, 4), p, dtype=F64))
    # last bits only: the fused loop associates the leak term differently ((1 - beta) v_leak)
    torch.testing.assert_close(fused_v[:, 0], torch.cat([s.v for s in states]), rtol=0, atol=1e-12)
    torch.testing.assert_close(fused_i[:, 0], torch.cat([s.i for s in states]), rtol=0, atol=0)
    if model == "lif":
        assert torch.equal(fused_out[:, 0], outputs)
        assert outputs.sum() > 2  # the comparison covers spikes and resets


def test_resting_state_is_at_v_leak_and_stays_there():
    p = params("lif", v_leak=-0.5)
    start = initial_state((2, 3), p, dtype=F64)
    assert torch.equal(start.v, torch.full((2, 3), -0.5, dtype=F64))
    assert not start.i.any() and not start.refractory.any() and not start.adaptation.any()
    states, spikes = run(lif_step, p, [0.0] * 20, start)
    torch.testing.assert_close(states[-1].v, start.v, rtol=0, atol=1e-15)
    assert not spikes.any()


def test_li_has_the_subthreshold_dynamics_of_lif():
    p_li = params("li", 0.5, tau_mem=7.0, tau_syn=3.0, v_leak=0.2)
    p_lif = params("lif", 0.5, tau_mem=7.0, tau_syn=3.0, v_leak=0.2, threshold=NEVER)
    drive = [0.3, -1.0, 2.0, 0.0, 0.5]
    li_states, _ = run(li_step, p_li, drive, state([0.1, -0.4], [0.5, 0.0]))
    lif_states, _ = run(lif_step, p_lif, drive, state([0.1, -0.4], [0.5, 0.0]))
    for a, b in zip(li_states, lif_states, strict=True):
        assert torch.equal(a.v, b.v) and torch.equal(a.i, b.i)


# --------------------------------------------------------------------------------- spikes, reset
def _pre_reset_v(v0, i0, **overrides):
    p = params("lif", **{**overrides, "threshold": NEVER})
    return lif_step(state(v0, i0), torch.zeros(1, len(v0), dtype=F64), p)[0].v


def test_spike_when_the_membrane_reaches_threshold():
    p = params("if", threshold=1.0, reset="zero")
    _, spikes = if_step(state([0.0, 0.0, 0.0]), torch.tensor([[0.999, 1.0, 1.5]], dtype=F64), p)
    assert spikes.tolist() == [[0.0, 1.0, 1.0]]


def test_reset_to_zero_sets_spiking_neurons_to_v_reset_only():
    v0, i0 = [0.9, 0.1], [5.0, 0.0]
    pre = _pre_reset_v(v0, i0, v_reset=-0.25)
    assert pre[0, 0] >= 1.0 > pre[0, 1]
    p = params("lif", threshold=1.0, reset="zero", v_reset=-0.25)
    new, spikes = lif_step(state(v0, i0), torch.zeros(1, 2, dtype=F64), p)
    assert spikes.tolist() == [[1.0, 0.0]]
    assert new.v[0, 0].item() == pytest.approx(-0.25, abs=1e-15)
    assert new.v[0, 1].item() == pre[0, 1].item()


def test_reset_by_subtraction_keeps_the_overshoot():
    v0, i0 = [0.9, 0.1], [30.0, 0.0]
    pre = _pre_reset_v(v0, i0)
    assert pre[0, 0] >= 2.0  # well over threshold: only one threshold is subtracted
    p = params("lif", threshold=1.0, reset="subtract")
    new, spikes = lif_step(state(v0, i0), torch.zeros(1, 2, dtype=F64), p)
    assert spikes.tolist() == [[1.0, 0.0]]
    assert new.v[0, 0].item() == pre[0, 0].item() - 1.0
    assert new.v[0, 1].item() == pre[0, 1].item()


@pytest.mark.parametrize("steps", [1, 3, 5])
@pytest.mark.parametrize("reset", ["zero", "subtract"])
def test_refractory_steps_clamp_the_membrane_and_block_spikes_for_exactly_that_long(steps, reset):
    p = params("lif", refractory_steps=steps, reset=reset, v_reset=-0.5)
    states, spikes = run(lif_step, p, [100.0] * 40, state(0.0))
    times = torch.nonzero(spikes[:, 0]).flatten().tolist()
    assert times[0] == 1  # the input reaches the membrane one step after it arrives
    assert np.diff(times).tolist() == [steps + 1] * (len(times) - 1)
    for t in times[:-1]:
        for k in range(1, steps + 1):
            assert states[t + k].v.item() == -0.5
            assert states[t + k].refractory.item() == steps - k
    # without a refractory period the same drive fires every step
    _, free = run(lif_step, params("lif", reset=reset), [100.0] * 40, state(0.0))
    assert free[1:].all()


def test_if_refractory_steps_block_spikes():
    p = params("if", refractory_steps=2, threshold=1.0)
    states, spikes = run(if_step, p, [5.0] * 12, state(0.0))
    assert torch.nonzero(spikes[:, 0]).flatten().tolist() == [0, 3, 6, 9]
    assert states[1].v.item() == states[2].v.item() == 0.0


def test_if_has_no_leak_and_integrates_input_in_the_same_step():
    p = params("if", threshold=NEVER)
    drive = [0.5, 0.0, 0.0, 0.25, -0.125, 0.0, 0.0, 0.0]
    states, spikes = run(if_step, p, drive, state(0.0))
    assert [s.v.item() for s in states] == list(np.cumsum(drive))
    assert not spikes.any()
    held, _ = run(if_step, p, [0.0] * 50, state(0.5))
    assert held[-1].v.item() == 0.5
    # LIF sees the same pulse one step later, and decays back to rest
    lif_states, _ = run(lif_step, params("lif", threshold=NEVER), drive, state(0.0))
    assert lif_states[0].v.item() == 0.0 < lif_states[1].v.item()
    leaky, _ = run(lif_step, params("lif", threshold=NEVER), [0.0] * 50, state(0.5))
    assert leaky[-1].v.item() < 0.5 * math.exp(-49 / 20)


def test_if_spikes_in_the_step_its_input_arrives_and_subtracts_threshold_by_default():
    p = params("if", threshold=1.0)
    assert MODELS["if"].defaults()["reset"] == "subtract"
    new, spikes = if_step(state(0.0), torch.tensor([[1.25]], dtype=F64), p)
    assert spikes.item() == 1.0
    assert new.v.item() == 0.25


def test_li_never_spikes_and_outputs_its_membrane():
    assert not MODELS["li"].spiking and "threshold" not in MODELS["li"].params
    p = params("li")
    states, out = run(li_step, p, [1000.0] * 10, state(0.0))
    assert out[-1].item() > 100.0  # far above any threshold, and no spike or reset
    assert torch.equal(out, torch.stack([s.v[0] for s in states]))


def test_steps_table_maps_every_model():
    assert set(STEPS) == set(MODELS)
    assert STEPS["alif"] is lif_step and STEPS["if"] is if_step and STEPS["li"] is li_step


# --------------------------------------------------------------------------------- ALIF
ALIF = dict(tau_mem=20.0, tau_syn=5.0, threshold=1.0, tau_adapt=100.0, adapt_strength=0.5)
DRIVE = 3.0 * (1 - math.exp(-1 / 5.0))  # a constant input whose steady current is 3


def test_alif_ahp_current_grows_with_each_spike():
    p = params("alif", **ALIF)
    states, spikes = run(lif_step, p, [DRIVE] * 200, state(0.0))
    decay = math.exp(-1 / ALIF["tau_adapt"])
    previous = 0.0
    for s, z in zip(states, spikes[:, 0], strict=True):
        a = s.adaptation.item()
        assert a == pytest.approx(decay * previous + ALIF["adapt_strength"] * z.item(), rel=1e-14)
        previous = a
    at_spikes = [states[t].adaptation.item() for t in torch.nonzero(spikes[:, 0]).flatten()]
    assert len(at_spikes) >= 4
    assert all(b > a for a, b in zip(at_spikes[:4], at_spikes[1:5], strict=False))


def test_alif_ahp_current_decays_with_tau_adapt_and_hyperpolarises():
    p = params("alif", **ALIF)
    states, spikes = run(lif_step, p, [0.0] * 50, state(0.0, adaptation=1.0))
    assert not spikes.any()
    for k, s in enumerate(states, start=1):
        assert s.adaptation.item() == pytest.approx(math.exp(-k / ALIF["tau_adapt"]), rel=1e-12)
    assert states[0].v.item() < 0.0  # the AHP current is outward


def test_alif_fires_less_than_lif_under_the_same_drive_and_its_intervals_lengthen():
    lif = params("lif", **{k: v for k, v in ALIF.items() if k in MODELS["lif"].params})
    _, lif_spikes = run(lif_step, lif, [DRIVE] * 300, state(0.0))
    _, alif_spikes = run(lif_step, params("alif", **ALIF), [DRIVE] * 300, state(0.0))
    assert lif_spikes.sum() >= 10
    assert 0 < alif_spikes.sum() < lif_spikes.sum()
    intervals = np.diff(torch.nonzero(alif_spikes[:, 0]).flatten().numpy())
    assert intervals[-1] > intervals[0]
    assert np.ptp(np.diff(torch.nonzero(lif_spikes[:, 0]).flatten().numpy())[1:]) <= 1


def test_alif_without_adaptation_is_lif():
    drive = [DRIVE * 2] * 60
    alif = params("alif", **{**ALIF, "adapt_strength": 0.0})
    lif = params("lif", **{k: v for k, v in ALIF.items() if k in MODELS["lif"].params})
    a_states, a_spikes = run(lif_step, alif, drive, state(0.0))
    l_states, l_spikes = run(lif_step, lif, drive, state(0.0))
    assert torch.equal(a_spikes, l_spikes) and a_spikes.any()
    assert all(torch.equal(a.v, b.v) for a, b in zip(a_states, l_states, strict=True))


# --------------------------------------------------------------------------------- surrogates
def documented(kind: str, x: torch.Tensor, scale: float) -> torch.Tensor:
    """The pseudo-derivatives as documented, written out independently."""
    if kind == "superspike":
        return 1.0 / (scale * x.abs() + 1.0) ** 2
    if kind == "arctan":
        return 1.0 / (1.0 + (math.pi / 2 * scale * x) ** 2)
    return (1.0 - scale * x.abs()).clamp(min=0.0)


X = torch.tensor([-3.0, -1.0, -0.2, -1e-12, -0.0, 0.0, 1e-12, 0.05, 0.2, 1.0, 3.0], dtype=F64)


@pytest.mark.parametrize("kind", SURROGATES)
@pytest.mark.parametrize("scale", [0.5, 1.0, 10.0, 100.0])
def test_surrogate_forward_is_exactly_the_heaviside_step(kind, scale):
    out = Surrogate(kind, scale)(X)
    assert out.dtype == F64
    assert torch.equal(out, (X >= 0).to(F64))
    assert set(out.tolist()) == {0.0, 1.0}


@pytest.mark.parametrize("kind", SURROGATES)
@pytest.mark.parametrize("scale", [0.5, 1.0, 10.0])
def test_surrogate_backward_equals_the_documented_formula(kind, scale):
    x = torch.linspace(-2, 2, 81, dtype=F64).requires_grad_()
    upstream = torch.linspace(0.5, 1.5, 81, dtype=F64)
    (Surrogate(kind, scale)(x) * upstream).sum().backward()
    torch.testing.assert_close(
        x.grad, upstream * documented(kind, x.detach(), scale), rtol=1e-14, atol=0
    )


@pytest.mark.parametrize(
    ("kind", "scale", "x", "expected"),
    [
        ("superspike", 10.0, 0.1, 0.25),
        ("superspike", 1.0, -1.0, 0.25),
        ("arctan", 1.0, 2 / math.pi, 0.5),
        ("arctan", 2.0, -1 / math.pi, 0.5),
        ("triangle", 2.0, 0.25, 0.5),
        ("triangle", 2.0, -0.75, 0.0),
    ],
)
def test_surrogate_derivative_at_hand_computed_points(kind, scale, x, expected):
    got = surrogate_derivative(torch.tensor(x, dtype=F64), kind, scale).item()
    assert got == pytest.approx(expected, rel=1e-14)


@pytest.mark.parametrize("kind", SURROGATES)
def test_each_surrogate_peaks_at_one_at_threshold_and_narrows_with_scale(kind):
    x = torch.arange(-100, 101, dtype=F64) / 100
    previous = None
    for scale in (1.0, 2.0, 5.0, 20.0):
        d = surrogate_derivative(x, kind, scale)
        assert d[100].item() == 1.0 and x[100].item() == 0.0
        assert d.max().item() == 1.0 and (d[torch.arange(201) != 100] < 1.0).all()
        assert torch.equal(d, d.flip(0))  # symmetric about the threshold
        if previous is not None:
            off = x.abs() > 0
            assert (d[off] <= previous[off]).all() and (d[off] < previous[off]).any()
            assert (d > 0.5).sum() < (previous > 0.5).sum()  # narrower half-width
        previous = d


@pytest.mark.parametrize("kind", ["sigmoid", "", "SuperSpike"])
def test_unknown_surrogate_kind_raises_naming_field_and_choices(kind):
    with pytest.raises(ValueError, match=r"surrogate\.kind") as info:
        Surrogate(kind)
    for name in SURROGATES:
        assert name in str(info.value)
    with pytest.raises(ValueError, match="choose one of"):
        surrogate_derivative(X, kind, 1.0)


@pytest.mark.parametrize("scale", [0.0, -1.0, math.nan, math.inf])
def test_invalid_surrogate_scale_raises_naming_field_and_range(scale):
    with pytest.raises(ValueError, match=r"surrogate\.scale.*finite number > 0"):
        Surrogate("arctan", scale)


def test_lif_step_with_a_surrogate_spikes_as_without_and_has_gradients():
    p = params("lif", threshold=1.0)
    drive = torch.tensor([[0.5, 3.0, 6.0, 9.0]], dtype=F64, requires_grad=True)
    start = state([0.8, 0.8, 0.8, 0.8], [0.5, 3.0, 6.0, 9.0])
    plain, z_plain = lif_step(start, drive, p)
    smooth, z_smooth = lif_step(start, drive, p, Surrogate("superspike", 10.0))
    assert torch.equal(z_plain, z_smooth) and z_plain.any() and not z_plain.all()
    assert torch.equal(plain.v, smooth.v)
    v_start = start.v.clone().requires_grad_()
    _, z = lif_step(start._replace(v=v_start), drive, p, Surrogate("superspike", 10.0))
    z.sum().backward()
    distance = (p.beta * start.v + p.current_gain * start.i) - 1.0
    torch.testing.assert_close(v_start.grad, p.beta * documented("superspike", distance, 10.0))
