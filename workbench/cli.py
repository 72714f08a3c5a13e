"""The ``workbench`` command: train a network into a run folder, evaluate a run folder, compare.

    workbench train --dataset yinyang --seed 0 --out runs/yy0
    workbench train --dataset digits --network wavesense --out runs/ws0   # a network for time
    workbench train --dataset yinyang --backend-option profile.mismatch_threshold=0.05 \
        --backend-option chip_seed=3 --out runs/yy0-mismatch    # backend options
    workbench resume runs/yy0          # after the training process was killed
    workbench evaluate runs/yy0
    workbench runs runs/               # every run folder (and resumable run) as a table
    workbench compare --dataset digits --algorithms surrogate --seeds 3 --out runs/cmp
    workbench sweep --dataset digits --param training.lr=0.002,0.005 --workers 2 --out runs/lr
    workbench export-nir runs/yy0 yy0.nir            # the network as a NIR graph
    workbench import-nir yy0.nir --out runs/yy0-nir --dataset yinyang

Choices for ``--algorithm(s)`` and ``--backend(s)`` are whatever is registered (the names in
:mod:`workbench.catalog`, checked against the registries; backends are the installed entry
points), so new algorithms and chip emulators appear here without a change to this file.  Bad
input gets one line on stderr that names the field and the allowed range, and exit code 2; no
run folder is left behind.  Options are checked against the ranges of :mod:`workbench.limits`
(the same the run settings are checked against), then the whole run with
:func:`workbench.experiment.check_config` (the algorithm x backend pair, the network, and its
memory against ``--memory-limit``/``WORKBENCH_MEMORY_LIMIT``) before any file is written.
The options and a ``--spec`` file are checked before torch is imported, so such a refusal
takes a fraction of a second.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import sys
from typing import TYPE_CHECKING

# Only torch-free modules here: the parser and its option checks run before torch and Numba
# are imported (seconds), so a bad option is refused at once.  Each command imports the rest.
from workbench import limits
from workbench.architectures import NETWORKS, network_option_problems
from workbench.catalog import (
    ALGORITHM_NAMES,
    DATASET_FLAGS,
    DATASET_NAMES,
    EQUALIZER_CHANNELS,
    EVENT_ENCODERS,
    STATIC_ENCODERS,
    backend_names,
)
from workbench.neuron_models import MODELS, SURROGATES
from workbench.spec import NetworkSpec, Problem, SpecError

if TYPE_CHECKING:
    from workbench.experiment import RunConfig
    from workbench.store import Checkpoint


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, exit code 2, no usage dump
        self.exit(2, f"error: {message}\n")

    def _get_values(self, action, arg_strings):
        # argparse drops a value of "--" (`--lr=--`) and stores [] without checking its type or
        # choices: the run went ahead with its default
        if action.nargs is None and arg_strings == ["--"]:
            self.error(f"argument {'/'.join(action.option_strings)}: '--' is not a value")
        return super()._get_values(action, arg_strings)


def _bounded(bound: limits.Bound):
    """An option type: a number of ``bound``'s kind (``limits.BOUNDS``/``TRAINING_BOUNDS``,
    the same ranges the run settings are checked against) within its range."""

    def parse(text: str):
        try:
            value = int(text) if bound.integer else float(text)
        except ValueError:  # not a number, or an integer past Python's digit limit
            value = None
        if value is None or not bound.contains(value):
            raise argparse.ArgumentTypeError(f"{limits.show(text)} must be {bound.describe()}")
        return value

    return parse


def _hidden(text: str) -> list[int]:
    parts = text.split(",")
    if len(parts) > limits.MAX_LAYERS:
        raise argparse.ArgumentTypeError(f"{len(parts)} hidden layers; at most {limits.MAX_LAYERS}")
    return [_bounded(limits.BOUNDS["size"])(part) for part in parts]


def _memory(text: str) -> int:
    """``--memory-limit``: a size such as 8GiB (bytes)."""
    try:
        return limits.parse_size(text)
    except SpecError as exc:
        raise argparse.ArgumentTypeError(exc.problems[0].message) from None


def _workers(text: str) -> int:
    """``--workers``: 1 to the number of cores (each worker is a process running one run)."""
    cores = os.cpu_count() or 1
    return _bounded(limits.Bound(1, cores, integer=True, unit="(this machine's cores)"))(text)


def _names(choices: list[str]):
    """A comma-separated list of names, each one of ``choices``."""

    def parse(text: str) -> list[str]:
        names = text.split(",")
        for name in names:
            if name not in choices:
                raise argparse.ArgumentTypeError(f"{name!r} must be one of {', '.join(choices)}")
        return names

    return parse


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} must be a number > 0") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r} must be a finite number > 0")
    return value


def _param(text: str) -> tuple[str, list]:
    """``training.lr=0.005,0.01`` -> ``("training.lr", [0.005, 0.01])`` (values as JSON; bare
    words as text)."""
    key, sep, values = text.partition("=")
    if not sep or not key or not values:
        raise argparse.ArgumentTypeError(f"{limits.show(text)} must be SETTING=VALUE1,VALUE2,...")
    if len(values) > PARAM_BYTES or limits.json_depth(f"[{values}]") > limits.MAX_JSON_DEPTH:
        raise argparse.ArgumentTypeError(
            f"{limits.show(key)}: values must be at most {PARAM_BYTES} characters of JSON "
            f"nested at most {limits.MAX_JSON_DEPTH} deep"
        )
    try:
        parsed = json.loads(f"[{values}]")
    except json.JSONDecodeError:
        parsed = values.split(",")
    except ValueError as exc:  # an integer past Python's digit limit
        raise argparse.ArgumentTypeError(f"{limits.show(key)}: {str(exc).split(';')[0]}") from None
    return key, parsed


PARAM_BYTES = 65_536  # the values of one --param
# the equaliser's bit-error rates, which a run's summary line adds when it has them
BER_METRICS = ("test_ber", "linear_equalizer_ber", "dfe_ber")


def _dataset_option(text: str) -> tuple[str, object]:
    """``NAME=VALUE`` of ``--dataset-option``: the value as JSON, else as text."""
    key, sep, value = text.partition("=")
    if not sep or not key.isidentifier():
        raise argparse.ArgumentTypeError(f"{limits.show(text)} must be NAME=VALUE")
    if len(value) > PARAM_BYTES or limits.json_depth(value) > limits.MAX_JSON_DEPTH:
        raise argparse.ArgumentTypeError(f"{key}: the value is too long or too deep")
    try:
        return key, json.loads(value)
    except ValueError:  # not JSON (a path, a name): the text itself
        return key, value


def _backend_option(text: str) -> tuple[str, object]:
    """``NAME=VALUE`` or ``profile.FIGURE=VALUE`` of ``--backend-option`` (the value as JSON,
    else as text)."""
    key, sep, value = text.partition("=")
    parts = key.split(".")
    if not sep or len(parts) > 2 or not all(part.isidentifier() for part in parts):
        raise argparse.ArgumentTypeError(
            f"{limits.show(text)} must be NAME=VALUE or NAME.FIELD=VALUE (e.g. chip_seed=3, "
            "profile.mismatch_threshold=0.05)"
        )
    return key, _dataset_option(f"value={value}")[1]


def backend_options_from_args(args) -> dict:
    """``backend_options`` from ``--backend-option`` (``profile.FIGURE`` values into the
    ``profile`` object); a name given twice is refused."""
    options: dict = {}
    for key, value in getattr(args, "backend_option", None) or []:
        head, _, field = key.partition(".")
        target, name = (options.setdefault(head, {}), field) if field else (options, head)
        if not isinstance(target, dict) or name in target:
            raise SpecError([Problem(f"backend_option.{key}", "is given more than once")])
        target[name] = value
    return options


def _dataset_arguments(parser) -> None:
    parser.add_argument(
        "--data-path",
        metavar="PATH",
        help="where the dataset's files are (shd, ssc: a folder with NAME_train.h5 and "
        "NAME_test.h5, or one .h5 file); nothing is downloaded",
    )
    parser.add_argument(
        "--dataset-option",
        action="append",
        default=[],
        type=_dataset_option,
        metavar="NAME=VALUE",
        help="a setting of the dataset's loader (e.g. validation_fraction=0.2); repeat for more",
    )
    parser.add_argument(
        "--channel",
        choices=EQUALIZER_CHANNELS,
        help="equalizer: the ISI channel (default proakis_b; awgn has no ISI)",
    )
    parser.add_argument(
        "--ebn0",
        type=_bounded(limits.BOUNDS["ebn0"]),
        metavar="DB",
        help="equalizer: Eb/N0 of the noise in dB (default 10)",
    )


def dataset_options_from_args(args) -> dict:
    """The dataset options the command line gives (``--data-path``, ``--dataset-option``)."""
    options = dict(args.dataset_option)
    if len(options) < len(args.dataset_option):
        raise SpecError([Problem("dataset_option", "an option is given more than once")])
    for name in DATASET_FLAGS:
        value = getattr(args, name, None)
        if value is not None:
            if name in options:
                raise SpecError(
                    [Problem("dataset_option", f"{name} is given both as a flag and an option")]
                )
            options[name] = value
    return options


def _executor_arguments(parser) -> None:
    where = parser.add_mutually_exclusive_group()
    where.add_argument(
        "--workers",
        type=_workers,
        default=1,
        help="runs at a time on a Dask LocalCluster started for this command, one process "
        "with one torch thread each (default 1: one after another in this process)",
    )
    where.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        help="run on the Dask cluster whose scheduler is at ADDRESS (e.g. tcp://host:8786); "
        "its workers need this package installed",
    )


def _limit_arguments(parser, runs: bool = False) -> None:
    parser.add_argument(
        "--memory-limit",
        type=_memory,
        metavar="SIZE",
        help="memory one run may use, e.g. 4GiB (default: what this machine has available, or "
        f"${limits.MEMORY_ENV}); a run estimated to need more is refused before it starts",
    )
    if runs:
        parser.add_argument(
            "--max-runs",
            type=_bounded(limits.BOUNDS["max_runs"]),
            default=limits.MAX_RUNS,
            metavar="N",
            help=f"refuse a grid of more than N runs (default {limits.MAX_RUNS})",
        )


def _executor(args):
    """Where the runs of ``compare``/``sweep`` execute: in this process, or on Dask."""
    if args.scheduler is None and args.workers == 1:
        return contextlib.nullcontext(None)
    from workbench.compare import dask_executor

    return dask_executor(args.scheduler, args.workers)


def make_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="workbench", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    train = commands.add_parser("train", help="train a network and write a run folder")
    train.add_argument("--dataset", required=True, choices=sorted(DATASET_NAMES))
    train.add_argument("--algorithm", default="surrogate", choices=sorted(ALGORITHM_NAMES))
    train.add_argument("--backend", choices=backend_names(), help="default: the algorithm's own")
    train.add_argument(
        "--backend-option",
        action="append",
        default=[],
        type=_backend_option,
        metavar="NAME=VALUE",
        help="an option of the backend (a run's backend_options), e.g. chip_seed=3 or a "
        "profile figure, profile.mismatch_threshold=0.05 (the float simulator's variation, a "
        "chip's figures); repeat for more",
    )
    train.add_argument("--seed", type=_bounded(limits.BOUNDS["seed"]), default=0)
    train.add_argument("--out", required=True, help="run folder to create (must not exist)")
    train.add_argument(
        "--spec",
        metavar="FILE",
        help="the network as a NetworkSpec JSON file (e.g. the Build tab's), in place of the "
        "layered network of --hidden/--neuron; its dt and n_steps are the run's",
    )
    train.add_argument(
        "--network",
        choices=sorted(NETWORKS),
        help="a network for signals in time (workbench.architectures) in place of the layered "
        "one, sized to the dataset's channels and classes at the run's --dt and --n-steps",
    )
    train.add_argument(
        "--network-option",
        action="append",
        default=[],
        type=_dataset_option,
        metavar="NAME=VALUE",
        help="an argument of the --network's function (e.g. n_hidden=256, "
        "dilations=[1,2,4,8]); repeat for more",
    )
    train.add_argument("--hidden", type=_hidden, help="hidden sizes, e.g. 120 or 200,100")
    train.add_argument("--neuron", choices=sorted(m for m in MODELS if MODELS[m].spiking))
    _dataset_arguments(train)
    train.add_argument("--encoder", choices=STATIC_ENCODERS + EVENT_ENCODERS)
    train.add_argument(
        "--recurrent",
        action="store_true",
        help="each hidden population also projects onto itself (default: the dataset's)",
    )
    train.add_argument("--epochs", type=_bounded(limits.BOUNDS["epochs"]))
    train.add_argument("--batch-size", type=_bounded(limits.BOUNDS["batch_size"]))
    train.add_argument("--lr", type=_bounded(limits.TRAINING_BOUNDS["lr"]))
    train.add_argument("--surrogate", choices=SURROGATES)
    train.add_argument(
        "--surrogate-scale", type=_bounded(limits.TRAINING_BOUNDS["surrogate_scale"])
    )
    train.add_argument(
        "--surrogate-cutoff",
        type=_bounded(limits.TRAINING_BOUNDS["surrogate_cutoff"]),
        help="sparse backward: no surrogate gradient where |V - threshold| exceeds this",
    )
    train.add_argument("--n-steps", type=_bounded(limits.BOUNDS["n_steps"]))
    train.add_argument(
        "--dt",
        type=_bounded(limits.BOUNDS["dt"]),
        help=f"time step in ms ({limits.MIN_DT:g} to {limits.MAX_DT:g})",
    )
    train.add_argument("--quiet", action="store_true", help="no progress bar")
    train.add_argument(
        "--plan",
        action="store_true",
        help="predict the run's peak memory and time (seconds of calibration on a few "
        "samples), print them as JSON and stop; a run whose size comes near the memory limit "
        "is planned before it trains anyway, and refused if the plan does not fit",
    )
    _limit_arguments(train)
    train.add_argument(
        "--checkpoint-every",
        type=_bounded(limits.BOUNDS["checkpoint_every"]),
        default=1,
        metavar="N",
        help="save the training state every N epochs beside the run folder (default 1); "
        "`workbench resume OUT` continues a killed run from it",
    )

    resume = commands.add_parser(
        "resume", help="finish a run whose training was killed, from its last checkpoint"
    )
    resume.add_argument("run_dir", help="the --out of the interrupted `workbench train`")
    resume.add_argument("--quiet", action="store_true", help="no progress bar")

    runs = commands.add_parser("runs", help="list the run folders under a folder as a table")
    runs.add_argument("store", nargs="?", default="runs", help="folder to search (default runs)")
    runs.add_argument("--csv", action="store_true", help="comma-separated instead of a table")

    evaluate = commands.add_parser("evaluate", help="re-compute a run folder's metrics")
    evaluate.add_argument("run_dir")
    evaluate.add_argument("--dataset", choices=sorted(DATASET_NAMES))

    grid = commands.add_parser(
        "compare", help="train algorithms x backends x seeds on one dataset, print a summary"
    )
    grid.add_argument("--dataset", required=True, choices=sorted(DATASET_NAMES))
    grid.add_argument(
        "--algorithms",
        required=True,
        type=_names(sorted(ALGORITHM_NAMES)),
        help=f"comma-separated, from {', '.join(sorted(ALGORITHM_NAMES))}",
    )
    grid.add_argument(
        "--backends",
        type=_names(backend_names()),
        help=f"comma-separated, from {', '.join(backend_names())}; default: each "
        "algorithm's own (float for surrogate)",
    )
    grid.add_argument(
        "--seeds",
        type=_bounded(limits.BOUNDS["seeds"]),
        default=3,
        help="seeds 0 .. N-1 (default 3)",
    )
    grid.add_argument(
        "--epochs", type=_bounded(limits.BOUNDS["epochs"]), help="default: each reference's"
    )
    _dataset_arguments(grid)
    _executor_arguments(grid)
    _limit_arguments(grid, runs=True)
    grid.add_argument("--out", help="folder to create for results.csv, summary.csv and runs/")

    sweep = commands.add_parser(
        "sweep", help="train one algorithm for every combination of settings x seeds"
    )
    sweep.add_argument("--dataset", required=True, choices=sorted(DATASET_NAMES))
    sweep.add_argument("--algorithm", default="surrogate", choices=sorted(ALGORITHM_NAMES))
    sweep.add_argument("--backend", choices=backend_names(), help="default: the algorithm's")
    sweep.add_argument(
        "--param",
        action="append",
        required=True,
        type=_param,
        metavar="SETTING=V1,V2,...",
        help="a run setting (dotted path, e.g. training.lr or hidden) and its values as JSON "
        "(e.g. training.lr=0.005,0.01 or 'hidden=[40],[120]'); repeat for more settings",
    )
    sweep.add_argument(
        "--seeds",
        type=_bounded(limits.BOUNDS["seeds"]),
        default=1,
        help="seeds 0 .. N-1 (default 1)",
    )
    sweep.add_argument(
        "--epochs", type=_bounded(limits.BOUNDS["epochs"]), help="default: the reference's"
    )
    _dataset_arguments(sweep)
    _executor_arguments(sweep)
    _limit_arguments(sweep, runs=True)
    sweep.add_argument("--out", help="folder to create for results.csv, summary.csv and runs/")

    export_nir = commands.add_parser(
        "export-nir", help="write a run folder's network as a NIR graph (.nir, HDF5)"
    )
    export_nir.add_argument("run_dir", help="a run folder (of the float or event backend)")
    export_nir.add_argument("file", help="the .nir file to write")

    import_nir = commands.add_parser(
        "import-nir",
        help="make a run folder of a NIR graph (e.g. from snnTorch or Norse) that "
        "`workbench evaluate` scores",
    )
    import_nir.add_argument("file", help="a .nir file")
    import_nir.add_argument("--out", required=True, help="run folder to create (must not exist)")
    import_nir.add_argument(
        "--dt",
        type=_positive_float,
        metavar="MS",
        help="time step in ms (default: the graph's; snnTorch writes graphs for 0.1 ms, Norse "
        "for 1 ms, without saying so)",
    )
    import_nir.add_argument(
        "--n-steps",
        type=_bounded(limits.BOUNDS["n_steps"]),
        help="steps per sample (default: the graph's)",
    )
    import_nir.add_argument(
        "--dataset",
        choices=sorted(DATASET_NAMES),
        help="measure the network on this dataset now (else name it to `workbench evaluate`)",
    )
    import_nir.add_argument(
        "--integration",
        choices=["exact", "euler"],
        help="how the graph's producer integrated its ODEs (default: the graph's metadata, "
        "else euler, as snnTorch and Norse do)",
    )

    labs = commands.add_parser(
        "labs", help="write the student and teacher versions of lab notebooks"
    )
    labs.add_argument("src", help="folder of lab notebooks (solutions between markers)")
    labs.add_argument("out", help="folder for student/ and teacher/")

    app = commands.add_parser(
        "app", help="serve the web app (Build, Data, Train, Compare, Hardware) on this machine"
    )
    app.add_argument("--port", type=_bounded(limits.BOUNDS["port"]), default=5006)
    app.add_argument("--address", default="localhost", help="interface to listen on")
    app.add_argument("--show", action="store_true", help="open a browser tab")
    app.add_argument(
        "--allow-origin",
        action="append",
        default=[],
        metavar="HOST[:PORT]",
        help="another name browsers reach the server by (repeatable), e.g. lab.example.org:5006",
    )
    app.add_argument(
        "--webgl", action="store_true", help="Bokeh's WebGL output (canvas is the default)"
    )
    # Per-session limits (a teaching lab's students share one server).
    app.add_argument("--max-neurons", type=_bounded(limits.BOUNDS["max_neurons"]), default=2000)
    app.add_argument("--max-steps", type=_bounded(limits.BOUNDS["n_steps"]), default=2000)
    app.add_argument("--max-epochs", type=_bounded(limits.BOUNDS["epochs"]), default=200)
    app.add_argument(
        "--max-concurrent-runs", type=_bounded(limits.BOUNDS["max_concurrent_runs"]), default=1
    )
    app.add_argument("--max-compare-runs", type=_bounded(limits.BOUNDS["seeds"]), default=24)
    # The server's limit: runs beyond it wait in a fair queue.
    app.add_argument(
        "--max-workers",
        type=_bounded(limits.BOUNDS["max_workers"]),
        default=0,
        help="training/comparison runs going at once on this server, every session together "
        "(the rest wait in a fair queue); 0 = one per core but one, as memory allows",
    )
    return parser


def config_from_args(args) -> RunConfig:
    from workbench import experiment
    from workbench.algorithms import ALGORITHMS

    backend = args.backend or ALGORITHMS[args.algorithm].default_backend
    config = experiment.reference_config(args.dataset, args.algorithm, backend, args.seed)
    if args.hidden:
        config.hidden = args.hidden
    if args.neuron and args.neuron != config.neuron:
        # Keep the reference parameters the new model shares (e.g. tau_mem); drop the rest.
        config.neuron = args.neuron
        allowed = MODELS[args.neuron].params
        config.neuron_params = {k: v for k, v in config.neuron_params.items() if k in allowed}
    if args.encoder and args.encoder != config.encoder.get("name"):
        config.encoder = {"name": args.encoder}
    if args.recurrent:
        config.recurrent = True
    config.dataset_options.update(dataset_options_from_args(args))
    config.backend_options.update(backend_options_from_args(args))
    if args.n_steps:
        config.n_steps = args.n_steps
    if args.dt:
        config.dt = args.dt
    for name in ("epochs", "batch_size", "lr", "surrogate", "surrogate_scale", "surrogate_cutoff"):
        value = getattr(args, name)
        if value is not None:
            config.training[name] = value
    return config


class ProgressBar:
    """A tqdm progress bar over all batches of a run (a training callback)."""

    def __init__(self, stream=sys.stderr):
        self.stream = stream
        self.bar = None

    def __call__(self, event) -> None:
        from tqdm import tqdm

        from workbench.training import BatchEnd, EpochEnd, RunEnd, RunStart

        if isinstance(event, RunStart):
            self.bar = tqdm(
                total=event.epochs * event.batches_per_epoch,
                file=self.stream,
                unit="batch",
                desc=event.algorithm,
                dynamic_ncols=True,
            )
        elif isinstance(event, BatchEnd) and self.bar is not None:
            self.bar.update(1)
            self.bar.set_postfix(epoch=event.epoch, loss=f"{event.loss:.3f}", refresh=False)
        elif isinstance(event, EpochEnd) and self.bar is not None:
            m = event.metrics
            self.bar.write(
                f"epoch {m['epoch']:3d}  train_loss {m['train_loss']:.4f}  "
                f"train_acc {m['train_accuracy']:.4f}  val_acc {m['val_accuracy']:.4f}",
                file=self.stream,
            )
        elif isinstance(event, RunEnd) and self.bar is not None:
            self.bar.close()


def _network_options(args) -> dict:
    """``--network`` and its ``--network-option``s, checked before torch is imported: the
    options' names against the function's signature, and no flag that gives the network too."""
    options = dict(args.network_option)
    if len(options) < len(args.network_option):
        raise SpecError([Problem("network_option", "an option is given more than once")])
    if args.network is None:
        if options:
            raise SpecError([Problem("network_option", "needs --network")])
        return options
    given = [f"--{n.replace('_', '-')}" for n in ("spec", "hidden", "neuron", "recurrent")]
    given = [flag for flag in given if getattr(args, flag[2:].replace("-", "_"))]
    if given:
        raise SpecError(
            [Problem("network", f"gives the network; {', '.join(given)} cannot be given too")]
        )
    problems = network_option_problems(args.network, options)
    if problems:
        raise SpecError(problems)
    return options


def _network_spec(name: str, options: dict, config: RunConfig) -> NetworkSpec:
    """The ``--network`` for ``config``'s data: its encoder's channels in, one output per
    class, the run's ``dt`` and ``n_steps``."""
    from workbench import experiment
    from workbench.architectures import build_network

    dataset = experiment.run_dataset(config)
    config.encoder = experiment.resolve_encoder(config)
    channels = experiment.make_run_encoder(config).n_channels(dataset.n_features)
    return build_network(name, channels, dataset.n_classes, config.dt, config.n_steps, **options)


