"""NetworkSpec: validation messages, JSON round trips, summary, order and digest.

Every bad value must give a problem whose path names the field and whose message states what
is allowed, and every problem must be reported at once (not just the first).
"""

from __future__ import annotations

import json
import math

import pytest

from workbench.neurons import MODELS
from workbench.spec import (
    INPUT,
    NetworkSpec,
    Population,
    Problem,
    Projection,
    SpecError,
    feedforward,
)


# --------------------------------------------------------------------------------- helpers
def small_spec(
    hidden_params: dict | None = None,
    output_params: dict | None = None,
    hidden_size=4,
    output_model: str = "li",
    dt: float = 1.0,
    n_steps: int = 20,
    extra_projections: list[Projection] | None = None,
) -> NetworkSpec:
    """input (3) -> hidden (LIF, 4) -> output (LI, 2); never validated here."""
    return NetworkSpec(
        input_size=3,
        populations=[
            Population("hidden", hidden_size, "lif", dict(hidden_params or {})),
            Population("output", 2, output_model, dict(output_params or {})),
        ],
        projections=[
            Projection(INPUT, "hidden"),
            Projection("hidden", "output"),
            *(extra_projections or []),
        ],
        dt=dt,
        n_steps=n_steps,
    )


def problems_by_path(spec: NetworkSpec) -> dict[str, str]:
    return {p.path: p.message for p in spec.problems()}


def message_at(spec: NetworkSpec, path: str) -> str:
    """The message of the problem at ``path`` (failing with the whole list if there is none)."""
    found = problems_by_path(spec)
    assert path in found, f"no problem at {path!r}; problems: {spec.problems()}"
    return found[path]


def cycle_spec(recurrent_back: bool) -> NetworkSpec:
    """input -> a -> b -> a (the back projection optionally recurrent) -> out."""
    return NetworkSpec(
        input_size=2,
        populations=[Population("a", 3), Population("b", 3), Population("out", 2, "li")],
        projections=[
            Projection(INPUT, "a"),
            Projection("a", "b"),
            Projection("b", "a", recurrent=recurrent_back),
            Projection("b", "out"),
        ],
    )


# --------------------------------------------------------------------------------- valid
def test_a_well_formed_spec_has_no_problems_and_validates_to_itself():
    spec = small_spec()
    assert spec.problems() == []
    assert spec.validate() is spec


def test_missing_parameters_take_the_model_defaults():
    pop = Population("hidden", 4, "lif", {"tau_mem": 10.0})
    assert pop.params == {**MODELS["lif"].defaults(), "tau_mem": 10.0}


# --------------------------------------------------------------------------------- sizes
@pytest.mark.parametrize("size", [0, -3, 2.5, "4", True, None])
def test_bad_population_size_names_field_and_range(size):
    message = message_at(small_spec(hidden_size=size), "populations[0].size")
    assert repr(size) in message
    assert "integer >= 1" in message


@pytest.mark.parametrize("input_size", [0, -1, 1.5])
def test_bad_input_size_names_field_and_range(input_size):
    spec = small_spec()
    spec.input_size = input_size
    assert "integer >= 1" in message_at(spec, "input_size")


# --------------------------------------------------------------------------------- params
@pytest.mark.parametrize("tau_mem", [0.0, -5.0, 0])
def test_non_positive_tau_mem_names_field_and_range(tau_mem):
    message = message_at(small_spec({"tau_mem": tau_mem}), "populations[0].params.tau_mem")
    assert "> 0" in message and "ms" in message


@pytest.mark.parametrize(
    ("key", "dt", "tau"),
    [
        ("tau_syn", 1.0, 1.0),  # equal to dt
        ("tau_syn", 1.0, 0.5),  # below dt
        ("tau_syn", 2.0, 1.5),
        ("tau_mem", 1.0, 1.0),
    ],
)
def test_time_constant_not_above_dt_names_field_and_dt(key, dt, tau):
    message = message_at(small_spec({key: tau}, dt=dt), f"populations[0].params.{key}")
    assert f"> dt ({dt:g} ms)" in message


