import torch

from fundus_cbr.attention import MirrorAttention, MirrorBranch, received_attention_map
from fundus_cbr.config import ModelConfig
from fundus_cbr.model import FundusEmbedder


def test_branch_keeps_feature_shape_and_rows_of_attention_sum_to_one():
    branch = MirrorBranch(16)
    anchor, mirrored = torch.randn(2, 16, 5, 4), torch.randn(2, 16, 5, 4)
    output, attention = branch(mirrored, anchor)
    assert output.shape == anchor.shape
    assert attention.shape == (2, 20, 20)
    torch.testing.assert_close(attention.sum(dim=-1), torch.ones(2, 20))


def test_zero_initialised_output_projection_returns_anchor_features_at_start():
    branch = MirrorBranch(8)
    anchor = torch.randn(3, 8, 4, 4)
    output, _ = branch(torch.randn(3, 8, 4, 4), anchor)
    torch.testing.assert_close(output, anchor)


def test_horizontal_and_vertical_branches_share_no_parameters():
    attention = MirrorAttention(8)
    horizontal = {id(p) for p in attention.horizontal.parameters()}
    vertical = {id(p) for p in attention.vertical.parameters()}
    assert horizontal and vertical and not horizontal & vertical


def _symmetric_image(size: int, both_axes: bool) -> torch.Tensor:
    half = torch.rand(1, 3, size, size // 2) * 255
    image = torch.cat([half, torch.flip(half, dims=[3])], dim=3)
    if both_axes:
        top = image[:, :, : size // 2]
        image = torch.cat([top, torch.flip(top, dims=[2])], dim=2)
    return image


def test_horizontally_symmetric_input_makes_horizontal_branch_a_self_attention():
    torch.manual_seed(0)
    model = FundusEmbedder(ModelConfig(input_size=64, attention="mirror")).eval()
    image = _symmetric_image(64, both_axes=False)
    with torch.no_grad():
        output = model(image)
        anchor = model.backbone(model.normalise(image))
        _, self_attention = model.mirror.horizontal(anchor, anchor)
    torch.testing.assert_close(output.branch_attention[0], self_attention)


def test_input_symmetric_in_both_axes_gives_identical_branch_attention_when_branches_share_weights():
    torch.manual_seed(0)
    model = FundusEmbedder(ModelConfig(input_size=64, attention="mirror")).eval()
    model.mirror.vertical.load_state_dict(model.mirror.horizontal.state_dict())
    with torch.no_grad():
        output = model(_symmetric_image(64, both_axes=True))
    torch.testing.assert_close(output.branch_attention[0], output.branch_attention[1])
    torch.testing.assert_close(output.horizontal_descriptor, output.vertical_descriptor)


def test_eval_mode_outputs_are_deterministic():
    torch.manual_seed(0)
    model = FundusEmbedder(ModelConfig(input_size=64, attention="mirror")).eval()
    image = torch.rand(2, 3, 64, 64) * 255
    with torch.no_grad():
        first, second = model(image), model(image)
    assert torch.equal(first.embedding, second.embedding)
    assert torch.equal(first.attention, second.attention)


def test_received_attention_map_puts_all_mass_where_every_query_looks():
    attention = torch.zeros(1, 4, 4)
    attention[:, :, 2] = 1.0
    heat_map = received_attention_map((attention, attention), 2, 2)
    torch.testing.assert_close(heat_map, torch.tensor([[[0.0, 0.0], [1.0, 0.0]]]))


def test_received_attention_map_averages_branches_and_sums_to_one():
    first = torch.softmax(torch.randn(2, 6, 6), dim=-1)
    second = torch.softmax(torch.randn(2, 6, 6), dim=-1)
    heat_map = received_attention_map((first, second), 2, 3)
    expected = ((first.sum(1) + second.sum(1)) / 2 / 6).reshape(2, 2, 3)
    torch.testing.assert_close(heat_map, expected)
    torch.testing.assert_close(heat_map.sum(dim=(1, 2)), torch.ones(2))
