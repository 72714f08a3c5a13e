"""Local learning: unsupervised plasticity (pair-based STDP or VDSP), then a supervised readout.

Both algorithms train the same network, ``input -> hidden -> output``, in two stages per epoch.

**Unsupervised stage** (no labels, no gradients; in the style of Diehl & Cook 2015).  The hidden
population (``lif`` or ``if``, resting and reset potential 0) sees the encoded input through
excitatory weights ``W`` in ``[0, w_max]``; it carries

- *lateral inhibition*: every hidden spike sends ``-inhibition`` to every other hidden neuron,
  a fixed recurrent projection ``hidden -> hidden`` (zero diagonal) that arrives one step later,
  so the first neuron to fire suppresses the rest (soft winner-take-all);
- *adaptive thresholds* (homeostasis): neuron ``j`` fires at ``threshold + theta_j``, with
  ``theta_j <- theta_j exp(-dt / tau_theta) + theta_plus z_j`` every step (``z_j``: its spikes),
  so a neuron that wins often becomes harder to fire and every neuron gets to learn.

Each presentation starts from rest; ``W`` and ``theta`` change every time step, summed over the
samples of a batch (``batch_size = 1`` is the fully online rule).  The two rules:

``stdp`` -- pair-based STDP with all-to-all pairing through traces (Song, Miller & Abbott 2000;
Morrison, Diesmann & Gerstner 2008).  Every step the presynaptic traces ``x_i`` (one per input)
and postsynaptic traces ``y_j`` decay by ``exp(-dt / tau_plus)`` and ``exp(-dt / tau_minus)``;
then::

    dW_ji = a_plus z_j x_i - a_minus s_i y_j        (s_i: input spikes of this step)

and only then ``x += s``, ``y += z``.  A pre spike ``d`` steps before a post spike adds
``a_plus exp(-d dt / tau_plus)``; a post spike ``d`` steps before a pre spike takes away
``a_minus exp(-d dt / tau_minus)``; spikes of the same step do not pair (a pre spike reaches the
membrane one step later, so it cannot have caused a post spike of its own step).  Weights are
clipped to ``[0, w_max]`` after every step and, with ``normalise > 0``, each hidden neuron's
incoming weights are rescaled after every batch to sum to ``normalise`` (Diehl & Cook's
normalisation: potentiating the active inputs then depresses the others).

``vdsp`` -- voltage-dependent synaptic plasticity (Garg et al. 2022, Front. Neurosci.
16:983950): weights change only when the *postsynaptic* neuron spikes, by an amount whose sign and
size are set by the *presynaptic* neuron's membrane potential at that moment.  The input layer
is modelled as neurons with a potential: input neuron ``i`` has a membrane ``u_i`` (in units of
its threshold) that rests at 1 (charged, ready to fire; the encoder decides when it fires), is
reset to 0 by each of its spikes and recovers towards rest with ``tau_pre``::

    u_i <- 1 - (1 - u_i) exp(-dt / tau_pre)     (and after the update below: u_i <- 0 if s_i)

A low potential means the input fired shortly before (pre before post: potentiate); a high one
means it has not fired for a while or is about to fire (post before pre: depress).  At a spike
of hidden neuron ``j``::

    dW_ji = + eta_pot (w_max - W_ji) (v_switch - u_i) / v_switch          if u_i <  v_switch
    dW_ji = - eta_dep  W_ji          (u_i - v_switch) / (1 - v_switch)    if u_i >= v_switch

The factors ``(w_max - W)`` and ``W`` are the rule's weight regularisation (soft bounds), which
keep the weights in ``[0, w_max]`` without normalisation (the digits reference uses none).  What
is taken from the paper is the structure: updates at post spikes only, sign and size from the
pre potential, weight-dependent bounds; the magnitude here is linear in the distance from
``v_switch``, not the paper's exact functional form.  Input spikes of the step of the post spike
meet a not-yet-reset (high) potential: depression.

**Supervised stage** (the hidden layer frozen, ``theta`` frozen).  The network's forward pass is
run over the training set and two readouts are fitted to the hidden responses, both reported:

- *label assignment* (Diehl & Cook): each hidden neuron is assigned the class for which its mean
  spike count is highest (neurons that never fire stay unassigned); a sample is classified by
  the mean spike count of the neurons assigned to each class.  Its validation and test accuracy
  are ``val_assignment_accuracy`` / ``test_assignment_accuracy`` (History rows and metrics).
- *linear readout*: the ``hidden -> output`` weights.  The output population is a leaky
  integrator whose response to a spike must keep rising over the whole presentation (a long
  ``tau_mem``; checked), so its membrane at the last step is ``V = W_out f`` with ``f_j`` hidden
  neuron ``j``'s spike count weighted by that response (spikes of the last ``~tau_syn`` ms count
  less).  ``W_out`` is a multinomial logistic regression on ``f`` (L2 ``readout_l2``, L-BFGS,
  no bias), each column then shifted by its minimum over the classes: that leaves every
  sample's class ranking unchanged and makes ``W_out >= 0``, so ``V`` never falls and the
  network's own ``max_membrane`` score equals the regression's logits plus a per-sample
  constant.  ``workbench.experiment.measure`` therefore reports this readout as the run's
  ``val_accuracy`` / ``test_accuracy`` (and its cross-entropy as the losses).

The adaptive thresholds are folded into the network's weights: a neuron with rest and reset at
0 and threshold ``th + theta_j`` fires exactly when the same neuron with threshold ``th`` and
all incoming weights (input and inhibition) scaled by ``th / (th + theta_j)`` does.  So the run
folder holds a plain float network with the thresholds of its spec.

Events and History as for surrogate training: ``RunStart``, ``BatchEnd`` (``loss`` is NaN: the
unsupervised stage minimises no loss; ``accuracy`` is the batch's label-assignment accuracy
with the previous epoch's assignments, NaN in the first epoch), ``SampleRecorded`` every
``sample_every`` batches, ``EpochEnd``, ``RunEnd``.  A row's ``train_loss`` and
``train_accuracy`` are the linear readout's on the training set; ``lr`` is the potentiation
rate (``a_plus`` or ``eta_pot``); extra columns: ``train_assignment_accuracy``,
``val_assignment_accuracy``, ``theta_mean``.  The best validation epoch (linear readout) is kept,
and ``History.extra`` holds its ``val_assignment_accuracy`` and the ``test_assignment_accuracy``
(computed once, after training), which ``experiment.train`` adds to the run's metrics.

Scales in the digits reference: at 1000 Hz a bright input spikes nearly every 1 ms step, so an
additive STDP trace with ``tau_plus = 20`` ms sums to ~20, which is why ``a_plus`` is 3e-5;
depression is half as strong (``a_minus``), since with rate-coded inputs balanced STDP cancels
to noise and the Hebbian surplus is what (with normalisation) moves a neuron's weights towards
the inputs it wins.  The thresholds settle near ``theta_plus * (spikes per ms) * tau_theta``.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import time
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F

from workbench.algorithms import Algorithm, register_algorithm
from workbench.algorithms.loop import first_epoch, progress, progress_schema, restored_progress
from workbench.data import make_loaders
from workbench.neurons import STEPS, initial_state, li_step
from workbench.recording import to_dataset
from workbench.spec import INPUT, NetworkSpec, Problem, Projection, SpecError
from workbench.store import (
    Maybe,
    TensorLike,
    like,
    load_random_state,
    random_schema,
    random_state,
)
from workbench.training import (
    EVAL_BATCH_SIZE,
    BatchEnd,
    EpochEnd,
    History,
    Interrupted,
    RunEnd,
    RunStart,
    SampleRecorded,
    emit,
    evaluate,
    interruptible,
)

LOCAL_READOUTS = ("max_membrane",)  # the linear readout is the output leaky integrator's


# ------------------------------------------------------------------------------------ configs


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


@dataclass
class LocalConfig:
    """What both local rules share: the stage around the plasticity, and the readout.

    The defaults are the digits reference's (thresholds 1, rate-coded inputs up to 1000 Hz);
    the weight scale (``normalise``, ``w_max``) goes with the number of inputs and their rates.
    """

    epochs: int = 10
    batch_size: int = 16  # samples presented together; weight changes are summed over them
    inhibition: float = 30.0  # lateral inhibition: weight of every hidden -> other hidden synapse
    theta_plus: float = 0.0125  # threshold increase per spike (homeostasis)
    tau_theta: float = 2e4  # ms; decay of the threshold increase
    w_max: float = 1.0  # weights stay in [0, w_max]
    normalise: float = 0.0  # each hidden neuron's input weights sum to this after a batch; 0: off
    readout: str = "max_membrane"
    readout_l2: float = 0.01  # L2 penalty of the linear readout's logistic regression
    readout_iterations: int = 200  # L-BFGS iterations of the linear readout
    patience: int = 0  # stop after this many epochs without a better validation accuracy; 0: off
    sample_every: int = 50  # batches between recorded training samples (events); 0: never

    _positive_ints = ("epochs", "batch_size", "readout_iterations")
    _counts = ("patience", "sample_every")
    _positive = ("tau_theta", "w_max")
    _nonnegative = ("inhibition", "theta_plus", "normalise", "readout_l2")

    def problems(self) -> list[Problem]:
        out = []
        for name in self._positive_ints:
            value = getattr(self, name)
            if not (_is_int(value) and value >= 1):
                out.append(Problem(name, f"{value!r} must be an integer >= 1"))
        for name in self._counts:
            value = getattr(self, name)
            if not (_is_int(value) and value >= 0):
                out.append(Problem(name, f"{value!r} must be an integer >= 0"))
        for name in self._positive:
            value = getattr(self, name)
            if not (_is_number(value) and value > 0):
                out.append(Problem(name, f"{value!r} must be a finite number > 0"))
        for name in self._nonnegative:
            value = getattr(self, name)
            if not (_is_number(value) and value >= 0):
                out.append(Problem(name, f"{value!r} must be a finite number >= 0"))
        if self.readout not in LOCAL_READOUTS:
            out.append(
                Problem("readout", f"{self.readout!r} must be one of {list(LOCAL_READOUTS)}")
            )
        return out

    def adapt_spec(self, spec: NetworkSpec) -> NetworkSpec:
        """``spec`` with the lateral inhibition added (``hidden -> hidden``, recurrent; ``fit``
        sets its weights): called by :func:`workbench.experiment.prepare`."""
        hidden = [p.target for p in spec.projections if p.source == INPUT]
        if len(spec.populations) != 2 or len(hidden) != 1:
            sizes = [p.size for p in spec.populations[:-1]]
            raise SpecError(
                [Problem("hidden", f"{sizes} must be one hidden population for local learning")]
            )
        name = hidden[0]
        if any(p.source == name and p.target == name for p in spec.projections):
            return spec
        inhibition = Projection(
            name, name, recurrent=True, weight_mean=-float(self.inhibition), weight_std=0.0
        )
        return dataclasses.replace(spec, projections=[*spec.projections, inhibition]).validate()


@dataclass
class STDPConfig(LocalConfig):
    """Pair-based STDP (see the module docstring for the rule)."""

    normalise: float = 2.0
    a_plus: float = 3e-5  # potentiation per pre-before-post pair at zero delay
    a_minus: float = 1.5e-5  # depression per post-before-pre pair at zero delay
    tau_plus: float = 20.0  # ms; presynaptic trace
    tau_minus: float = 20.0  # ms; postsynaptic trace

    _positive = (*LocalConfig._positive, "tau_plus", "tau_minus")
    _nonnegative = (*LocalConfig._nonnegative, "a_plus", "a_minus")

    def rule(self, dt: float) -> PairSTDP:
        return PairSTDP(self.a_plus, self.a_minus, self.tau_plus, self.tau_minus, dt)

    @property
    def rate(self) -> float:
        return self.a_plus


@dataclass
class VDSPConfig(LocalConfig):
    """Voltage-dependent synaptic plasticity (see the module docstring for the rule)."""

    w_max: float = 0.1
    eta_pot: float = 0.01  # potentiation rate at a just-reset presynaptic potential
    eta_dep: float = 0.02  # depression rate at a presynaptic potential at rest
    tau_pre: float = 2.0  # ms; recovery of an input neuron's potential after its spike
    v_switch: float = 0.5  # presynaptic potential (threshold units) where the sign flips

    _positive = (*LocalConfig._positive, "tau_pre")
    _nonnegative = (*LocalConfig._nonnegative, "eta_pot", "eta_dep")

    def problems(self) -> list[Problem]:
        out = super().problems()
        if not (_is_number(self.v_switch) and 0 < self.v_switch < 1):
            out.append(Problem("v_switch", f"{self.v_switch!r} must be a number in (0, 1)"))
        return out

    def rule(self, dt: float) -> VDSP:
        return VDSP(self.eta_pot, self.eta_dep, self.tau_pre, self.v_switch, dt, self.w_max)

    @property
    def rate(self) -> float:
        return self.eta_pot


# ------------------------------------------------------------------------------------ rules


class PairSTDP:
    """Pair-based STDP through traces; ``__call__`` gives one step's ``dW`` ``[post, pre]``."""

    def __init__(self, a_plus, a_minus, tau_plus, tau_minus, dt):
        self.a_plus, self.a_minus = a_plus, a_minus
        self.decay_pre = math.exp(-dt / tau_plus)
        self.decay_post = math.exp(-dt / tau_minus)
        self.pre_trace = self.post_trace = None

    def start(self, pre: torch.Tensor, post: torch.Tensor) -> None:
        """A new presentation: traces at zero (``pre``/``post`` give their shapes)."""
        self.pre_trace = torch.zeros_like(pre)
        self.post_trace = torch.zeros_like(post)

    def __call__(self, pre, post, w) -> torch.Tensor:
        """``pre`` ``[B, n_in]`` and ``post`` ``[B, n]``: this step's spikes; summed over B."""
        self.pre_trace.mul_(self.decay_pre)
        self.post_trace.mul_(self.decay_post)
        dw = self.a_plus * (post.T @ self.pre_trace) - self.a_minus * (self.post_trace.T @ pre)
        self.pre_trace.add_(pre)
        self.post_trace.add_(post)
        return dw