def cmd_train(args) -> int:
    spec = None
    network_options = _network_options(args)
    if args.spec is not None:  # read and checked before torch is imported
        given = [f"--{n.replace('_', '-')}" for n in ("hidden", "neuron", "n_steps", "dt")]
        given = [flag for flag in given if getattr(args, flag[2:].replace("-", "_"))]
        if given:
            raise SpecError(
                [Problem("spec", f"gives the network; {', '.join(given)} cannot be given too")]
            )
        spec = NetworkSpec.from_file(args.spec)
    from workbench import experiment, planner
    from workbench.store import Checkpoint, checkpoint_dir

    config = config_from_args(args)
    if args.network is not None:
        experiment.check_config(config)  # the data and encoder settings, before they are used
        spec = _network_spec(args.network, network_options, config)
    if spec is not None:
        config.dt, config.n_steps = spec.dt, spec.n_steps
    experiment.check_config(config, spec)  # every setting and the memory, before any file
    epochs = experiment.training_config(config).epochs
    if args.checkpoint_every > epochs:
        raise SpecError(
            [
                Problem(
                    "checkpoint_every",
                    f"{args.checkpoint_every} must be an integer >= 1 and <= the run's epochs "
                    f"({epochs}); a larger one never saves",
                )
            ]
        )
    plan = planner.check_plan(config, spec, force=args.plan)  # refuses a run that won't fit
    if plan is not None:
        print(f"plan: {plan.describe()}", file=sys.stderr)
        if args.plan:
            print(json.dumps(plan.to_dict()))
            return 0
    out = experiment.check_out_dir(args.out)
    checkpoint = Checkpoint(checkpoint_dir(out), every=args.checkpoint_every)
    if checkpoint.exists():
        raise SpecError(
            [
                Problem(
                    "out",
                    f"{str(out)!r} has an unfinished run (checkpoint in "
                    f"{str(checkpoint.folder)!r}): `workbench resume {out}` finishes it",
                )
            ]
        )
    callbacks = [] if args.quiet else [ProgressBar()]
    run = experiment.train(config, callbacks=callbacks, spec=spec, checkpoint=checkpoint)
    return _finish(run, out, checkpoint)


