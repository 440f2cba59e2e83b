"""Image metrics: parity with nerfstudio's torchmetrics / pytorch_msssim calls, LPIPS offline, dynamic PSNR."""

from __future__ import annotations

import logging
import math
import urllib.request

import numpy as np
import pytest
import torch

from semdyn.errors import InputError, MissingCheckpointError
from semdyn.eval import image as image_mod
from semdyn.eval.image import (
    LPIPS_WEIGHTS_ENV,
    LPIPSMetric,
    aggregate_dynamic_psnr,
    dynamic_psnr,
    psnr,
    resolve_lpips_weights_path,
    ssim,
)


def _pair(shape: tuple[int, ...], seed: int, noise: float = 0.1) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    gt = torch.rand(shape, generator=g)
    pred = (gt + noise * torch.randn(shape, generator=g)).clamp(0, 1)
    return pred, gt


def _nchw(x: torch.Tensor) -> torch.Tensor:
    return torch.moveaxis(x, -1, 0)[None]


# ---------------------------------------------------------------------------------------------------------------------
# PSNR / SSIM parity with what splatfacto.get_image_metrics_and_images computes
# ---------------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed,shape,noise", [(0, (32, 48, 3), 0.1), (1, (64, 40, 3), 0.02), (2, (17, 23, 3), 0.3)])
def test_psnr_equals_torchmetrics(seed: int, shape: tuple[int, ...], noise: float) -> None:
    from torchmetrics.image import PeakSignalNoiseRatio

    pred, gt = _pair(shape, seed, noise)
    ref = PeakSignalNoiseRatio(data_range=1.0)(_nchw(gt), _nchw(pred))
    ours = psnr(pred, gt)
    assert ours.shape == ()
    assert abs(float(ours) - float(ref)) < 1e-5


@pytest.mark.filterwarnings("ignore:Skipping Gaussian Smoothing")  # pytorch_msssim on a 9-pixel-high image
@pytest.mark.parametrize("seed,shape,noise", [(0, (32, 48, 3), 0.1), (1, (64, 40, 3), 0.02), (2, (9, 30, 3), 0.3)])
def test_ssim_equals_pytorch_msssim(seed: int, shape: tuple[int, ...], noise: float) -> None:
    from pytorch_msssim import SSIM

    pred, gt = _pair(shape, seed, noise)
    ref = SSIM(data_range=1.0, size_average=True, channel=3)(_nchw(gt), _nchw(pred))
    ours = ssim(pred, gt)
    assert ours.shape == ()
    assert abs(float(ours) - float(ref)) < 1e-5


def test_batch_gives_one_value_per_image_and_numpy_works() -> None:
    pred, gt = _pair((3, 24, 24, 3), 5)
    per_image_psnr = psnr(pred, gt)
    per_image_ssim = ssim(pred.numpy(), gt.numpy())
    assert per_image_psnr.shape == (3,) and per_image_ssim.shape == (3,)
    for b in range(3):
        assert abs(float(per_image_psnr[b]) - float(psnr(pred[b], gt[b]))) < 1e-5
        assert abs(float(per_image_ssim[b]) - float(ssim(pred[b], gt[b]))) < 1e-6


def test_known_psnr_and_identical_images() -> None:
    gt = torch.full((8, 8, 3), 0.5)
    assert abs(float(psnr(gt + 0.1, gt)) - 20.0) < 1e-4  # MSE 0.01 -> 20 dB
    assert math.isinf(float(psnr(gt, gt)))
    assert abs(float(ssim(torch.rand(16, 16, 3), torch.rand(16, 16, 3)))) < 0.5
    img = torch.rand(16, 16, 3)
    assert abs(float(ssim(img, img)) - 1.0) < 1e-5


@pytest.mark.parametrize(
    "pred,gt",
    [
        (torch.rand(8, 8), torch.rand(8, 8)),
        (torch.rand(8, 8, 4), torch.rand(8, 8, 4)),
        (torch.rand(8, 8, 3), torch.rand(8, 9, 3)),
        (torch.zeros(8, 8, 3, dtype=torch.int64), torch.zeros(8, 8, 3, dtype=torch.int64)),
        ([0.0], [0.0]),
    ],
)
def test_bad_images_raise_input_error(pred: object, gt: object) -> None:
    with pytest.raises(InputError):
        psnr(pred, gt)  # type: ignore[arg-type]
    with pytest.raises(InputError):
        ssim(pred, gt)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------------------------------