class VDSP:
    """Voltage-dependent plasticity; ``__call__`` gives one step's ``dW`` ``[post, pre]``."""

    def __init__(self, eta_pot, eta_dep, tau_pre, v_switch, dt, w_max=1.0):
        self.eta_pot, self.eta_dep, self.v_switch, self.w_max = eta_pot, eta_dep, v_switch, w_max
        self.recovery = math.exp(-dt / tau_pre)
        self.potential = None  # the input neurons' membranes, [B, n_in]

    def start(self, pre: torch.Tensor, post: torch.Tensor) -> None:
        """A new presentation: every input neuron at rest (1)."""
        self.potential = torch.ones_like(pre)

    def __call__(self, pre, post, w) -> torch.Tensor:
        u = 1.0 - (1.0 - self.potential) * self.recovery
        potentiate = (self.v_switch - u).clamp(min=0) / self.v_switch
        depress = (u - self.v_switch).clamp(min=0) / (1.0 - self.v_switch)
        dw = self.eta_pot * (self.w_max - w) * (post.T @ potentiate) - self.eta_dep * w * (
            post.T @ depress
        )
        self.potential = u * (1.0 - pre)
        return dw


# ------------------------------------------------------------------------------------ network


@dataclass
class _Layout:
    hidden: str
    output: str
    feed: Projection  # input -> hidden
    inhibition: Projection  # hidden -> hidden
    readout: Projection  # hidden -> output


