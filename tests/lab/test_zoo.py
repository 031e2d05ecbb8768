"""The learned model zoo (testbeds.zoo): each parameterisation is ComfyUI's, its target is consistent with its
denoiser, training reduces the validation loss, and a saved model round-trips."""
import json
import math

import pytest
import torch

from schedule_lab.lab.testbeds.patches import crops
from schedule_lab.lab.testbeds.zoo import ZooUNet, load_zoo, sd1_sigma_to_t, train_zoo


@pytest.mark.parametrize("param", ["flow", "eps", "v", "edm"])
def test_the_network_target_is_the_one_whose_denoiser_is_x0(param):
    # Replace the network by the oracle that outputs the training target: D must then return x0 exactly.
    torch.manual_seed(0)
    m = ZooUNet(param, channels=8)
    x0 = crops("train", 4, seed=3).x
    noise = torch.randn_like(x0)
    sigma = torch.tensor([0.05, 0.3, 0.7, 1.0]) * (1.0 if param == "flow" else 10.0)
    x = m.noisy(x0, sigma, noise)
    c_skip, c_out, _, _ = m.preconditioning(sigma)
    target = {"flow": noise - x0, "eps": noise}.get(param)
    if target is None:
        target = (x0 - c_skip[:, None, None, None] * x) / c_out[:, None, None, None]
    d = c_skip[:, None, None, None] * x + c_out[:, None, None, None] * target
    assert torch.allclose(d, x0, atol=1e-5)
    if param == "flow":  # ComfyUI CONST: x = (1 - s) x0 + s n, denoised = x - s v
        assert torch.allclose(x, (1 - sigma[:, None, None, None]) * x0 + sigma[:, None, None, None] * noise)
    if param == "v":  # the standard v = (n - σ x0)/sqrt(σ²+1) in the VE frame
        s = sigma[:, None, None, None]
        assert torch.allclose(target, (noise - s * x0) / (s * s + 1).sqrt(), atol=1e-5)


def test_sd1_sigma_to_t_inverts_the_table():
    from schedule_lab.schedules.model_kind import scaled_linear_sigmas

    table = scaled_linear_sigmas().to(torch.float32)
    t = torch.tensor([0, 1, 250, 999])
    assert torch.allclose(sd1_sigma_to_t(table[t]), t.float(), atol=1e-3)
    mid = (table[10].log() + table[11].log()).div(2).exp()
    assert abs(float(sd1_sigma_to_t(mid[None])) - 10.5) < 1e-3


def test_model_kind_follows_the_parameterisation():
    assert ZooUNet("flow", channels=8).model_kind(3.0).shift == 3.0
    assert ZooUNet("eps", channels=8).model_kind().kind == "eps"
    assert ZooUNet("v", channels=8).model_kind().kind == "v"
    assert ZooUNet("edm", channels=8).model_kind().sigma_max == 80.0
    with pytest.raises(ValueError, match="parameterisation"):
        ZooUNet("x0")


def test_a_short_flow_training_lowers_the_validation_loss_and_round_trips(tmp_path):
    from schedule_lab.lab.testbeds.train import main

    rc = main(["--which", "zoo", "--param", "flow", "--iters", "60", "--out", str(tmp_path)])
    assert rc == 0
    record = json.loads((tmp_path / "zoo_flow_768.json").read_text())
    assert record["iterations_done"] == 60 and record["config"]["parameterisation"] == "flow"
    assert len(record["sha256"]) == 64
    curve = [v for _, v in record["validation_curve"]]
    assert math.isfinite(curve[-1])
    model = load_zoo.__wrapped__("flow", 16, tmp_path)
    x = torch.randn(3, 768)
    d = model(x, torch.full((3,), 0.5))
    assert d.shape == x.shape and torch.isfinite(d).all()
    # the short run does learn: the loss at the end is below the untrained network's
    _, rec0 = train_zoo("flow", iters=1, val_every=1, channels=16)
    assert curve[-1] < rec0["validation_curve"][-1][1]


def test_confirm_crops_come_from_a_photo_nothing_else_uses():
    from schedule_lab.lab.testbeds.patches import CONFIRM_SOURCES, SOURCES

    assert not set(CONFIRM_SOURCES) & set(SOURCES)
    c = crops("confirm", 8, seed=1)
    assert c.x.shape == (8, 3, 16, 16) and (c.labels == -1).all()
    assert torch.equal(c.x, crops("confirm", 8, seed=1).x)


def test_larger_crops_keep_the_strips():
    c = crops("held_out", 4, seed=5, size=32)
    assert c.x.shape == (4, 3, 32, 32) and c.x.abs().max() <= 1.0
    # the 16-px crops are unchanged by the size option
    assert torch.equal(crops("tuning", 5, seed=2).x, crops("tuning", 5, seed=2, size=16).x)


def test_the_3072_d_model_runs_flat_rows():
    m = ZooUNet("v", channels=8, size=32).eval()
    x = torch.randn(2, 3072)
    with torch.no_grad():
        d = m(x, torch.tensor([0.5, 3.0]))
    assert d.shape == (2, 3072) and torch.isfinite(d).all()
    from schedule_lab.lab.testbeds.zoo import zoo_name

    assert zoo_name("flow", 32) == "zoo_flow_3072" and zoo_name("eps") == "zoo_eps_768"


def test_zoo_report_renders_the_bundled_record_and_its_plateau_check():
    """docs/zoo.md's tables come from ``zoo_report``: the plateau drop is the record's own curve, recomputed."""
    import json

    from schedule_lab.lab.testbeds import zoo_report

    rec = json.loads((zoo_report.WEIGHTS / "zoo_flow_768.json").read_text())
    a, b, drop = zoo_report.plateau(rec)
    val = dict((int(it), v) for it, v in rec["validation_curve"])
    last = max(val)
    assert b == val[last] and a == val[max(i for i in val if i <= last - 2000)]
    assert drop == pytest.approx((a - b) / a)
    md = zoo_report.report("zoo_flow_768")
    assert "3×16×16 (768-d)" in md and rec["command"] in md and f"{b:.4f}" in md
    with pytest.raises(ValueError, match="fewer than"):
        zoo_report.plateau({"validation_curve": [[500, 0.3], [1000, 0.2]]})