def _finish(run, out, checkpoint: Checkpoint) -> int:
    """Write the run folder, then drop its checkpoint; print the run's summary."""
    from workbench import experiment

    experiment.save_run(run, out)
    shutil.rmtree(checkpoint.folder, ignore_errors=True)
    keys = ("test_accuracy", "val_accuracy", *BER_METRICS, "train_seconds", "epochs")
    summary = {k: run.metrics[k] for k in keys if k in run.metrics}
    print(json.dumps({"run": str(out), **summary}))
    return 0


def cmd_resume(args) -> int:
    from workbench import experiment
    from workbench.store import MANIFEST, Checkpoint, checkpoint_dir

    checkpoint = Checkpoint(checkpoint_dir(args.run_dir))
    if os.path.isfile(os.path.join(args.run_dir, MANIFEST)):  # killed before its cleanup
        left = f"; its leftover {str(checkpoint.folder)!r} can be deleted" * checkpoint.exists()
        raise SpecError([Problem("run_dir", f"{args.run_dir!r} is a complete run already{left}")])
    out = experiment.check_out_dir(args.run_dir)
    if not checkpoint.exists():
        raise SpecError(
            [Problem("run_dir", f"{str(out)!r} has no unfinished run to resume (no checkpoint)")]
        )
    callbacks = [] if args.quiet else [ProgressBar()]
    run = experiment.resume(checkpoint.folder, callbacks=callbacks)
    return _finish(run, out, checkpoint)