def _layout(spec: NetworkSpec) -> _Layout:
    """The parts of ``input -> hidden (+ inhibition) -> output``, or every reason it is not."""
    problems = []
    feeds = [p for p in spec.projections if p.source == INPUT]
    if len(spec.populations) != 2 or len(feeds) != 1:
        raise SpecError(
            [Problem("network", "local learning needs input -> one hidden population -> output")]
        )
    hidden, output = feeds[0].target, spec.output_name
    pop = spec.population(hidden)
    if pop.model not in ("lif", "if"):
        problems.append(
            Problem("neuron", f"{pop.model!r} must be 'lif' or 'if' for local learning")
        )
    else:
        for key in ("v_leak", "v_reset"):
            if pop.params.get(key, 0.0) != 0:
                problems.append(
                    Problem(f"neuron_params.{key}", f"{pop.params[key]!r} must be 0 here")
                )
    if spec.population(output).model != "li" or output == hidden:
        problems.append(Problem("readout", "the output population must be an 'li' readout"))
    by_pair = {(p.source, p.target): p for p in spec.projections}
    inhibition = by_pair.get((hidden, hidden))
    readout = by_pair.get((hidden, output))
    if inhibition is None:
        problems.append(
            Problem(
                "network",
                f"needs the lateral inhibition {hidden}->{hidden} (LocalConfig.adapt_spec adds it)",
            )
        )
    if readout is None or len(spec.projections) != 3:
        problems.append(Problem("network", f"needs exactly {INPUT}->{hidden}->{output}"))
    for proj in (feeds[0], inhibition, readout):
        if proj is not None and proj.delay != 0:
            problems.append(Problem("network", f"{proj.name} must have no delay"))
    if problems:
        raise SpecError(problems)
    return _Layout(hidden, output, feeds[0], inhibition, readout)


