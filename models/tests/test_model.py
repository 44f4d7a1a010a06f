import pytest
import torch
import torchvision

from fundus_cbr.config import ModelConfig
from fundus_cbr.model import FundusEmbedder, LocalContrastNormalisation, load_init_checkpoint


@pytest.mark.parametrize("attention", ["mirror", "cbam", "none"])
def test_every_variant_gives_unit_embeddings_and_a_normalised_heat_map(attention):
    model = FundusEmbedder(ModelConfig(input_size=64, attention=attention), with_classifier=True).eval()
    with torch.no_grad():
        output = model(torch.rand(3, 3, 64, 64) * 255)
    assert output.embedding.shape == (3, 128)
    torch.testing.assert_close(output.embedding.norm(dim=1), torch.ones(3))
    assert output.attention.shape == (3, 2, 2)  # 64 px / stride 32
    torch.testing.assert_close(output.attention.sum(dim=(1, 2)), torch.ones(3))
    assert output.logits.shape == (3, 5)


def test_local_contrast_is_zero_outside_the_fundus_and_on_flat_regions():
    layer = LocalContrastNormalisation(64, 1 / 60)
    image = torch.zeros(1, 3, 64, 64)
    image[:, :, 16:48, 16:48] = 120.0
    output = layer(image)
    assert output[:, :, :16].abs().max() == 0
    assert output[:, :, 20:44, 20:44].abs().max() < 1e-4  # flat inside, including near the rim


def test_torchvision_resnet18_checkpoint_loads_into_a_full_width_backbone(tmp_path):
    path = tmp_path / "resnet18.pth"
    torch.save(torchvision.models.resnet18().state_dict(), path)
    model = FundusEmbedder(ModelConfig(input_size=64, backbone_width=1.0, backbone_stages=4, attention="none"))
    counts = load_init_checkpoint(model, str(path))
    assert counts["loaded"] == counts["backbone_tensors"]
    assert counts["skipped"] == 2  # fc.weight, fc.bias


def test_a_checkpoint_of_another_width_is_refused_not_half_loaded(tmp_path):
    path = tmp_path / "resnet18.pth"
    torch.save(torchvision.models.resnet18().state_dict(), path)
    model = FundusEmbedder(ModelConfig(input_size=64, backbone_width=0.25, backbone_stages=4, attention="none"))
    before = {k: v.clone() for k, v in model.backbone.state_dict().items()}
    with pytest.raises(ValueError, match=r"fits \d+ of the backbone's \d+ tensors .*--width 1 --stages 4"):
        load_init_checkpoint(model, str(path))
    assert all(torch.equal(before[k], v) for k, v in model.backbone.state_dict().items())


def test_a_whole_checkpoint_loads_into_the_same_architecture_only(tmp_path):
    from fundus_cbr.checkpoint import save_checkpoint
    from fundus_cbr.model import load_whole_checkpoint

    source = FundusEmbedder(ModelConfig(input_size=32))
    save_checkpoint(str(tmp_path / "a.pt"), source)
    target = FundusEmbedder(ModelConfig(input_size=32))
    load_whole_checkpoint(target, str(tmp_path / "a.pt"))
    assert all(torch.equal(a, b) for a, b in zip(source.state_dict().values(), target.state_dict().values()))
    with pytest.raises(ValueError, match="does not fit"):
        load_whole_checkpoint(FundusEmbedder(ModelConfig(input_size=32, backbone_width=0.5)), str(tmp_path / "a.pt"))