# LPIPS: local weights only, never a download
# ---------------------------------------------------------------------------------------------------------------------


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Make every download path raise, and record any attempt."""
    attempts: list[str] = []

    def refuse(*args: object, **kwargs: object) -> None:
        attempts.append(str(args[:1]))
        raise RuntimeError("network access attempted in a test")

    import torchvision.models._api as tv_api

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", refuse)
    monkeypatch.setattr(torch.hub, "download_url_to_file", refuse)
    monkeypatch.setattr(tv_api, "load_state_dict_from_url", refuse)
    monkeypatch.setattr(urllib.request, "urlopen", refuse)
    return attempts


@pytest.fixture
def fresh_lpips_log(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(image_mod, "_LPIPS_UNAVAILABLE_LOGGED", False)
    monkeypatch.setattr(image_mod, "_LPIPS_CACHE", {})


@pytest.fixture(scope="module")
def random_alexnet_file(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A randomly initialised torchvision AlexNet saved as if it were the downloaded weights."""
    import torchvision

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("hub") / "alexnet-owt-7be5be79.pth"
    torch.save(torchvision.models.alexnet(weights=None).state_dict(), path)
    return str(path)


def test_lpips_unavailable_without_weights(
    tmp_path, monkeypatch, caplog, no_network: list[str], fresh_lpips_log: None
) -> None:
    monkeypatch.delenv(LPIPS_WEIGHTS_ENV, raising=False)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    expected = tmp_path / "torch_home" / "hub" / "checkpoints" / "alexnet-owt-7be5be79.pth"
    assert resolve_lpips_weights_path() == expected
    pred, gt = _pair((32, 32, 3), 0)
    with caplog.at_level(logging.INFO, logger="semdyn.eval.image"):
        metric = LPIPSMetric()
        assert not metric.available
        assert str(expected) in metric.reason
        assert metric(pred, gt) is None
        assert image_mod.lpips(pred, gt) is None  # the cached function path
        assert LPIPSMetric(tmp_path / "nowhere.pth")(pred, gt) is None
    records = [r for r in caplog.records if r.name == "semdyn.eval.image"]
    assert len(records) == 1
    assert "LPIPS is unavailable" in records[0].getMessage() and str(expected) in records[0].getMessage()
    assert no_network == []


def test_lpips_strict_raises_missing_checkpoint(tmp_path, no_network: list[str], fresh_lpips_log: None) -> None:
    with pytest.raises(MissingCheckpointError):
        LPIPSMetric(tmp_path / "absent.pth", strict=True)
    assert no_network == []


def test_lpips_unreadable_file_is_unavailable(tmp_path, no_network: list[str], fresh_lpips_log: None) -> None:
    bad = tmp_path / "alexnet.pth"
    torch.save({"features.0.weight": torch.zeros(2, 2)}, bad)
    metric = LPIPSMetric(bad)
    assert not metric.available and "features.0.weight" in metric.reason
    assert metric(*_pair((32, 32, 3), 0)) is None


def test_lpips_runs_with_local_weights(
    random_alexnet_file: str, monkeypatch, no_network: list[str], fresh_lpips_log: None
) -> None:
    monkeypatch.setenv(LPIPS_WEIGHTS_ENV, random_alexnet_file)
    metric = LPIPSMetric()
    assert metric.available, metric.reason
    pred, gt = _pair((2, 64, 64, 3), 3, noise=0.2)
    values = metric(pred, gt)
    assert values is not None and values.shape == (2,)
    assert bool(torch.isfinite(values).all()) and bool((values > 0).all())
    single = metric(gt[0], gt[0])
    assert single is not None and single.shape == () and abs(float(single)) < 1e-6
    assert no_network == []


def test_lpips_matches_torchmetrics_with_same_backbone(
    random_alexnet_file: str, monkeypatch, no_network: list[str]
) -> None:
    """Same number as nerfstudio's ``LearnedPerceptualImagePatchSimilarity(normalize=True)`` given the same weights."""
    import torchvision
    from torchmetrics.functional.image import lpips as tm_lpips
    from torchmetrics.image.lpip import LearnedPerceptualImagePatchSimilarity

    def local_features(net: str, pretrained: bool = False) -> torch.nn.Sequential:
        model = torchvision.models.alexnet(weights=None)
        model.load_state_dict(torch.load(random_alexnet_file, weights_only=True))
        return model.features

    monkeypatch.setattr(tm_lpips, "_get_tv_model_features", local_features)
    reference = LearnedPerceptualImagePatchSimilarity(normalize=True)
    pred, gt = _pair((48, 64, 3), 4, noise=0.2)
    ref = reference(_nchw(gt), _nchw(pred))
    ours = LPIPSMetric(random_alexnet_file)(pred, gt)
    assert ours is not None
    assert abs(float(ours) - float(ref)) < 1e-6
    assert no_network == []