def cmd_runs(args) -> int:
    from workbench.store import list_runs

    table = list_runs(args.store)
    if args.csv:
        print(table.to_csv(index=False), end="")
    elif table.empty:
        print(f"no runs under {args.store}")
    else:
        print(table.to_string(index=False, na_rep="-", float_format=lambda x: f"{x:.4f}"))
    return 0


def cmd_evaluate(args) -> int:
    from workbench import experiment

    metrics = experiment.evaluate_run(args.run_dir, args.dataset)
    print(json.dumps(metrics))
    return 0


def report_run(event) -> None:
    """One progress line per finished run of ``workbench compare`` (a compare callback)."""
    from workbench.compare import COLUMNS, run_name

    row = event.row
    params = {k: v for k, v in row.items() if k not in COLUMNS}
    name = run_name(row["algorithm"], row["backend"], row["seed"], params)
    name = f"[{event.done}/{event.total}] {name}"
    if row["error"]:
        print(f"{name}  error: {row['error']}", file=sys.stderr, flush=True)
    else:
        print(
            f"{name}  test_accuracy {row['test_accuracy']:.4f}  "
            f"train {row['train_seconds']:.1f} s  peak {row['peak_memory_mb']:.0f} MiB",
            file=sys.stderr,
            flush=True,
        )