def test_time_constant_just_above_dt_is_accepted():
    assert small_spec({"tau_syn": 1.01, "tau_mem": 1.01}, {"tau_syn": 1.5}).problems() == []


@pytest.mark.parametrize("key", ["tau_mem", "tau_syn", "threshold", "v_leak", "v_reset"])
@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_nan_and_inf_parameters_are_refused_with_range(key, value):
    message = message_at(small_spec({key: value}), f"populations[0].params.{key}")
    assert repr(value) in message
    assert "finite number" in message


@pytest.mark.parametrize("value", ["20", None, [20.0]])
def test_non_numeric_parameter_is_refused(value):
    message = message_at(small_spec({"tau_mem": value}), "populations[0].params.tau_mem")
    assert "finite number > 0" in message


def test_non_positive_threshold_names_field_and_range():
    message = message_at(small_spec({"threshold": 0.0}), "populations[0].params.threshold")
    assert "> 0" in message


def test_unknown_model_names_field_and_lists_the_choices():
    message = message_at(small_spec(output_model="lfi"), "populations[1].model")
    assert "'lfi'" in message
    for name in MODELS:
        assert repr(name) in message


def test_unknown_model_on_a_projecting_population_is_reported_not_raised():
    spec = small_spec()
    spec.populations[0].model = "lfi"  # hidden projects to the output
    message = message_at(spec, "populations[0].model")
    assert "choose one of" in message


def test_unknown_parameter_key_names_the_key_and_the_allowed_ones():
    message = message_at(small_spec({"tau_membrane": 10.0}), "populations[0].params.tau_membrane")
    assert "'lif'" in message
    for key in MODELS["lif"].params:
        assert repr(key) in message


def test_parameter_of_another_model_is_unknown_here():
    # tau_adapt belongs to ALIF, not LIF; tau_mem does not exist for IF
    assert "populations[0].params.tau_adapt" in problems_by_path(small_spec({"tau_adapt": 50.0}))
    spec = small_spec()
    spec.populations[0] = Population("hidden", 4, "if", {"tau_mem": 10.0})
    assert "populations[0].params.tau_mem" in problems_by_path(spec)


@pytest.mark.parametrize("reset", ["hard", "Zero", 0, None])
def test_reset_outside_choices_lists_the_choices(reset):
    message = message_at(small_spec({"reset": reset}), "populations[0].params.reset")
    assert "one of 'zero', 'subtract'" in message


@pytest.mark.parametrize("steps", [-1, 1.5, 10_001, math.nan])
def test_bad_refractory_steps_names_field_and_range(steps):
    message = message_at(
        small_spec({"refractory_steps": steps}), "populations[0].params.refractory_steps"
    )
    assert "integer >= 0" in message and "<= 10000" in message


def test_alif_adaptation_parameters_are_checked():
    spec = small_spec()
    spec.populations[0] = Population(
        "hidden", 4, "alif", {"tau_adapt": 0.0, "adapt_strength": -0.1}
    )
    found = problems_by_path(spec)
    assert "> 0" in found["populations[0].params.tau_adapt"]
    assert ">= 0" in found["populations[0].params.adapt_strength"]


# --------------------------------------------------------------------------------- names
def test_duplicate_population_names_are_refused():
    spec = small_spec()
    spec.populations.append(Population("hidden", 2))
    message = message_at(spec, "populations[2].name")
    assert "'hidden'" in message and "unique" in message


def test_the_input_name_is_reserved():
    spec = small_spec()
    spec.populations.append(Population(INPUT, 2))
    assert "reserved for the input population" in message_at(spec, "populations[2].name")


