"""The benchmark scripts measure what they say they measure (their timings are never asserted)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from equiv.nn import GroupConv2d
from equiv.nn.layout import fast_layout, is_fast_layout

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCH))

import layers  # noqa: E402
import layout_threshold  # noqa: E402


@pytest.mark.parametrize("group", ["p4", "p4m"])
@pytest.mark.parametrize("lifting", [True, False])
@pytest.mark.parametrize("fast", [True, False])
def test_fixed_bank_is_the_same_convolution_as_the_layer(group, lifting, fast):
    """``layers.FixedBank`` (the diagnostic 'bank fixed' column) must compute exactly what the layer computes,
    or ``equiv − bank fixed`` would not be the cost of the gather."""
    torch.manual_seed(0)
    layer = GroupConv2d(3 if lifting else 2, 5, 3, padding=1, group=group, lifting=lifting).double()
    layer._fast_layout = fast
    n = layer.group.order
    x = torch.randn(2, 3, 9, 9, dtype=torch.float64) if lifting else fast_layout(torch.randn(2, 2, n, 9, 9).double())
    fixed = layers.FixedBank(layer)
    torch.testing.assert_close(fixed(x), layer(x), rtol=1e-12, atol=1e-12)
    # and the gather really is absent: the bank is a leaf, the layer's weight gets no gradient through it
    fixed(x).sum().backward()
    assert layer.weight.grad is None and fixed.bank.grad is not None


def test_layout_threshold_compares_different_layouts():
    """The variants of ``benchmarks/layout_threshold.py`` differ in layout where they say they do (an earlier
    version compared a network with itself), and agree in value."""
    models = {name: layout_threshold.make("p4m", name, 2) for name in layout_threshold.LAYOUTS}
    counts = {name: [m.fast_layout for m in model.modules() if isinstance(m, GroupConv2d)]
              for name, model in models.items()}
    assert all(counts["all-cl"]) and not any(counts["all-contiguous"])
    assert 0 < sum(counts["per-layer"]) < len(counts["per-layer"]), "width-2 P4M per-layer must be mixed"
    assert counts["settled"] == counts["settled-copy"]
    seen = {}
    for name in ("all-cl", "all-contiguous"):
        outs = []
        first = next(m for m in models[name].modules() if isinstance(m, GroupConv2d))
        handle = first.register_forward_hook(lambda mod, inp, out: outs.append(out))
        models[name].eval()
        with torch.no_grad():
            seen[name] = models[name](torch.randn(2, 1, 33, 33, generator=torch.Generator().manual_seed(1)))
        handle.remove()
        assert is_fast_layout(outs[0]) == (name == "all-cl")
    torch.testing.assert_close(seen["all-cl"], seen["all-contiguous"], rtol=1e-4, atol=1e-5)


def test_layers_benchmark_runs_and_prints_every_layer():
    out = subprocess.run(
        [sys.executable, str(BENCH / "layers.py"), "--repeats", "4", "--batch", "2", "--size", "8", "--channels", "2",
         "--threads", "1", "--copies", "2"],
        capture_output=True, text=True, timeout=600, check=True,
    ).stdout
    assert "median of 4 repeats x 2 copies" in out
    rows = [line.split() for line in out.splitlines() if line.startswith(("P4Conv", "P4MConv"))]
    assert [r[0] for r in rows] == ["P4ConvP4", "P4ConvZ2", "P4MConvP4M", "P4MConvZ2"]
    for r in rows:
        assert len(r) == 11, r  # name, 4 timings, fastest, ratio, IQR, e2cnn ratio, bank fixed ratio, A/A
        assert r[5] in ("NCHW", "NHWC") and float(r[6]) > 0 and float(r[-2]) > 0 and float(r[-1]) > 0


def test_layers_benchmark_rejects_a_design_without_repeats():
    done = subprocess.run([sys.executable, str(BENCH / "layers.py"), "--repeats", "1"], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 2 and "--repeats 1" in done.stderr.strip().splitlines()[-1]


def test_layer_copies_are_independent_instances_of_one_configuration():
    """The copies of ``layers.instances`` compute the same thing from their own memory: same weights and values,
    no shared parameter or input storage (else they would not average over memory placement)."""
    torch.manual_seed(0)
    layer = GroupConv2d(3, 4, 3, padding=1, group="p4", lifting=True)
    x = torch.randn(2, 3, 9, 9).contiguous(memory_format=torch.channels_last)
    grad = torch.randn(2, 16, 9, 9)
    copies = layers.instances(layer, x, grad, 3)
    assert len(copies) == 3 and copies[0][0] is layer
    for module, xc, gc in copies[1:]:
        assert module is not layer and module.weight.data_ptr() != layer.weight.data_ptr()
        assert xc.data_ptr() != x.data_ptr() and gc.data_ptr() != grad.data_ptr()
        assert xc.is_contiguous(memory_format=torch.channels_last)
        torch.testing.assert_close(module(xc), layer(x), rtol=0, atol=0)


def test_gpu_benchmark_runs_on_the_cpu_and_tells_exact_from_approximate(tmp_path):
    """``benchmarks/device_check.sh`` and ``benchmarks/gpu.py`` (prepared for a lent GPU) run end to end here at
    tiny sizes: the exactness check passes the exact P4CNN in fp32 and shows the approximate one's error; TF32
    is skipped with a reason; the figures land in ``$OUT``. Its second stage runs the study's GPU-arm grid (here
    at the smoke profile, results under tmp_path) through the script executor and returns the committed runs as
    ``$OUT/study_gpu.tar.gz``."""
    import json
    import os
    import tarfile

    from equiv.batch.committed import load_committed

    args = ("--device cpu --batch 8 --steps 2 --warmup 1 --warm-epochs 1 --warm-digits 256 --test 64 --epochs 1 "
            "--train 64")
    from grid_files import relocated_grid

    grid = relocated_grid(BENCH.parent / "experiments" / "rotmnist_study_gpu.yaml", tmp_path,
                          tmp_path / "results" / "rotmnist_study_gpu", "gpu_arm.yaml")
    out = tmp_path / "out"
    out.mkdir()
    env = {**os.environ, "OUT": str(out), "PYTHON": sys.executable, "GPU_ARGS": args, "STUDY_SECONDS": "300",
           "STUDY_GRID": str(grid), "STUDY_RESULTS": str(tmp_path / "results" / "rotmnist_study_gpu" / "smoke"),
           "STUDY_ARGS": f"--profile smoke --jobs 1 --threads 1 --runs-dir {tmp_path / 'runs'}"}
    env.pop("EQUIV_PROFILE", None)
    subprocess.run(["bash", str(BENCH / "device_check.sh")], cwd=BENCH.parent, env=env, capture_output=True, text=True,
                   timeout=900, check=True)
    study_log = (out / "study_gpu.log").read_text()
    assert "0 failed, 2 done (2 now, 0 before) of 2 runs" in study_log and "2 committed runs" in study_log
    with tarfile.open(out / "study_gpu.tar.gz") as tar:
        tar.extractall(tmp_path / "unpacked", filter="data")
    records = load_committed(tmp_path / "unpacked" / "smoke")
    assert sorted(r["parameters"]["model"] for r in records) == ["p4-27", "p4-28"]
    assert {r["provenance"]["executor"] for r in records} == {"script"}
    from equiv import study

    accuracy, curves = study.load_study(tmp_path / "unpacked" / "smoke")
    done = study.gpu_arm_progress(study.run_metrics(accuracy)).set_index(["regime", "model"])["committed"]
    assert done[("upright", "p4-28")] == done[("upright", "p4-27")] == 1 and done.sum() == 2
    assert study.devices(accuracy) == [records[0]["provenance"]["device"]] and len(curves) == 2
    log = (out / "gpu_benchmark.log").read_text()
    assert "tf32      skipped: TF32 exists on CUDA devices only" in log and "wrote " in log
    result = json.loads((out / "gpu_benchmark.json").read_text())
    rows = {r["precision"]: r for r in result["precisions"]}
    assert sorted(rows) == ["bf16", "fp32"]
    fp32 = rows["fp32"]
    assert fp32["keeps_exactness"] and fp32["exact_changed_predictions"] == 0
    assert fp32["exact_relative_error"] < 1e-5 < 1e-3 < fp32["approx_relative_error"]
    assert all(r["images_per_s"] > 0 and r["test_digits"] == 64 for r in rows.values())
    assert result["paper_run"]["epochs"] == 1 and result["paper_run"]["digits"] == 64
    assert result["environment"]["device"].startswith("cpu:") and result["parameters"]["batch"] == 8


def test_gpu_benchmark_rejects_bad_sizes_before_any_work():
    done = subprocess.run([sys.executable, str(BENCH / "gpu.py"), "--device", "cpu", "--test", "5000"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "got --test 5000 --warm-digits 4000" in done.stderr.strip().splitlines()[-1]


def test_batchnorm_benchmark_compares_the_same_normalisation_and_runs():
    """The three batch norms of ``benchmarks/batchnorm.py`` compute the same thing (training mode, unit affine),
    so its ratios compare implementations, not computations; and the script runs."""
    import batchnorm as bench_bn

    from equiv.nn import GroupBatchNorm

    torch.manual_seed(0)
    x = torch.randn(4, 3, 4, 6, 6, dtype=torch.float64, requires_grad=True)
    xf = fast_layout(x.detach()).requires_grad_()
    ours, previous = GroupBatchNorm(3).double(), bench_bn.PreviousGroupBatchNorm(3).double()
    native = torch.nn.BatchNorm3d(3).double()
    g = torch.randn_like(x)
    outs = [m(v) for m, v in ((ours, xf), (previous, xf), (native, x))]
    for out in outs[1:]:
        torch.testing.assert_close(out, outs[0], rtol=0, atol=1e-12)
    grads = [torch.autograd.grad(out, v, g)[0] for out, v in zip(outs, (xf, xf, x))]
    for grad in grads[1:]:
        torch.testing.assert_close(grad, grads[0], rtol=0, atol=1e-12)
    out = subprocess.run([sys.executable, str(BENCH / "batchnorm.py"), "--repeats", "2", "--threads", "1"],
                         capture_output=True, text=True, timeout=600, check=True).stdout
    rows = [line.split() for line in out.splitlines() if line[:1].isdigit() and "x" in line.split()[0]]
    assert [r[0] for r in rows] == ["x".join(map(str, s)) for s in bench_bn.SHAPES]
    assert all(len(r) == 7 and float(r[4]) > 0 for r in rows)


def test_allocator_benchmark_times_each_setting_in_its_own_process():
    """``benchmarks/allocator.py`` compares settings that are per process: each child must report the setting it
    was asked for (the script refuses a child whose setting differs), for our layers and the frozen ones."""
    import allocator

    case = ("P4CNN", 28, 4, 1)
    assert allocator._time(case, "equiv", "keep", 1, 1)["applied"] is True
    got = allocator._time(case, "reference", "default", 1, 1)
    assert got["applied"] is False and got["ms"] > 0
