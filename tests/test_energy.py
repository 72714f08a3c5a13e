"""Energy per inference: the activity counted, each backend's terms priced by hand."""

import math

import pandas as pd
import pytest
import torch

from workbench import experiment
from workbench.backends import build
from workbench.compare import COLUMNS
from workbench.energy import Activity, ActivityCounter, ReferenceEnergy, energy_per_sample_uj
from workbench.hardware.base import deploy
from workbench.hardware.xylo import cycles_per_step
from workbench.spec import feedforward

BACKENDS = ("float", "loihi", "xylo", "brainscales2", "crossbar")


def spec_3_4_2(n_steps=20, dt=1.0):
    return feedforward([3, 4, 2], output_model="li", dt=dt, n_steps=n_steps).validate()


def activity(spec, steps=20) -> Activity:
    """An activity as a counter would give it: 2 hidden spikes at different steps, 5 input
    events (one a double event)."""
    return Activity(
        samples=1,
        time_steps=steps,
        dt=spec.dt,
        input_events=5.0,
        input_active=4.0,
        spikes={"hidden": 2.0},
        active={"hidden": 2.0},
        synops=5.0 * 4 + 2.0 * 2,
    )


def test_the_counter_counts_events_spikes_and_synaptic_operations_per_sample():
    spec = spec_3_4_2(n_steps=5)
    network = build(spec, "float", seed=0)
    inputs = torch.zeros(5, 2, 3)
    inputs[0, 0, 0] = 1.0
    inputs[1, 0, 2] = 2.0  # two events in one step: one active channel-step, two events
    inputs[3, 1, 1] = 1.0
    hidden = torch.zeros(5, 2, 4)
    hidden[2, 0, 1] = 1.0
    hidden[4, 1, 3] = 1.0
    hidden[4, 1, 0] = 1.0
    counter = ActivityCounter(spec.dt)
    counter.add(network, inputs, {"hidden": {"spikes": hidden}, "output": {"v": torch.zeros(1)}})
    a = counter.activity()
    assert a.samples == 2 and a.time_steps == 5 and a.dt == 1.0
    assert a.input_events == pytest.approx(4 / 2) and a.input_active == pytest.approx(3 / 2)
    assert a.spikes == {"hidden": 1.5} and a.active == {"hidden": 1.5}
    # every event reaches its 4 (input -> hidden) or 2 (hidden -> output) synapses
    assert a.synops == pytest.approx((4 * 4 + 3 * 2) / 2)
    assert a.neuron_steps(spec) == 5 * (4 + 2)


def test_the_float_reference_prices_every_synapse_and_neuron_every_step():
    spec = spec_3_4_2()
    table = build(spec, "float").energy(activity(spec))
    ref = ReferenceEnergy()
    macs = 20 * (3 * 4 + 4 * 2)
    updates = 20 * (4 + 2)
    expected = macs * 4.6e-12 + updates * 4 * 4.6e-12
    assert ref.multiply_add == 4.6e-12
    assert table["count"].tolist() == [macs, updates]
    assert energy_per_sample_uj(table) == pytest.approx(expected * 1e6)


def test_loihi_prices_davies_table_per_operation():
    spec = spec_3_4_2()
    table = build(spec, "loihi").energy(activity(spec)).set_index("term")["energy_j"]
    assert table["synaptic operations"] == pytest.approx(24 * 23.6e-12)
    assert table["compartment updates"] == pytest.approx(20 * 6 * 52e-12)
    assert table["spiking updates"] == pytest.approx(2 * (81e-12 - 52e-12))
    assert table["spike messages"] == pytest.approx((5 + 2) * 1.7e-12)


def test_xylo_prices_its_cycle_model_and_static_power():
    spec = feedforward(
        [3, 4, 2], output_model="lif", params={"tau_syn": 2.0}, dt=1.0, n_steps=20
    ).validate()
    chip = build(spec, "xylo")
    table = chip.energy(activity(spec)).set_index("term")
    cycles = cycles_per_step(chip, 4.0 / (20 * 3), 2.0 / (20 * 4))
    p = chip.profile
    assert table.loc["core clock cycles", "count"] == pytest.approx(20 * cycles)
    assert table.loc["core clock cycles", "energy_j"] == pytest.approx(20 * cycles * 10e-12)
    assert table.loc["static power over the sample", "energy_j"] == pytest.approx(
        p.static_power * 20e-3
    )


def test_brainscales2_prices_its_power_over_the_accelerated_sample():
    spec = spec_3_4_2(n_steps=50, dt=1.0)
    table = build(spec, "brainscales2").energy(activity(spec, steps=50))
    assert energy_per_sample_uj(table) == pytest.approx(0.70 * 50e-3 / 1000 * 1e6)


def test_a_crossbar_prices_its_array_reads_and_edge_neurons():
    spec = spec_3_4_2()
    table = build(spec, "crossbar").energy(activity(spec)).set_index("term")["energy_j"]
    assert table["synaptic operations"] == pytest.approx(24 * 0.18e-12)
    assert table["neuron updates"] == pytest.approx(20 * 6 * 0.92e-12)


@pytest.mark.parametrize("backend", BACKENDS)
def test_every_term_names_the_source_of_its_price(backend):
    spec = spec_3_4_2()
    table = build(spec, backend).energy(activity(spec))
    assert list(table.columns) == ["term", "count", "unit", "energy_each_j", "energy_j", "source"]
    assert len(table) >= 1
    for source in table["source"]:
        name, _, text = source.partition(": ")
        assert name and len(text) > 20, source
    assert (table["energy_j"] >= 0).all()


def test_a_run_reports_its_energy_in_metrics_and_the_comparison_table(tmp_path):
    config = experiment.reference_config("yinyang", "surrogate", "float", seed=0)
    config.training["epochs"] = 1
    config.dataset_options = {"train_size": 200, "test_size": 100}
    run = experiment.train(config)
    m = run.metrics
    terms = pd.DataFrame(m["test_energy"])
    assert m["test_energy_per_sample_uj"] == pytest.approx(terms["energy_j"].sum() * 1e6)
    assert m["test_energy_per_sample_uj"] > 0 and math.isfinite(m["test_energy_per_sample_uj"])
    assert "energy_per_sample_uj" in COLUMNS
    experiment.save_run(run, tmp_path / "run")
    again = experiment.load_run(tmp_path / "run")
    assert again.metrics["test_energy_per_sample_uj"] == m["test_energy_per_sample_uj"]
    # deploy() reports the energy before (float) and after (on the chip), term by term
    d = deploy(run.network, "loihi", data=run.data)
    assert d.energy_before_uj == pytest.approx(m["test_energy_per_sample_uj"])
    assert d.energy_after_uj == pytest.approx(energy_per_sample_uj(d.energy))
    assert set(d.energy["term"]) >= {"synaptic operations", "compartment updates"}