@pytest.mark.parametrize("name", ["", None, "h.1", "a__b", "1st", "with space"])
def test_population_names_must_be_identifiers_without_double_underscores(name):
    # Weights are stored as "source__target": a "__" or "." in a name could make two
    # projections share one parameter, or be no valid parameter name at all.
    spec = small_spec()
    spec.populations.append(Population(name, 2))
    assert "letters, digits and single underscores" in message_at(spec, "populations[2].name")


def test_spec_without_populations_is_refused():
    spec = NetworkSpec(3, [], [])
    assert "at least one population" in message_at(spec, "populations")


def test_unknown_output_population_lists_the_choices():
    spec = small_spec()
    spec.output = "readout"
    message = message_at(spec, "output")
    assert "'readout'" in message and "'hidden'" in message and "'output'" in message


# --------------------------------------------------------------------------------- projections
def test_projection_from_an_unknown_population_lists_the_choices():
    spec = small_spec(extra_projections=[Projection("hiden", "output")])
    message = message_at(spec, "projections[2].source")
    assert "'hiden'" in message
    for name in (INPUT, "hidden", "output"):
        assert repr(name) in message


def test_projection_to_an_unknown_population_lists_the_choices():
    spec = small_spec(extra_projections=[Projection(INPUT, "outptu")])
    message = message_at(spec, "projections[2].target")
    assert "'outptu'" in message and "'hidden'" in message and "'output'" in message


def test_projection_onto_the_input_is_refused():
    spec = small_spec(extra_projections=[Projection("hidden", INPUT)])
    assert "not a neuron population" in message_at(spec, "projections[2].target")


def test_projection_declared_twice_is_refused():
    spec = small_spec(extra_projections=[Projection(INPUT, "hidden")])
    assert "declared twice" in message_at(spec, "projections[2]")


def test_projection_from_a_non_spiking_readout_is_refused():
    spec = small_spec(extra_projections=[Projection("output", "hidden", recurrent=True)])
    message = message_at(spec, "projections[2].source")
    assert "'output'" in message and "non-spiking" in message


def test_self_projection_must_be_recurrent():
    spec = small_spec(extra_projections=[Projection("hidden", "hidden")])
    message = message_at(spec, "projections[2].recurrent")
    assert "hidden->hidden" in message and "recurrent=True" in message
    spec.projections[2].recurrent = True
    assert spec.problems() == []


def test_projection_from_the_input_cannot_be_recurrent():
    spec = small_spec()
    spec.projections[0].recurrent = True
    assert "cannot be recurrent" in message_at(spec, "projections[0].recurrent")


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("weight_mean", math.nan),
        ("weight_std", -1.0),
        ("weight_std", math.inf),
    ],
)
def test_bad_weight_statistics_name_the_field(field, value):
    spec = small_spec()
    setattr(spec.projections[0], field, value)
    assert "finite number" in message_at(spec, f"projections[0].{field}")


@pytest.mark.parametrize(
    "weights",
    [
        [[0.0] * 4] * 3,  # transposed: [source][target] instead of [target][source]
        [[0.0] * 3] * 5,  # one row too many
        [[0.0] * 3] * 3 + [[0.0] * 2],  # ragged
        [0.0] * 12,  # flat
    ],
)
def test_weights_matrix_of_wrong_shape_states_the_expected_shape(weights):
    spec = small_spec()
    spec.projections[0].weights = weights
    assert "matrix of shape 4 x 3" in message_at(spec, "projections[0].weights")


@pytest.mark.parametrize("bad", [math.nan, math.inf, "1"])
def test_non_finite_weight_names_the_entry(bad):
    spec = small_spec()
    weights = [[0.1] * 3 for _ in range(4)]
    weights[2][1] = bad
    spec.projections[0].weights = weights
    assert "finite number" in message_at(spec, "projections[0].weights[2][1]")


def test_per_synapse_delay_matrix_of_wrong_shape_states_the_expected_shape():
    spec = small_spec()
    spec.projections[0].delay = [[0] * 4] * 3
    assert "matrix of shape 4 x 3" in message_at(spec, "projections[0].delay")