def cmd_compare(args) -> int:
    from workbench.compare import grid

    cells = grid(
        args.dataset,
        args.algorithms,
        args.backends,
        args.seeds,
        epochs=args.epochs,
        overrides=_grid_overrides(args),
        max_runs=args.max_runs,
    )
    return _run_grid(args, cells)


def _grid_overrides(args) -> dict | None:
    options = dataset_options_from_args(args)
    return {"dataset_options": options} if options else None


def cmd_sweep(args) -> int:
    params = dict(args.param)
    if len(params) < len(args.param):
        raise SpecError([Problem("param", "a setting is given more than once")])
    from workbench.compare import sweep_grid

    cells = sweep_grid(
        args.dataset,
        args.algorithm,
        params,
        args.backend,
        args.seeds,
        epochs=args.epochs,
        overrides=_grid_overrides(args),
        max_runs=args.max_runs,
    )
    return _run_grid(args, cells, list(params))


def _run_grid(args, cells: list[dict], params: list[str] = ()) -> int:
    """Run checked cells where ``--workers``/``--scheduler`` say; print the summary.  Exit code
    1 when some runs failed (each is in the table and results.csv)."""
    from workbench.compare import run_grid

    with _executor(args) as executor:
        result = run_grid(
            args.dataset,
            cells,
            params=params,
            out=args.out,
            executor=executor,
            callbacks=[report_run],
        )
    print(result.table())
    return 1 if result.failed else 0