class Learner:
    """The unsupervised stage's state: raw weights ``w``, thresholds ``theta``, inhibition."""

    def __init__(self, network, config: LocalConfig, rule):
        self.network, self.config, self.rule = network, config, rule
        self.layout = _layout(network.spec)
        self.params = network.neuron_params[self.layout.hidden]
        self.step = STEPS[network.spec.population(self.layout.hidden).model]  # lif or if
        self.dt = network.spec.dt
        with torch.no_grad():
            w = network.weight(self.layout.feed).detach().clone()
        self.w = self._normalised(w.clamp(0.0, config.w_max))
        n = self.w.shape[0]
        self.theta = torch.zeros(n, dtype=self.w.dtype)
        self.w_inh = -config.inhibition * (1.0 - torch.eye(n, dtype=self.w.dtype))
        self.theta_decay = math.exp(-self.dt / config.tau_theta)

    def _normalised(self, w: torch.Tensor) -> torch.Tensor:
        if not self.config.normalise:
            return w
        total = w.sum(dim=1, keepdim=True).clamp(min=1e-12)
        return (w * (self.config.normalise / total)).clamp(max=self.config.w_max)

    @torch.no_grad()
    def present(self, x: torch.Tensor, learn: bool = True) -> torch.Tensor:
        """Run a batch ``x`` ``[T, B, n_in]`` through the hidden layer, changing ``w`` and
        ``theta`` step by step when ``learn``; returns the spike counts ``[B, n]``."""
        x = x.to(self.w.dtype)
        batch = x.shape[1]
        p = self.params
        state = initial_state((batch, self.w.shape[0]), p, self.w.dtype)
        z = torch.zeros(batch, self.w.shape[0], dtype=self.w.dtype)
        counts = torch.zeros_like(z)
        self.rule.start(x[0], z)
        for t in range(x.shape[0]):
            current = x[t] @ self.w.T + z @ self.w_inh.T
            state, z = self.step(state, current, p._replace(threshold=p.threshold + self.theta))
            counts += z
            if learn:
                self.w = (self.w + self.rule(x[t], z, self.w)).clamp_(0.0, self.config.w_max)
                self.theta = self.theta * self.theta_decay + self.config.theta_plus * z.sum(0)
        if learn:
            self.w = self._normalised(self.w)
        return counts

    @torch.no_grad()
    def sync(self) -> None:
        """Write ``w``, the inhibition and ``theta`` (folded into the weights) to the network."""
        scale = (self.params.threshold / (self.params.threshold + self.theta))[:, None]
        self.network.weight(self.layout.feed).copy_(self.w * scale)
        self.network.weight(self.layout.inhibition).copy_(self.w_inh * scale)

    def state(self) -> dict:
        return {"w": self.w.clone(), "theta": self.theta.clone()}

    def load(self, state: dict) -> None:
        self.w, self.theta = state["w"].clone(), state["theta"].clone()