@pytest.mark.parametrize("bad", [-1, 20, 2.5, True])
def test_per_synapse_delay_out_of_range_names_the_entry_and_range(bad):
    spec = small_spec(n_steps=20)
    delays = [[1] * 3 for _ in range(4)]
    delays[3][2] = bad
    spec.projections[0].delay = delays
    message = message_at(spec, "projections[0].delay[3][2]")
    assert "integer from 0 to 19" in message


@pytest.mark.parametrize("bad", [-1, 20, 1.5, None])
def test_projection_delay_out_of_range_names_the_range(bad):
    spec = small_spec(n_steps=20)
    spec.projections[1].delay = bad
    assert "integer from 0 to 19 steps" in message_at(spec, "projections[1].delay")


def test_largest_allowed_delays_are_accepted():
    spec = small_spec(n_steps=20)
    spec.projections[0].delay = [[19] * 3 for _ in range(4)]
    spec.projections[1].delay = 19
    assert spec.problems() == []


# --------------------------------------------------------------------------------- cycles
def test_cycle_of_non_recurrent_projections_is_named():
    message = message_at(cycle_spec(recurrent_back=False), "projections")
    assert "a -> b -> a" in message or "b -> a -> b" in message
    assert "recurrent=True" in message


def test_same_cycle_with_one_projection_marked_recurrent_is_valid():
    spec = cycle_spec(recurrent_back=True)
    assert spec.problems() == []
    assert spec.order() == ["a", "b", "out"]


def test_longer_cycle_is_named_in_full():
    spec = NetworkSpec(
        2,
        [Population("a", 2), Population("b", 2), Population("c", 2)],
        [Projection(INPUT, "a"), Projection("a", "b"), Projection("b", "c"), Projection("c", "a")],
    )
    message = message_at(spec, "projections")
    assert any(
        cycle in message for cycle in ("a -> b -> c -> a", "b -> c -> a -> b", "c -> a -> b -> c")
    )


def test_cycle_is_reported_alongside_other_problems():
    spec = cycle_spec(recurrent_back=False)
    spec.populations[2].params["tau_mem"] = -1.0
    found = problems_by_path(spec)
    assert "populations[2].params.tau_mem" in found
    assert "projections" in found


# --------------------------------------------------------------------------------- reach
def test_population_without_incoming_projection_is_named_at_its_index():
    """A population no projection reaches never sees the input; it used to be valid."""
    spec = feedforward([3, 4, 5, 2])
    spec.populations.insert(2, Population("lonely", 3))
    message = message_at(spec, "populations[2]")
    assert message.startswith("'lonely' receives no projection")
    assert "input never reaches it" in message
    assert [p.path for p in spec.problems()] == ["populations[2]"]
    spec.projections.append(Projection("hidden1", "lonely"))
    assert spec.problems() == []


def test_population_fed_only_by_its_own_loop_is_unreached():
    spec = small_spec()
    spec.populations.append(Population("looped", 2))
    spec.projections.append(Projection("looped", "looped", recurrent=True))
    message = message_at(spec, "populations[2]")
    assert message.startswith("'looped' receives only its own self-projection")


def test_cycle_the_input_does_not_reach_names_both_populations_sources():
    spec = small_spec(
        extra_projections=[
            Projection("a", "b"),
            Projection("b", "a", recurrent=True),
        ]
    )
    spec.populations += [Population("a", 2), Population("b", 2)]
    found = problems_by_path(spec)
    assert "'a' is not reached from the input" in found["populations[2]"]
    assert "'b'" in found["populations[2]"]
    assert "'b' is not reached from the input" in found["populations[3]"]
    assert spec.reached() == {INPUT, "hidden", "output"}


