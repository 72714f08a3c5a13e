"""Count the kernel launches of one training step of ours (the torch kernel, as on a GPU).

The step is ``train_step.py``'s (700-256-20 CuBa LIF, forward, MSE of the output spike counts,
backward, Adam), run on the fused loop's torch kernel (``WORKBENCH_KERNEL=torch``: the path
every non-CPU device takes).  On a GPU that path is bound by launches, not arithmetic, so the
count is the figure that carries from this CPU to the GPU: one step is profiled with
``torch.profiler`` after two warm-up steps, and the table counts

- on the CPU, the leaf ATen operators (those that call no other operator) that compute
  something, i.e. everything but views, allocations and metadata: each is one kernel launch
  on a GPU;
- on a CUDA device, the CUDA kernels, memcpys and memsets the profiler records.

Run: ``.venv/bin/python benchmarks/kernel_launches.py [--steps 100] [--batch 32] [--device cpu]``.
"""

from __future__ import annotations

import argparse
import collections
import os
import sys

os.environ["WORKBENCH_KERNEL"] = "torch"  # before workbench is imported: the GPU's path

import torch  # noqa: E402
from torch.profiler import ProfilerActivity, profile  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import train_step  # noqa: E402

# ATen operators that launch no kernel: views, allocation, metadata, dispatch wrappers.
NO_KERNEL = {
    "aten::empty",
    "aten::empty_like",
    "aten::empty_strided",
    "aten::view",
    "aten::_unsafe_view",
    "aten::reshape",
    "aten::_reshape_alias",
    "aten::as_strided",
    "aten::select",
    "aten::slice",
    "aten::unsqueeze",
    "aten::squeeze",
    "aten::expand",
    "aten::t",
    "aten::transpose",
    "aten::permute",
    "aten::detach",
    "aten::detach_",
    "aten::alias",
    "aten::lift_fresh",
    "aten::resize_",
    "aten::result_type",
    "aten::is_nonzero",
    "aten::item",
    "aten::_local_scalar_dense",
    "aten::set_",
    "aten::numpy_T",
    "aten::unbind",
    "aten::split",
    "aten::chunk",
    "aten::narrow",
    "aten::flatten",
    "aten::unflatten",
    "aten::broadcast_tensors",
    "aten::expand_as",
    "aten::view_as",
    "aten::to",
    "aten::_to_copy_",
    "aten::contiguous",
    "aten::resolve_conj",
    "aten::resolve_neg",
}


def _scalar_only(event) -> bool:
    """An operator on 0-dim tensors and numbers only (every recorded shape is ``[]``): on the
    CPU mostly a Python number wrapped into a tensor (``x - 1.0`` converts the 1.0), which a
    GPU kernel receives as an argument instead; the few real 0-dim operations of a step (the
    loss's last reduction) are left out with them."""
    shapes = event.input_shapes
    return bool(shapes) and all(shape == [] for shape in shapes)


def _computes(event) -> bool:
    """Whether an ATen operator, or one it calls, computes something (launches a kernel)."""
    if not event.name.startswith("aten::"):
        return False
    if event.name in NO_KERNEL or _scalar_only(event):
        return any(_computes(c) for c in event.cpu_children)
    return True


def count_launches(prof, device: torch.device) -> collections.Counter:
    """Kernel launches per operator (CPU: leaf operators that compute; CUDA: kernels)."""
    counts: collections.Counter = collections.Counter()
    for event in prof.events():
        if device.type == "cuda":
            if event.device_type == torch.autograd.DeviceType.CUDA:
                counts[event.name] += 1
            continue
        if not event.name.startswith("aten::") or event.name in NO_KERNEL or _scalar_only(event):
            continue
        if any(_computes(child) for child in event.cpu_children):
            continue  # a composite: the operators it calls are counted
        counts[event.name] += 1
    return counts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=100, help="time steps T")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--device", default="cpu", help="cpu, cuda, ...")
    parser.add_argument("--top", type=int, default=15, help="operators listed")
    parser.add_argument(
        "--filter",
        choices=["steps", "doubling"],
        help="how workbench.fused.linear_filter runs (default: doubling off the CPU, steps on it)",
    )
    args = parser.parse_args(argv)
    from workbench import fused

    fused.FILTER_METHOD = args.filter
    device = torch.device(args.device)
    problem = train_step.make_problem(args.steps, args.batch, device=device)
    step = train_step.build_ours(problem)
    for _ in range(2):
        step()
    train_step.synchronize(device)
    activities = [ProfilerActivity.CPU]
    if device.type == "cuda":
        activities.append(ProfilerActivity.CUDA)
    with profile(activities=activities, record_shapes=True) as prof:
        step()
        train_step.synchronize(device)
    counts = count_launches(prof, device)
    total = sum(counts.values())
    method = args.filter or ("steps" if device.type == "cpu" else "doubling")
    print(f"one training step of ours, T={args.steps}, batch={args.batch}, {device}, {method}:")
    print(f"{total} kernel launches ({total / args.steps:.1f} per time step)")
    for name, n in counts.most_common(args.top):
        print(f"  {n:6d}  {name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