# ------------------------------------------------------------------------------------ readouts


def assign_labels(counts: torch.Tensor, labels: torch.Tensor, n_classes: int) -> torch.Tensor:
    """Each hidden neuron's class: where its mean spike count is highest (-1: never fired)."""
    means = torch.zeros(n_classes, counts.shape[1], dtype=counts.dtype)
    for c in range(n_classes):
        mine = counts[labels == c]
        if len(mine):
            means[c] = mine.mean(dim=0)
    best = means.argmax(dim=0)
    return torch.where(means.amax(dim=0) > 0, best, torch.full_like(best, -1))


def assignment_scores(counts: torch.Tensor, assignments: torch.Tensor, n_classes: int):
    """Per class, the mean spike count of the neurons assigned to it (``[B, classes]``)."""
    onehot = torch.zeros(counts.shape[1], n_classes, dtype=counts.dtype)
    assigned = assignments >= 0
    onehot[assigned.nonzero().flatten(), assignments[assigned]] = 1.0
    return (counts @ onehot) / onehot.sum(dim=0).clamp(min=1.0)


def readout_kernel(params, n_steps: int) -> torch.Tensor:
    """The output leaky integrator's membrane after one input spike, step by step."""
    p = params._replace(v_leak=0.0)
    state = initial_state((1, 1), p, torch.float64)
    out = []
    for t in range(n_steps):
        state, v = li_step(
            state, torch.full((1, 1), 1.0 if t == 0 else 0.0, dtype=torch.float64), p
        )
        out.append(v.item())
    return torch.tensor(out, dtype=torch.float64)