def test_a_recurrent_projection_from_a_reached_population_reaches():
    spec = small_spec(extra_projections=[Projection("hidden", "memory", recurrent=True)])
    spec.populations.insert(1, Population("memory", 2))
    assert spec.problems() == []
    assert spec.reached() == {INPUT, "hidden", "memory", "output"}


def test_every_output_of_feedforward_is_reached():
    for sizes in ([2, 1], [2, 3, 1], [2, 3, 4, 5, 1]):
        spec = feedforward(sizes)
        assert spec.reached() == {INPUT, *spec.population_names}


# --------------------------------------------------------------------------------- time
@pytest.mark.parametrize("dt", [0.0, -1.0, math.nan, math.inf, "1"])
def test_bad_dt_names_field_and_range(dt):
    assert "finite number > 0 (ms)" in message_at(small_spec(dt=dt), "dt")


@pytest.mark.parametrize("n_steps", [0, -5, 2.5])
def test_bad_n_steps_names_field_and_range(n_steps):
    assert "integer >= 1" in message_at(small_spec(n_steps=n_steps), "n_steps")


# --------------------------------------------------------------------------------- many at once
def test_several_problems_are_all_reported_at_once():
    spec = small_spec(
        hidden_params={"tau_mem": -1.0, "colour": "red", "reset": "hard"},
        output_params={"tau_syn": math.nan},
        hidden_size=0,
        dt=0.0,
        n_steps=0,
        extra_projections=[Projection("hidden", "hidden"), Projection("ghost", "output")],
    )
    expected = {
        "dt",
        "n_steps",
        "populations[0].size",
        "populations[0].params.tau_mem",
        "populations[0].params.colour",
        "populations[0].params.reset",
        "populations[1].params.tau_syn",
        "projections[2].recurrent",
        "projections[3].source",
    }
    assert expected <= set(problems_by_path(spec))


def test_validate_raises_spec_error_listing_every_problem():
    spec = small_spec(hidden_params={"tau_mem": -1.0}, dt=0.0)
    with pytest.raises(SpecError) as info:
        spec.validate()
    error = info.value
    assert isinstance(error, ValueError)
    assert error.problems == spec.problems()
    assert len(error.problems) >= 2
    assert "dt: " in str(error) and "populations[0].params.tau_mem: " in str(error)
    assert all(isinstance(p, Problem) for p in error.problems)


def test_problem_prints_as_path_and_message():
    assert str(Problem("dt", "must be > 0")) == "dt: must be > 0"


# --------------------------------------------------------------------------------- JSON
def rich_spec() -> NetworkSpec:
    """Float parameters that are not exact in binary, per-synapse delays, given weights."""
    return NetworkSpec(
        input_size=3,
        populations=[
            Population(
                "hidden",
                2,
                "alif",
                {
                    "tau_mem": 1 / 3 + 10,
                    "threshold": 0.1,
                    "adapt_strength": 1 / 3,
                    "reset": "subtract",
                    "refractory_steps": 2,
                },
            ),
            Population("gate", 2, "if", {"threshold": 0.7}),
            Population("readout", 2, "li", {"v_leak": -0.1, "tau_syn": 2 / 3 + 1}),
        ],
        projections=[
            Projection(
                INPUT,
                "hidden",
                delay=[[0, 1, 2], [3, 0, 1]],
                weights=[[0.1, 1 / 3, -2.5e-7], [1e15, -0.0, 7.0]],
            ),
            Projection(
                "hidden", "hidden", recurrent=True, delay=2, weight_mean=0.1, weight_std=1 / 3
            ),
            Projection("hidden", "gate"),
            Projection("gate", "hidden", recurrent=True),
            Projection("gate", "readout", weight_std=0.0),
        ],
        dt=0.1,
        n_steps=7,
        name="rich",
        output="readout",
    ).validate()


