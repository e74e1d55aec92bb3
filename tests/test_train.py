"""Training: validation before work, determinism for a seed, schedules, regimes, checkpoints."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from equiv.checkpoint import load_checkpoint, save_checkpoint
from equiv.data import mnist
from equiv.models import build
from equiv.reproducibility import seed_everything
from equiv.train import evaluate, fit, resolve_device


@pytest.fixture(scope="module")
def small_data():
    return mnist(seed=0, train_size=200, val_size=50, test_size=50).prepared(28)


def _train(data, seed: int, **kw):
    seed_everything(seed)
    model = build("p4cnn", group="p4", channels=3, dropout=0.3)
    hist = fit(model, data, epochs=2, lr=0.01, batch_size=32, seed=seed, device="cpu", progress=False, **kw)
    return model, hist


def test_same_seed_gives_identical_numbers(small_data) -> None:
    m1, h1 = _train(small_data, 3, schedule="step")
    m2, h2 = _train(small_data, 3, schedule="step")
    f1, f2 = h1.to_frame().drop(columns="seconds"), h2.to_frame().drop(columns="seconds")
    assert f1.equals(f2)
    for (k, a), (_, b) in zip(m1.state_dict().items(), m2.state_dict().items()):
        assert torch.equal(a, b), k
    _, h3 = _train(small_data, 4, schedule="step")
    assert not h3.to_frame()["train_loss"].equals(h1.to_frame()["train_loss"])


def test_history_columns_and_learning(small_data) -> None:
    _, hist = _train(small_data, 0, schedule={"name": "step", "step_size": 1, "gamma": 0.5})
    frame = hist.to_frame()
    assert list(frame.columns) == ["epoch", "train_loss", "train_accuracy", "lr", "val_loss", "val_accuracy", "seconds"]
    assert frame["lr"].tolist() == [0.01, 0.005]  # StepLR halves each epoch here
    assert hist.settings["schedule"] == {"name": "step", "step_size": 1, "gamma": 0.5}
    assert frame["train_loss"].iloc[-1] < 2.3  # below chance-level cross-entropy ln(10)


def test_onecycle_and_sgd_and_regime(small_data) -> None:
    _, hist = _train(small_data, 0, schedule="onecycle", optimizer="sgd", regime="rot90")
    assert hist.settings["regime"] == "rot90" and len(hist.epochs) == 2


def test_epoch_callback_and_plain_pair() -> None:
    seen = []
    model = nn.Sequential(nn.Flatten(), nn.Linear(4, 2))
    x, y = torch.randn(20, 1, 2, 2), torch.randint(0, 2, (20,))
    fit(model, (x, y), epochs=3, lr=0.1, batch_size=8, device="cpu", progress=False,
        on_epoch_end=lambda e, m: seen.append(e))
    assert seen == [1, 2, 3]
    loss, acc = evaluate(model, x, y)
    assert loss > 0 and 0 <= acc <= 100


@pytest.mark.parametrize("kwargs,match", [
    ({"epochs": 0}, "epochs must be a positive int, got 0"),
    ({"epochs": 1, "batch_size": 2.5}, "batch_size must be a positive int, got 2.5"),
    ({"epochs": 1, "lr": -1.0}, "lr must be a positive float, got -1.0"),
    ({"epochs": 1, "optimizer": "rmsprop"}, "unknown optimizer 'rmsprop'; allowed: adam, sgd"),
    ({"epochs": 1, "schedule": "cosine"}, "unknown schedule 'cosine'; allowed: step, onecycle, constant"),
    ({"epochs": 1, "schedule": {"name": "step", "size": 3}}, r"unknown option\(s\) \['size'\] for schedule 'step'"),
    ({"epochs": 1, "device": "tpu"}, "device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got 'tpu'"),
    ({"epochs": 1, "regime": "sideways"}, "sideways"),
])
def test_bad_arguments_fail_before_training(small_data, kwargs, match) -> None:
    model = build("p4cnn", channels=2)
    before = [p.clone() for p in model.parameters()]
    with pytest.raises(ValueError, match=match):
        fit(model, small_data, progress=False, **kwargs)
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))  # nothing trained


def test_resolve_device() -> None:
    assert resolve_device("cpu").type == "cpu"
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            resolve_device("cuda")


def test_checkpoint_roundtrip_is_weights_only(tmp_path) -> None:
    model = build("p4cnn", channels=2)
    path = save_checkpoint(model, tmp_path / "m.pt", name="p4cnn", options={"channels": 2})
    other = build("p4cnn", channels=2)
    payload = load_checkpoint(path, other)
    assert payload["meta"]["options"] == {"channels": 2}
    for a, b in zip(model.state_dict().values(), other.state_dict().values()):
        assert torch.equal(a, b)
    assert not list(tmp_path.glob("*.tmp"))  # atomic write left no temporary file
    (tmp_path / "bad.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(Exception):
        load_checkpoint(tmp_path / "bad.pt")
    with pytest.raises(FileNotFoundError, match="no checkpoint at"):
        load_checkpoint(tmp_path / "missing.pt")


def test_fit_and_evaluate_report_the_numbers_of_a_loop_summing_python_floats():
    """fit and evaluate keep their running sums on the device (no host synchronisation per step); the reported
    loss and accuracy must be bit for bit those of the plain loop that sums ``loss.item()`` as Python floats."""
    import torch.nn.functional as F

    from equiv.reproducibility import make_generator

    gen = torch.Generator().manual_seed(5)
    x, y = torch.randn(70, 1, 6, 6, generator=gen), torch.randint(0, 3, (70,), generator=gen)

    def make():
        torch.manual_seed(0)
        return nn.Sequential(nn.Flatten(), nn.Linear(36, 3))

    model = make()
    history = fit(model, (x, y), epochs=2, lr=1e-2, batch_size=16, seed=3, device="cpu", progress=False)

    ref = make()
    seed_everything(3)
    opt = torch.optim.Adam(ref.parameters(), lr=1e-2, weight_decay=0.0)
    order_gen = make_generator(3)
    for epoch in range(2):
        ref.train()
        order = torch.randperm(70, generator=order_gen)
        loss_sum, correct = 0.0, 0
        for i in range(0, 70, 16):
            idx = order[i : i + 16]
            out = ref(x[idx])
            loss = F.cross_entropy(out, y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            loss_sum += loss.item() * idx.numel()
            correct += (out.argmax(1) == y[idx]).sum().item()
        assert history.epochs[epoch]["train_loss"] == loss_sum / 70
        assert history.epochs[epoch]["train_accuracy"] == 100.0 * correct / 70
    ref.eval()
    with torch.no_grad():
        loss_sum, correct = 0.0, 0
        for i in range(0, 70, 32):
            out = ref(x[i : i + 32])
            loss_sum += F.cross_entropy(out, y[i : i + 32], reduction="sum").item()
            correct += (out.argmax(1) == y[i : i + 32]).sum().item()
    assert evaluate(model, x, y, batch_size=32) == (loss_sum / 70, 100.0 * correct / 70)
