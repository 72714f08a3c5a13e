"""Recordings as labelled arrays: dims, coordinates, attributes and the netCDF round trip."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import xarray as xr

from workbench import build
from workbench.recording import load_netcdf, population, save_netcdf, to_dataset
from workbench.spec import NetworkSpec, feedforward

T, BATCH = 12, 3


@pytest.fixture(scope="module")
def spec() -> NetworkSpec:
    return feedforward([3, 4, 2], params={"threshold": 0.2}, dt=0.5, n_steps=T, name="rec")


@pytest.fixture(scope="module")
def recordings(spec):
    x = (torch.rand(T, BATCH, 3, generator=torch.Generator().manual_seed(0)) < 0.5).float()
    result = build(spec, seed=0)(x, record=True)
    assert result.recordings["hidden"]["spikes"].any()
    return result.recordings


@pytest.fixture(scope="module")
def dataset(recordings, spec) -> xr.Dataset:
    return to_dataset(recordings, spec, "float")


def test_variables_share_dims_time_sample_neuron(dataset):
    for var in ("v", "i", "spikes"):
        assert dataset[var].dims == ("time", "sample", "neuron")
    assert dict(dataset.sizes) == {"time": T, "sample": BATCH, "neuron": 4 + 2}


def test_time_is_in_ms_at_the_end_of_each_step(dataset, spec):
    np.testing.assert_array_equal(dataset["time"].values, spec.dt * np.arange(1, T + 1))
    assert dataset["time"].values[0] == 0.5 and dataset["time"].values[-1] == 6.0
    assert dataset["time"].attrs["units"] == "ms"


def test_population_and_unit_label_every_neuron(dataset):
    assert dataset["population"].dims == ("neuron",)
    assert list(dataset["population"].values) == ["hidden"] * 4 + ["output"] * 2
    assert list(dataset["unit"].values) == [0, 1, 2, 3, 0, 1]
    assert list(dataset["sample"].values) == list(range(BATCH))


def test_values_are_the_recorded_traces(dataset, recordings):
    for name, first in (("hidden", 0), ("output", 4)):
        for var, trace in recordings[name].items():
            size = trace.shape[-1]
            np.testing.assert_array_equal(
                dataset[var].values[:, :, first : first + size], trace.detach().numpy()
            )


def test_li_population_has_nan_spikes_and_spiking_one_has_zeros_and_ones(dataset):
    out = dataset["spikes"].values[:, :, 4:]
    hidden = dataset["spikes"].values[:, :, :4]
    assert np.isnan(out).all()
    assert set(np.unique(hidden)) == {0.0, 1.0}
    assert not np.isnan(dataset["v"].values).any() and not np.isnan(dataset["i"].values).any()


def test_attrs_carry_the_spec_and_the_backend(dataset, spec, recordings):
    assert NetworkSpec.from_json(dataset.attrs["spec"]) == spec
    assert dataset.attrs["backend"] == "float"
    assert dataset.attrs["dt_ms"] == spec.dt
    extra = to_dataset(recordings, spec, "xylo", attrs={"epoch": 3})
    assert extra.attrs["backend"] == "xylo" and extra.attrs["epoch"] == 3


def test_sample_index_labels_the_batch(recordings, spec):
    ds = to_dataset(recordings, spec, "float", sample_index=[10, 20, 30])
    assert list(ds["sample"].values) == [10, 20, 30]


def test_population_selects_one_population(dataset, recordings):
    out = population(dataset, "output")
    assert out.sizes["neuron"] == 2
    assert set(out["population"].values) == {"output"}
    assert list(out["unit"].values) == [0, 1]
    np.testing.assert_array_equal(out["v"].values, recordings["output"]["v"].detach().numpy())
    assert population(dataset, "nobody").sizes["neuron"] == 0


def test_recording_only_some_populations(spec):
    x = torch.zeros(T, 1, 3)
    rec = build(spec)(x, record=["output"]).recordings
    ds = to_dataset(rec, spec, "float")
    assert set(ds["population"].values) == {"output"} and ds.sizes["neuron"] == 2


def test_netcdf_round_trip_is_equal_and_leaves_no_temporary_file(dataset, tmp_path):
    path = tmp_path / "run.nc"
    assert save_netcdf(dataset, path) == path
    assert [p.name for p in tmp_path.iterdir()] == ["run.nc"]
    loaded = load_netcdf(path)
    xr.testing.assert_identical(loaded, dataset)
    assert NetworkSpec.from_json(loaded.attrs["spec"]) == NetworkSpec.from_json(
        dataset.attrs["spec"]
    )


def test_saving_over_an_existing_file_replaces_it(dataset, tmp_path):
    path = tmp_path / "run.nc"
    save_netcdf(dataset.isel(time=slice(0, 2)), path)
    save_netcdf(dataset, path)
    assert load_netcdf(path).sizes["time"] == T
    assert [p.name for p in tmp_path.iterdir()] == ["run.nc"]


def test_failed_save_leaves_the_old_file_and_no_partial_file(dataset, tmp_path, monkeypatch):
    path = tmp_path / "run.nc"
    save_netcdf(dataset, path)
    before = path.read_bytes()

    def broken(self, target, *args, **kwargs):
        with open(target, "wb") as handle:
            handle.write(b"half")
        raise OSError("disk full")

    monkeypatch.setattr(xr.Dataset, "to_netcdf", broken)
    with pytest.raises(OSError, match="disk full"):
        save_netcdf(dataset, path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["run.nc"]


def test_empty_recordings_raise_naming_record(spec):
    with pytest.raises(ValueError, match=r"recordings: nothing was recorded.*record="):
        to_dataset({}, spec, "float")