@pytest.mark.parametrize("indent", [2, None])
def test_json_round_trip_is_exact(indent):
    spec = rich_spec()
    again = NetworkSpec.from_json(spec.to_json(indent=indent))
    assert again == spec
    assert again.to_json() == spec.to_json()
    assert again.populations[0].params["adapt_strength"] == 1 / 3
    assert again.dt == 0.1
    assert again.projections[0].delay == [[0, 1, 2], [3, 0, 1]]
    assert again.projections[0].weights == [[0.1, 1 / 3, -2.5e-7], [1e15, -0.0, 7.0]]
    assert math.copysign(1.0, again.projections[0].weights[1][1]) == -1.0


def test_dict_round_trip_is_exact():
    spec = rich_spec()
    assert NetworkSpec.from_dict(spec.to_dict()) == spec


@pytest.mark.parametrize(
    ("where", "path"),
    [
        ("top", "colour"),
        ("population", "populations[1].colour"),
        ("projection", "projections[2].colour"),
    ],
)
def test_from_json_with_an_unknown_key_names_the_key(where, path):
    data = json.loads(rich_spec().to_json())
    target = {
        "top": data,
        "population": data["populations"][1],
        "projection": data["projections"][2],
    }[where]
    target["colour"] = "red"
    with pytest.raises(SpecError) as info:
        NetworkSpec.from_json(json.dumps(data))
    found = {p.path: p.message for p in info.value.problems}
    assert path in found
    assert "is not a field" in found[path]


def test_from_json_reports_every_unknown_key():
    data = json.loads(rich_spec().to_json())
    data["colour"] = 1
    data["populations"][0]["shape"] = 1
    data["projections"][0]["weigths"] = []
    with pytest.raises(SpecError) as info:
        NetworkSpec.from_json(json.dumps(data))
    paths = {p.path for p in info.value.problems}
    assert {"colour", "populations[0].shape", "projections[0].weigths"} <= paths


@pytest.mark.parametrize("text", ["{not json", "[1, 2]", "3"])
def test_from_json_of_something_else_is_a_spec_error(text):
    with pytest.raises(SpecError) as info:
        NetworkSpec.from_json(text)
    assert info.value.problems[0].path == "spec"


@pytest.mark.parametrize("missing", ["input_size", "populations", "projections"])
def test_from_dict_missing_required_field_names_it(missing):
    data = rich_spec().to_dict()
    del data[missing]
    with pytest.raises(SpecError) as info:
        NetworkSpec.from_dict(data)
    assert Problem(missing, "is required") in info.value.problems


@pytest.mark.parametrize(
    ("where", "key", "path"),
    [
        ("populations", "size", "populations[0].size"),
        ("populations", "name", "populations[0].name"),
        ("projections", "target", "projections[0].target"),
        ("projections", "source", "projections[0].source"),
    ],
)
def test_from_dict_missing_population_or_projection_field_names_it(where, key, path):
    data = rich_spec().to_dict()
    del data[where][0][key]
    with pytest.raises(SpecError) as info:
        NetworkSpec.from_dict(data)
    assert path in {p.path for p in info.value.problems}


def test_from_dict_validates_the_spec():
    data = rich_spec().to_dict()
    data["dt"] = -1.0
    with pytest.raises(SpecError) as info:
        NetworkSpec.from_dict(data)
    assert "dt" in {p.path for p in info.value.problems}


# --------------------------------------------------------------------------------- summary
def _row(table, population: str) -> dict:
    rows = table[table["population"] == population]
    assert len(rows) == 1, table
    return rows.iloc[0].to_dict()


def test_summary_counts_a_5_120_3_network():
    table = feedforward([5, 120, 3]).summary()
    assert list(table.columns) == ["population", "model", "neurons", "synapses", "parameters"]
    assert list(table["population"]) == ["hidden", "output", "total"]
    hidden, output, total = (_row(table, n) for n in ("hidden", "output", "total"))
    assert (hidden["model"], hidden["neurons"], hidden["synapses"], hidden["parameters"]) == (
        "lif",
        120,
        600,
        600,
    )
    assert (output["model"], output["neurons"], output["synapses"], output["parameters"]) == (
        "li",
        3,
        360,
        360,
    )
    assert (total["neurons"], total["synapses"], total["parameters"]) == (123, 960, 960)