def cmd_export_nir(args) -> int:
    from workbench import nir_io

    graph = nir_io.export_run(args.run_dir)
    path = nir_io.write_nir(graph, args.file)
    print(json.dumps({"file": str(path), "nodes": len(graph.nodes), "edges": len(graph.edges)}))
    return 0


def cmd_import_nir(args) -> int:
    from workbench import experiment, nir_io

    out = experiment.check_out_dir(args.out)
    spec = nir_io.import_nir(
        args.file, dt=args.dt, n_steps=args.n_steps, integration=args.integration
    )
    run = nir_io.imported_run(spec, args.dataset)
    experiment.save_run(run, out)
    summary = {k: run.metrics[k] for k in ("test_accuracy", "val_accuracy") if k in run.metrics}
    print(json.dumps({"run": str(out), "populations": spec.population_names, **summary}))
    return 0


def cmd_labs(args) -> int:
    from workbench.labs import write_versions

    for path in write_versions(args.src, args.out):
        print(path)
    return 0


def cmd_app(args) -> int:
    # The UI is imported here only: the rest of the CLI (and the core) runs without it.
    from workbench.widgets.app import serve
    from workbench.widgets.scheduler import default_workers
    from workbench.widgets.state import Limits

    limits = Limits(
        max_neurons=args.max_neurons,
        max_steps=args.max_steps,
        max_epochs=args.max_epochs,
        max_concurrent_runs=args.max_concurrent_runs,
        max_compare_runs=args.max_compare_runs,
    )
    workers = args.max_workers or default_workers()
    print(
        f"SNN Workbench: http://{args.address}:{args.port}/  (Ctrl-C stops; {workers} run(s) "
        "at once, the rest queue)",
        flush=True,
    )
    serve(args.port, args.address, args.show, limits, args.webgl, args.allow_origin, workers)
    return 0