def readout_features(spikes: torch.Tensor, params) -> torch.Tensor:
    """``f``: the output integrator's membrane at the last step per unit weight (``[B, n]``)."""
    p = params._replace(v_leak=0.0)
    state = initial_state(spikes.shape[1:], p, spikes.dtype)
    v = state.v
    for t in range(spikes.shape[0]):
        state, v = li_step(state, spikes[t], p)
    return v


def fit_linear_readout(features, labels, n_classes, l2, iterations) -> tuple[torch.Tensor, float]:
    """Multinomial logistic regression without bias, ``logits = features @ W.T``; returns
    ``(W [classes, n], training cross-entropy)``."""
    x = features.to(torch.float64)
    scale = x.pow(2).mean(dim=0).sqrt().clamp(min=1e-30)  # each feature to unit RMS
    x = x / scale
    w = torch.zeros(n_classes, x.shape[1], dtype=torch.float64, requires_grad=True)
    optimiser = torch.optim.LBFGS(
        [w], lr=1.0, max_iter=iterations, history_size=20, line_search_fn="strong_wolfe"
    )

    def closure():
        optimiser.zero_grad()
        loss = F.cross_entropy(x @ w.T, labels) + 0.5 * l2 * w.pow(2).sum()
        loss.backward()
        return loss

    with torch.enable_grad():
        optimiser.step(closure)
        loss = F.cross_entropy(x @ w.T, labels).item()
    return (w.detach() / scale).to(features.dtype), loss


# ------------------------------------------------------------------------------------ fit


@torch.no_grad()
def _responses(network, layout: _Layout, loader, encoder, fresh: bool):
    """Hidden spike counts, readout features and labels of ``network`` over ``loader``
    (``fresh``: through a copy of ``encoder`` restarted from its seed, as ``evaluate`` does)."""
    if fresh:
        encoder = copy.deepcopy(encoder)
        if hasattr(encoder, "reset"):
            encoder.reset()
    p_out = network.neuron_params[layout.output]
    counts, features, labels = [], [], []
    for x, y in loader:
        spikes = network(encoder(x), record=[layout.hidden]).recordings[layout.hidden]["spikes"]
        counts.append(spikes.sum(dim=0))
        features.append(readout_features(spikes, p_out))
        labels.append(y)
    return torch.cat(counts), torch.cat(features), torch.cat(labels)


def _accuracy(scores: torch.Tensor, labels: torch.Tensor) -> float:
    return (scores.argmax(dim=1) == labels).double().mean().item()


def _check_readout(network, layout: _Layout) -> None:
    """The output's response to a spike must not fall within the run (so max = last step)."""
    kernel = readout_kernel(network.neuron_params[layout.output], network.spec.n_steps)
    if (kernel[1:] < kernel[:-1]).any():
        peak = int(kernel.argmax()) + 1
        duration = network.spec.n_steps * network.spec.dt
        raise SpecError(
            [
                Problem(
                    "readout_params",
                    f"the output's response to a spike peaks after {peak * network.spec.dt:g} "
                    f"ms, within the run ({duration:g} ms); lengthen tau_mem (or tau_syn) so it "
                    "keeps rising",
                )
            ]
        )