def test_lpips_rejects_out_of_range(random_alexnet_file: str) -> None:
    with pytest.raises(InputError):
        LPIPSMetric(random_alexnet_file)(torch.full((32, 32, 3), 1.5), torch.rand(32, 32, 3))


# ---------------------------------------------------------------------------------------------------------------------
# Dynamic-region PSNR
# ---------------------------------------------------------------------------------------------------------------------


def _dynamic_case() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    gt = torch.full((4, 6, 3), 0.5)
    pred = gt.clone()
    mask = torch.zeros(4, 6, dtype=torch.int64)
    mask[:2, :3] = 7  # moving object
    mask[2:, 3:] = 9  # parked car: static
    pred[mask == 7] += 0.1  # MSE 0.01 on the moving object -> 20 dB
    pred[mask == 9] += 0.3  # must not count
    pred[mask == 0] -= 0.2
    return pred, gt, mask


def test_dynamic_psnr_uses_only_moving_pixels() -> None:
    pred, gt, mask = _dynamic_case()
    assert abs(float(dynamic_psnr(pred, gt, mask, [7])) - 20.0) < 1e-4
    np_mask = mask.numpy().astype(np.uint16)  # 16-bit PNG masks
    assert abs(float(dynamic_psnr(pred.numpy(), gt.numpy(), np_mask, np.array([7, 12]))) - 20.0) < 1e-4
    # both 7 and 9 dynamic: MSE = (6 * 0.01 + 6 * 0.09) / 12 = 0.05
    assert abs(float(dynamic_psnr(pred, gt, mask, [7, 9])) - (-10 * math.log10(0.05))) < 1e-4


def test_dynamic_psnr_empty_mask_is_nan() -> None:
    pred, gt, mask = _dynamic_case()
    assert math.isnan(float(dynamic_psnr(pred, gt, mask, [42])))
    assert math.isnan(float(dynamic_psnr(pred, gt, mask, [])))
    batch = dynamic_psnr(torch.stack([pred, pred]), torch.stack([gt, gt]), torch.stack([mask, mask * 0]), [7])
    assert batch.shape == (2,) and abs(float(batch[0]) - 20.0) < 1e-4 and math.isnan(float(batch[1]))


def test_dynamic_psnr_bad_mask_raises() -> None:
    pred, gt, mask = _dynamic_case()
    with pytest.raises(InputError, match="instance_mask"):
        dynamic_psnr(pred, gt, mask[:3], [7])
    with pytest.raises(InputError, match="instance_mask"):
        dynamic_psnr(pred, gt, mask.float(), [7])
    with pytest.raises(InputError, match="dynamic_ids"):
        dynamic_psnr(pred, gt, mask, [[7]])


def test_aggregate_dynamic_psnr_pooled_and_mean() -> None:
    gt = torch.full((4, 4, 3), 0.5)
    mask_a = torch.zeros(4, 4, dtype=torch.int64)
    mask_a[0, 0] = 3  # 1 dynamic pixel, error 0.1 -> MSE 0.01
    mask_b = torch.zeros(4, 4, dtype=torch.int64)
    mask_b[:, :3] = 3  # 12 dynamic pixels, error 0.01 -> MSE 1e-4
    pred_a = gt.clone()
    pred_a[mask_a == 3] += 0.1
    pred_b = gt.clone()
    pred_b[mask_b == 3] += 0.01
    empty = torch.zeros(4, 4, dtype=torch.int64)
    summary = aggregate_dynamic_psnr(iter([(pred_a, gt, mask_a), (pred_b, gt, mask_b), (gt, gt, empty)]), [3])
    pooled_mse = (1 * 3 * 0.01 + 12 * 3 * 1e-4) / (13 * 3)
    assert abs(summary.pooled - (-10 * math.log10(pooled_mse))) < 1e-4
    assert abs(summary.mean_per_image - 30.0) < 1e-4  # (20 dB + 40 dB) / 2
    assert summary.num_values == 39 and summary.num_images == 3 and summary.num_images_with_dynamic == 2
    nothing = aggregate_dynamic_psnr([(gt, gt, empty)], [3])
    assert math.isnan(nothing.pooled) and math.isnan(nothing.mean_per_image) and nothing.num_values == 0
