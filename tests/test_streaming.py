"""Streaming: a long signal run chunk by chunk with carried state equals one long run."""

import pytest
import torch

from workbench.backends import build
from workbench.spec import feedforward


def network(readout: str = "li", dtype=torch.float32):
    spec = feedforward(
        [12, 24, 5],
        "alif",
        readout,
        {"tau_mem": 20.0, "tau_syn": 5.0},
        {"tau_mem": 20.0, "tau_syn": 5.0},
        dt=1.0,
        n_steps=200,
        weight_init={
            "input->hidden": {"weight_std": 1.5},
            "hidden->hidden": {"weight_std": 0.3},
            "hidden->output": {"weight_std": 1.0},
        },
        recurrent=True,
    )
    spec.projections[0].delay = 3  # the input arrives 3 steps late: the history carries it
    return build(spec.validate(), "float", seed=1, dtype=dtype)


def signal(steps=200, batch=3):
    generator = torch.Generator().manual_seed(0)
    return (torch.rand(steps, batch, 12, generator=generator) < 0.2).float()


def streamed(net, x, chunk, record=("hidden",)):
    state, outputs, hidden = None, [], []
    for start in range(0, x.shape[0], chunk):
        result, state = net.stream(x[start : start + chunk], state, record=record)
        outputs.append(result.output)
        hidden.append(result.recordings["hidden"]["v"])
    return torch.cat(outputs), torch.cat(hidden)


@pytest.mark.parametrize("readout", ["li", "lif"])
@pytest.mark.parametrize("chunk", [1, 7, 50, 200])
def test_chunks_with_carried_state_equal_one_long_run_bit_for_bit(readout, chunk):
    net = network(readout)
    net.layerwise = False  # the whole signal on the step-by-step path the chunks run on
    x = signal()
    with torch.no_grad():
        whole = net(x, record=["hidden"])
        output, hidden_v = streamed(net, x, chunk)
    assert torch.equal(output, whole.output)
    assert torch.equal(hidden_v, whole.recordings["hidden"]["v"])
    assert whole.recordings["hidden"]["spikes"].sum() > 100  # the network is not silent


def test_streaming_agrees_with_the_default_whole_signal_path_to_rounding():
    net = network(dtype=torch.float64)
    x = signal().double()
    with torch.no_grad():
        whole = net(x, record=["hidden"])  # layer by layer
        output, _ = streamed(net, x, 13)
    assert net.layerwise
    assert torch.allclose(output, whole.output, atol=1e-10)


def test_without_its_state_a_chunk_starts_at_rest_and_a_wrong_batch_is_refused():
    net = network()
    x = signal()
    with torch.no_grad():
        _, state = net.stream(x[:100])
        restarted, _ = net.stream(x[100:])
        carried, _ = net.stream(x[100:], state)
        assert not torch.equal(restarted.output, carried.output)
        with pytest.raises(ValueError, match="state: carried for a batch of 3"):
            net.stream(x[100:, :2], state)