COMMANDS = {
    "train": cmd_train,
    "resume": cmd_resume,
    "runs": cmd_runs,
    "evaluate": cmd_evaluate,
    "compare": cmd_compare,
    "sweep": cmd_sweep,
    "export-nir": cmd_export_nir,
    "import-nir": cmd_import_nir,
    "labs": cmd_labs,
    "app": cmd_app,
}


def main(argv: list[str] | None = None) -> int:
    args = make_parser().parse_args(argv)
    if getattr(args, "memory_limit", None) is not None:
        # for this command and the worker processes it starts (they inherit the environment)
        os.environ[limits.MEMORY_ENV] = str(args.memory_limit)
    try:
        return COMMANDS[args.command](args)
    except (SpecError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"error: {exc.filename or ''}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        if args.command in ("compare", "sweep"):
            kept = f"; {args.out}/results.csv lists the runs that finished" if args.out else ""
            print(f"interrupted{kept}", file=sys.stderr)
        else:
            print("interrupted; no run folder was written", file=sys.stderr)
            if args.command in ("train", "resume"):
                print(
                    f"`workbench resume {args.out if args.command == 'train' else args.run_dir}` "
                    "continues from the last finished epoch",
                    file=sys.stderr,
                )
        return 130


if __name__ == "__main__":
    sys.exit(main())