def _record_first(network, spikes, label):
    result = network(spikes[:, :1], record=True)
    return to_dataset(
        result.recordings,
        network.spec,
        network.backend_name,
        attrs={"label": int(label)},
        speedup=network.speedup,
    )


def _fit(name: str, network, data, config: LocalConfig, callbacks, stop) -> History:
    problems = config.problems()
    if problems:
        raise SpecError(problems)
    layout = _layout(network.spec)
    _check_readout(network, layout)
    learner = Learner(network, config, config.rule(network.spec.dt))
    n_classes = data.dataset.n_classes
    augment = getattr(data.encoder, "augment", None)  # event data: training batches only
    loaders = make_loaders(data.dataset, config.batch_size, data.seed, augment)
    fixed = make_loaders(data.dataset, EVAL_BATCH_SIZE, data.seed)
    n_batches = len(loaders["train"])
    emit(callbacks, RunStart(name, config.epochs, n_batches, asdict(config)))
    history = History()
    best, best_state, stale = -1.0, None, 0
    assignments = None
    readout = network.weight(layout.readout)
    checkpoint = getattr(data, "checkpoint", None)
    saved = None
    if checkpoint is not None:  # refused unless it has the form of what this loop saves
        weights, rule = like(network.state_dict()), like(learner.state())
        labels = TensorLike(torch.int64, learner.theta.shape)  # one class per hidden neuron
        saved = checkpoint.load(
            expected={
                **progress_schema(config.epochs, (weights, rule, labels)),
                "network": weights,
                "learner": rule,
                "assignments": Maybe(labels),
                "random": random_schema(network, data.encoder, loaders["train"], fixed["train"]),
            }
        )
    if saved is not None:
        with checkpoint.restoring():
            network.load_state_dict(saved["network"])
            learner.load(saved["learner"])
            assignments = saved["assignments"]
            history, best, best_state, stale = restored_progress(saved)
            load_random_state(
                saved["random"], network, data.encoder, loaders["train"], fixed["train"]
            )
    for epoch in range(first_epoch(saved, config), config.epochs + 1):
        started = time.perf_counter()
        interrupted = False
        for batch, (features, labels) in enumerate(loaders["train"], start=1):
            if stop is not None and stop.is_set():  # set during the last batch (or before)
                interrupted = True
                break
            spikes = data.encoder(features)
            before = learner.state()
            try:
                with interruptible():
                    counts = learner.present(spikes)
            except Interrupted:  # a stop inside the batch: undo the batch's learning
                learner.load(before)
                interrupted = True
                break
            accuracy = math.nan
            if assignments is not None:
                accuracy = _accuracy(assignment_scores(counts, assignments, n_classes), labels)
            emit(callbacks, BatchEnd(epoch, batch, n_batches, math.nan, accuracy))
            if config.sample_every and batch % config.sample_every == 0:
                learner.sync()
                emit(
                    callbacks,
                    SampleRecorded(epoch, batch, _record_first(network, spikes, labels[0])),
                )
        # Supervised stage: the hidden layer (and theta) frozen into the network.
        learner.sync()
        counts, feats, labels = _responses(network, layout, fixed["train"], data.encoder, False)
        assignments = assign_labels(counts, labels, n_classes)
        w_out, train_loss = fit_linear_readout(
            feats, labels, n_classes, config.readout_l2, config.readout_iterations
        )
        with torch.no_grad():
            readout.copy_(w_out - w_out.amin(dim=0, keepdim=True))
        val = evaluate(network, fixed["validation"], data.encoder, config.readout)
        val_counts, _, val_labels = _responses(
            network, layout, fixed["validation"], data.encoder, True
        )
        row = {
            "epoch": epoch,
            "train_loss": train_loss,
            "train_accuracy": _accuracy(feats @ w_out.T, labels),
            "val_loss": val["loss"],
            "val_accuracy": val["accuracy"],
            "val_spikes_per_sample": val["spikes_per_sample"],
            "lr": config.rate,
            "seconds": time.perf_counter() - started,
            "train_assignment_accuracy": _accuracy(
                assignment_scores(counts, assignments, n_classes), labels
            ),
            "val_assignment_accuracy": _accuracy(
                assignment_scores(val_counts, assignments, n_classes), val_labels
            ),
            "theta_mean": learner.theta.mean().item(),
        }
        history.append(row)
        emit(callbacks, EpochEnd(epoch, row))
        if val["accuracy"] > best:
            best, stale, history.best_epoch = val["accuracy"], 0, epoch
            best_state = (
                {k: v.detach().clone() for k, v in network.state_dict().items()},
                learner.state(),
                assignments.clone(),
            )
        else:
            stale += 1
        if interrupted or (stop is not None and stop.is_set()):
            history.stopped = True
            break
        if checkpoint is not None and checkpoint.due(epoch):
            checkpoint.save(
                {
                    **progress(epoch, history, best, best_state, stale),
                    "network": network.state_dict(),
                    "learner": learner.state(),
                    "assignments": assignments,
                    "random": random_state(network, data.encoder, loaders["train"], fixed["train"]),
                }
            )
        if config.patience and stale >= config.patience:
            break
    if best_state is not None:
        network.load_state_dict(best_state[0])
        learner.load(best_state[1])
        assignments = best_state[2]
        test_counts, _, test_labels = _responses(network, layout, fixed["test"], data.encoder, True)
        history.extra.update(
            val_assignment_accuracy=history.rows[history.best_epoch - 1]["val_assignment_accuracy"],
            test_assignment_accuracy=_accuracy(
                assignment_scores(test_counts, assignments, n_classes), test_labels
            ),
        )
    emit(callbacks, RunEnd(history, history.stopped))
    return history


