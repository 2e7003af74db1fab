import pytest

from worldpolicy.testing import TinySizes, make_tiny_checkpoint

# Two different shapes: the default SwiGLU tiny model and a relu2 (Edge-style, Nemotron norms) one with GQA 2:1.
SHAPES = {
    "tiny": TinySizes(),
    "relu2": TinySizes(hidden_size=96, num_hidden_layers=3, num_attention_heads=6, num_key_value_heads=2,
                       head_dim=16, intermediate_size=160, hidden_act="relu2", latent_channel=8),
}


@pytest.fixture(scope="session")
def checkpoints(tmp_path_factory):
    root = tmp_path_factory.mktemp("ckpt")
    return {name: make_tiny_checkpoint(root / name, sizes=sizes, seed=i) for i, (name, sizes) in enumerate(SHAPES.items())}


@pytest.fixture(scope="session")
def tiny_checkpoint(checkpoints):
    return checkpoints["tiny"]


@pytest.fixture(scope="session")
def tiny_policy(tiny_checkpoint):
    import worldpolicy

    return worldpolicy.load_policy(tiny_checkpoint, embodiment="droid/relative_pose", chunk_size=16, resolution_tier=256)
