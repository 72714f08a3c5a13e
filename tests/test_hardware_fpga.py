"""The FPGA estimate backend: resources, cycles, energy by hand; refusals naming the limit."""

import math

import pytest
import torch

from workbench.backends import available_backends, build
from workbench.energy import Activity, energy_per_sample_uj
from workbench.hardware.fpga import DEVICES, FPGA, FPGAProfile
from workbench.spec import SpecError, feedforward


def spec_5_40_3():
    return feedforward([5, 40, 3], output_model="li", dt=1.0, n_steps=50).validate()


def activity() -> Activity:
    return Activity(
        samples=1,
        time_steps=50,
        dt=1.0,
        input_events=30.0,
        input_active=30.0,
        spikes={"hidden": 12.0},
        active={"hidden": 12.0},
        synops=30 * 40 + 12 * 3,
    )


def test_fpga_is_a_registered_backend_that_quantises_weights_to_its_bits():
    assert "fpga" in available_backends()
    net = build(spec_5_40_3(), "fpga", profile={"weight_bits": 4})
    assert isinstance(net, FPGA) and net.profile.weight_bits == 4
    for proj in net.spec.projections:
        w, q = net.float_weight(proj), net.weight(proj)
        scale = w.abs().max() / 7
        assert torch.allclose(q / scale, torch.round(q / scale), atol=1e-4)
        assert len(torch.unique(torch.round(q / scale))) <= 15
    # straight-through: training reaches the float weights
    x = (torch.rand(50, 4, 5) < 0.2).float()
    net(x).output.sum().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in net.parameters())


def test_resources_count_units_and_block_rams_by_hand():
    spec, p = spec_5_40_3(), FPGAProfile()
    table = FPGA.resources(spec, p).set_index("resource")["used"]
    assert table["LUTs"] == 16 * 206 + 2000 and table["flip-flops"] == 16 * 241 + 2000
    assert table["DSP slices"] == 16
    # 320 synapses x 8 bits fit one BRAM36; 16 units need 8 (two ports each)
    assert table["BRAM36 (weights)"] == 8 and table["BRAM36 (states)"] == 8
    big = feedforward([784, 1600, 800, 10], n_steps=20).validate()
    weights = (784 * 1600 + 1600 * 800 + 800 * 10) * 8
    assert FPGA.resources(big).set_index("resource")["used"]["BRAM36 (weights)"] == math.ceil(
        weights / (36 * 1024)
    )


def test_cycles_latency_and_energy_by_hand():
    net = build(spec_5_40_3(), "fpga")
    a = activity()
    # hidden: (30 input events + 50 leak passes) x ceil(40/16) = 3 passes; output: (12 + 50) x 1
    cycles = (30 + 50) * 3 + 50 * 8 + (12 + 50) * 1 + 50 * 8
    assert net.cycles(a) == cycles
    assert net.latency(a) == pytest.approx(cycles / 100e6)
    table = net.energy(a).set_index("term")["energy_j"]
    touched = (30 + 50) * 40 + (12 + 50) * 3
    assert table["neuron updates by the units"] == pytest.approx(touched * 20e-12)
    assert table["static power over the latency"] == pytest.approx(0.12 * cycles / 100e6)
    assert energy_per_sample_uj(net.energy(a)) == pytest.approx(1e6 * table.sum())


def test_a_spec_that_does_not_fit_is_refused_naming_the_field():
    big = feedforward([784, 1600, 800, 10], n_steps=20).validate()
    with pytest.raises(SpecError, match=r"populations\[0\]\.size.*block RAMs.*at most 140"):
        build(big, "fpga")
    assert FPGA.check(big, {"device": "xczu9eg"}) == []  # 32 Mb of block RAM holds it
    spec = feedforward([5, 20, 3], "alif", n_steps=10)
    found = {(v.path, v.limit.split(" of")[0]) for v in FPGA.check(spec, {"neuron_units": 400})}
    assert ("populations[0].model", "neuron model") in found
    assert ("backend_options.profile.neuron_units", "LUTs") in found
    assert ("backend_options.profile.neuron_units", "DSP slices") in found


def test_devices_carry_their_data_sheet_capacities_and_every_figure_a_source():
    for device, figures in DEVICES.items():
        p = FPGAProfile.for_device(device)
        assert p.device == device and p.luts == figures["luts"] and p.bram36 == figures["bram36"]
    with pytest.raises(ValueError, match="device: 'xc9' is not known"):
        FPGAProfile.for_device("xc9")
    with pytest.raises(ValueError, match="neuron_units"):
        FPGAProfile(neuron_units=0)
    table = FPGAProfile().figures()
    assert (table["source"].str.len() > 10).all()