def fit_stdp(network, data, config: STDPConfig | None = None, callbacks=(), stop=None) -> History:
    """Train ``network`` with pair-based STDP, then its readouts (see the module docstring)."""
    return _fit("stdp", network, data, config or STDPConfig(), callbacks, stop)


def fit_vdsp(network, data, config: VDSPConfig | None = None, callbacks=(), stop=None) -> History:
    """Train ``network`` with VDSP, then its readouts (see the module docstring)."""
    return _fit("vdsp", network, data, config or VDSPConfig(), callbacks, stop)


# Reference configurations (overrides of the dataset's; see workbench.experiment).  Digits:
# 64 rate-coded inputs (1000 Hz for a full pixel) presented for 100 steps of 1 ms, 100 LIF
# hidden neurons with lateral inhibition, a 10-neuron leaky-integrator readout whose response
# to a spike keeps rising over the 100 ms (tau_mem 1e6 ms, tau_syn 10 ms).
_DIGITS_NETWORK = {
    "hidden": [100],
    "neuron": "lif",
    "neuron_params": {"tau_mem": 20.0, "tau_syn": 5.0},
    "readout": "li",
    "readout_params": {"tau_mem": 1e6, "tau_syn": 10.0},
    "weight_init": {
        "input->hidden": {"weight_mean": 0.05, "weight_std": 0.02},
        "hidden->output": {"weight_mean": 0.0, "weight_std": 0.0},
    },
    "dt": 1.0,
    "n_steps": 100,
    "encoder": {"name": "rate", "max_rate_hz": 1000.0},
}
_DIGITS_LOOP = {
    "epochs": 10,
    "batch_size": 16,
    "inhibition": 30.0,
    "theta_plus": 0.0125,
    "tau_theta": 2e4,
    "readout_l2": 0.01,
}
STDP_REFERENCES = {
    "digits": {
        **_DIGITS_NETWORK,
        "training": {**_DIGITS_LOOP, "normalise": 2.0, "a_plus": 3e-5, "a_minus": 1.5e-5},
    }
}
VDSP_REFERENCES = {
    "digits": {
        **_DIGITS_NETWORK,
        "training": {
            **_DIGITS_LOOP,
            "w_max": 0.1,
            "eta_pot": 0.01,
            "eta_dep": 0.02,
            "tau_pre": 2.0,
        },
    }
}

register_algorithm(
    Algorithm(
        name="stdp",
        title="Pair-based STDP + readout",
        fit=fit_stdp,
        config_class=STDPConfig,
        references=STDP_REFERENCES,
    )
)
register_algorithm(
    Algorithm(
        name="vdsp",
        title="Voltage-dependent plasticity (VDSP) + readout",
        fit=fit_vdsp,
        config_class=VDSPConfig,
        references=VDSP_REFERENCES,
    )
)
