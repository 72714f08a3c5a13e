"""Proxy training: a ReLU network that shares the spiking network's weights carries its gradient.

Kheradpisheh, Mirsadeghi & Masquelier (2022), "Spiking neural networks trained via proxy",
IEEE Access 10, 70769-70778.  A network of integrate-and-fire (IF) neurons and an ANN of ReLU
units with the same architecture share their weights; their forward passes are independent.
The firing rate of an IF neuron (no leak, reset by subtraction) approximates a ReLU of its mean
input current, so the ANN is the spiking network's rate model, and its backward pass trains the
spiking network:

- **The spiking network** runs on the batch's input spikes (its own forward pass, without a
  gradient).  Its output is the output neurons' **spike counts** over the run, as in the
  authors' code (an IF output layer whose spike counter is the prediction), so the readout is
  ``spike_count``.
- **The ANN** runs on the analog counterpart of that input: the input spikes averaged over
  time, i.e. each input channel's firing rate per step (the encoded value itself for a code
  that is constant in time, such as the thermometer code of the ``ternary`` encoder).  A
  hidden unit is ``relu(W a) / threshold``, the rate per step an IF neuron reaches on that
  mean current; the output is the linear ``n_steps * (W a) / threshold``, the spike count in
  the same units (the authors' ANN has no ReLU after its last layer, so a silent output neuron
  still gets a gradient).  Delays are ignored: they shift spikes, not rates.
- **The loss** is the workbench's readout loss (cross-entropy on the class scores) of the
  ANN output with the spiking network's counts substituted:
  ``ann + (snn - ann).detach()`` has the value of the spike counts and the gradient of the
  ANN, so ``dL/dW`` is the ANN's backward pass evaluated at ``dL/d(output)`` of the spiking
  network.  (The authors' notebook copies the counts into the ANN output in place and uses a
  mean squared error against one-hot targets; the substitution is the same.)

Everything else (Adam, schedule, events, validation with the spiking network, early stopping,
best weights restored) is the loop shared with surrogate training,
:func:`workbench.algorithms.loop.fit_epochs`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from workbench.algorithms import Algorithm, register_algorithm
from workbench.algorithms.loop import fit_epochs, loop_problems
from workbench.spec import INPUT, Problem, SpecError
from workbench.training import History, readout_loss, readout_scores

READOUTS = ("spike_count",)  # the spiking network's output the loss sees


@dataclass
class ProxyConfig:
    """Hyperparameters of proxy training (names as on the command line)."""

    epochs: int = 30
    batch_size: int = 32
    lr: float = 1e-3
    schedule: str = "cosine"  # cosine annealing to lr * 0.01 over the epochs, or constant
    weight_decay: float = 0.0
    readout: str = "spike_count"
    patience: int = 0  # stop after this many epochs without a better validation accuracy; 0: off
    sample_every: int = 50  # batches between recorded training samples (events); 0: never

    def problems(self) -> list[Problem]:
        return loop_problems(self, READOUTS)


def network_problems(network) -> list[Problem]:
    """Why ``network`` cannot be trained through a ReLU proxy (empty when it can): every
    population must be IF and every projection feed-forward."""
    spec = network.spec
    out = []
    for k, pop in enumerate(spec.populations):
        if pop.model != "if":
            out.append(
                Problem(
                    f"populations[{k}].model",
                    f"{pop.model!r} ({pop.name}): proxy training needs 'if' neurons, whose "
                    "firing rate approximates the proxy's ReLU",
                )
            )
    for k, proj in enumerate(spec.projections):
        if proj.recurrent or proj.source == proj.target:
            out.append(
                Problem(
                    f"projections[{k}]",
                    f"{proj.name} is recurrent; the proxy ANN is feed-forward",
                )
            )
    return out


def proxy_output(network, rates: torch.Tensor, n_steps: int) -> torch.Tensor:
    """The proxy ANN's output ``[batch, outputs]`` in spike counts over ``n_steps``, from the
    input rates per step ``rates`` ``[batch, inputs]``, through ``network``'s own weights."""
    spec = network.spec
    activity = {INPUT: rates}
    for name in network.order:
        current = sum(activity[p.source] @ network.weight(p).T for p in spec.incoming(name))
        threshold = network.neuron_params[name].threshold
        if name == spec.output_name:
            return n_steps * current / threshold
        activity[name] = torch.relu(current) / threshold
    raise AssertionError("the network has no output population")  # order ends with the output


def proxy_step(network, spikes: torch.Tensor, labels: torch.Tensor, record=False):
    """One batch: ``(loss, scores, result)``.  ``scores`` hold the spiking network's spike
    counts with the proxy ANN's gradient; ``result`` is the spiking network's RunResult."""
    with torch.no_grad():
        result = network(spikes, record=True if record else ())
        snn = readout_scores(result.output, "spike_count", network.spec.dt)
    ann = proxy_output(network, spikes.mean(dim=0).to(snn.dtype), spikes.shape[0])
    scores = ann + (snn - ann).detach()
    return readout_loss(scores, labels), scores, result


def fit(network, data, config: ProxyConfig | None = None, callbacks=(), stop=None) -> History:
    """Train the IF network ``network`` on ``data`` (a
    :class:`~workbench.experiment.TrainingData`) through its ReLU proxy.

    ``callbacks`` receive the events of :mod:`workbench.training`; ``stop`` (a
    :class:`~workbench.training.StopSignal`) ends the run after the current batch.
    Returns the :class:`History`; the network keeps the weights of the best validation epoch.
    """
    config = config or ProxyConfig()
    problems = config.problems() + network_problems(network)
    if problems:
        raise SpecError(problems)

    def step(spikes, labels, record):
        return proxy_step(network, spikes, labels, record)

    return fit_epochs(network, data, config, "proxy", step, callbacks, stop)


register_algorithm(
    Algorithm(
        name="proxy",
        title="Proxy ANN (IF network trained through a weight-sharing ReLU network)",
        fit=fit,
        config_class=ProxyConfig,
        references={
            # Yin-Yang, 128-120-3 IF: a thermometer code (the ternary encoder on features in
            # [0, 1]: channel k of a feature spikes at every step while the feature is >= its
            # threshold), so the hidden layer gets a constant current, the regime in which an
            # IF rate is a ReLU.  Thresholds (k + 1/4) / 32 cut x and 1 - x at interleaved
            # points, which together resolve a coordinate to 1/64.  A rate code (Bernoulli
            # spikes) is too noisy for Yin-Yang at this length (77 % at 50 steps); a latency
            # code carries no rate (47 %).
            "yinyang": {
                "hidden": [120],
                "neuron": "if",
                "neuron_params": {},
                "readout": "if",
                "readout_params": {},
                "weight_init": {
                    "input->hidden": {"weight_std": 0.09},
                    "hidden->output": {"weight_std": 0.09},
                },
                "dt": 1.0,
                "n_steps": 30,
                "encoder": {"name": "ternary", "thresholds": [(k + 0.25) / 32 for k in range(32)]},
                "training": {"epochs": 20, "lr": 0.003, "batch_size": 32},
            },
            # Digits, 64-100-10 IF on the dataset's rate code (1000 Hz, 20 steps); the ANN sees
            # each pixel's spike count / 20.
            "digits": {
                "hidden": [100],
                "neuron": "if",
                "neuron_params": {},
                "readout": "if",
                "readout_params": {},
                "weight_init": {
                    "input->hidden": {"weight_std": 0.125},
                    "hidden->output": {"weight_std": 0.1},
                },
                "training": {"epochs": 30, "lr": 0.003, "batch_size": 32},
            },
        },
    )
)