def test_summary_counts_recurrent_synapses_at_their_target():
    spec = feedforward([5, 120, 3])
    spec.projections.append(Projection("hidden", "hidden", recurrent=True))
    spec.validate()
    table = spec.summary()
    hidden, total = _row(table, "hidden"), _row(table, "total")
    assert hidden["synapses"] == hidden["parameters"] == 600 + 120 * 120
    assert (total["neurons"], total["synapses"], total["parameters"]) == (123, 15_360, 15_360)


# --------------------------------------------------------------------------------- order
def test_order_puts_every_source_before_its_target():
    # populations listed in reverse; a recurrent back projection does not constrain the order
    spec = NetworkSpec(
        2,
        [Population("out", 2, "li"), Population("c", 2), Population("b", 2), Population("a", 2)],
        [
            Projection("c", "out"),
            Projection("b", "c"),
            Projection("a", "b"),
            Projection(INPUT, "a"),
            Projection("a", "c"),
            Projection("c", "a", recurrent=True),
        ],
        output="out",
    )
    order = spec.order()
    assert order == ["a", "b", "c", "out"]
    for proj in spec.projections:
        if proj.source != INPUT and not proj.recurrent:
            assert order.index(proj.source) < order.index(proj.target)


def test_order_of_an_invalid_spec_raises_spec_error():
    with pytest.raises(SpecError):
        cycle_spec(recurrent_back=False).order()


def test_feedforward_names_hidden_layers_and_output():
    spec = feedforward([4, 8, 6, 2])
    assert spec.population_names == ["hidden1", "hidden2", "output"]
    assert spec.order() == ["hidden1", "hidden2", "output"]
    assert [(p.source, p.target) for p in spec.projections] == [
        (INPUT, "hidden1"),
        ("hidden1", "hidden2"),
        ("hidden2", "output"),
    ]


# --------------------------------------------------------------------------------- digest
def test_digest_is_stable_for_equal_specs():
    a, b = rich_spec(), rich_spec()
    digest = a.digest()
    assert len(digest) == 16 and all(c in "0123456789abcdef" for c in digest)
    assert b.digest() == digest
    assert NetworkSpec.from_json(a.to_json()).digest() == digest
    assert a.digest() == digest  # calling it does not change anything


def test_digest_does_not_depend_on_parameter_order():
    a = small_spec({"tau_mem": 10.0, "threshold": 0.5})
    b = small_spec({"threshold": 0.5, "tau_mem": 10.0})
    assert a.digest() == b.digest()


@pytest.mark.parametrize("change", ["param", "delay", "weight", "dt", "size"])
def test_digest_changes_when_the_spec_changes(change):
    spec = rich_spec()
    before = spec.digest()
    if change == "param":
        spec.populations[0].params["tau_mem"] += 1e-9
    elif change == "delay":
        spec.projections[0].delay[0][0] = 1
    elif change == "weight":
        spec.projections[0].weights[0][0] = 0.1 + 1e-12
    elif change == "dt":
        spec.dt = 0.2
    else:
        spec.populations[1].size = 3
    assert spec.digest() != before


@pytest.mark.parametrize("model", ["lif", "alif", "li"])
def test_tau_syn_zero_means_no_synaptic_current_and_is_accepted(model):
    spec = small_spec({"tau_syn": 0.0}, {"tau_syn": 0.0}, output_model=model)
    assert spec.problems() == []
    message = message_at(small_spec({"tau_syn": -1.0}), "populations[0].params.tau_syn")
    assert ">= 0" in message and "ms" in message
    message = message_at(small_spec({"tau_syn": 0.5}), "populations[0].params.tau_syn")
    assert "> dt (1 ms)" in message and "or 0: no synaptic current" in message
