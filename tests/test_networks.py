import pytest
import torch

from condense.errors import ConfigError
from condense.networks import (ConvNetConfig, build, has_batchnorm, is_model, list_models,
                               parse_convnet)

PAPER_NAMES = [
    "MLP", "LeNet", "ConvNet", "ConvNetW32", "ConvNetW64", "ConvNetW128", "ConvNetW256",
    "ConvNetD1", "ConvNetD2", "ConvNetD3", "ConvNetD4", "ConvNetAS", "ConvNetAR", "ConvNetAL",
    "ConvNetASwish", "ConvNetNP", "ConvNetMP", "ConvNetAP", "ConvNetNN", "ConvNetBN", "ConvNetLN",
    "ConvNetIN", "ConvNetGN", "ConvNetASwishBN", "AlexNet", "AlexNetBN", "VGG11", "VGG11BN",
    "ResNet18", "ResNet18BN", "ResNet18_AP", "ResNet18BN_AP",
]
BATCHNORM_MODELS = {"ConvNetBN", "ConvNetASwishBN", "AlexNetBN", "VGG11BN", "ResNet18BN", "ResNet18BN_AP"}


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    # Tiny batches gain nothing from intra-op threads, and on the 2-core CI box two threads made
    # ResNet18's backward ~20x slower than one. Restored afterwards so other modules are unaffected.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_list_models_is_the_paper_list_in_order():
    assert list_models() == PAPER_NAMES


@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 32, 32)], ids=["1x28x28", "3x32x32"])
@pytest.mark.parametrize("name", list_models())
def test_every_model_runs_forward_and_backward(name, shape):
    torch.manual_seed(0)
    model = build(name, shape[0], 10, shape[1:])
    x = torch.randn(2, *shape)
    out = model(x)
    assert out.shape == (2, 10)
    out.square().mean().backward()
    for pname, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), pname
    emb = model.embed(x)
    assert emb.dim() == 2 and emb.shape == (2, model.classifier.in_features)
    torch.testing.assert_close(model.classifier(emb), out)


def test_default_convnet_parameter_count_for_mnist():
    model = build("ConvNet", 1, 10, 28)
    conv1 = 1 * 128 * 3 * 3 + 128
    conv23 = 2 * (128 * 128 * 3 * 3 + 128)
    instance_norms = 3 * (128 + 128)          # GroupNorm(128, 128) weight + bias, per block
    linear = 128 * 4 * 4 * 10 + 10            # 28 -> 32 (padding 3) -> 16 -> 8 -> 4
    assert sum(p.numel() for p in model.parameters()) == conv1 + conv23 + instance_norms + linear


@pytest.mark.parametrize("name", [n for n in PAPER_NAMES if n.startswith("ConvNet")]
                         + ["ConvNetW64D2", "ConvNetW32D4ALGNMP", "ConvNetD1ASwishLNNP"])
def test_convnet_grammar_round_trips(name):
    cfg = parse_convnet(name)
    assert parse_convnet(cfg.name) == cfg
    assert is_model(name)
    # Names spelling out a default (ConvNetAR, ConvNetD3, ...) print as the shorter canonical name.
    assert len(cfg.name) <= len(name)


def test_convnet_names_parse_to_the_right_configs():
    assert parse_convnet("ConvNet") == ConvNetConfig(128, 3, "relu", "instancenorm", "avgpooling")
    assert parse_convnet("ConvNetAP") == ConvNetConfig(pooling="avgpooling", activation="relu")
    assert parse_convnet("ConvNetAL").activation == "leakyrelu"
    assert parse_convnet("ConvNetLN").norm == "layernorm"
    assert parse_convnet("ConvNetASwishBN") == ConvNetConfig(activation="swish", norm="batchnorm")
    assert parse_convnet("ConvNetW64D2") == ConvNetConfig(width=64, depth=2)
    assert ConvNetConfig(width=64, depth=2, activation="sigmoid", norm="none", pooling="maxpooling").name == \
        "ConvNetW64D2ASNNMP"


@pytest.mark.parametrize("name", ["NoSuchNet", "ConvNetXYZ", "ConvNetW", "ConvNetD0", "ConvNetBNAS"])
def test_unknown_names_raise_config_error_naming_them(name):
    assert not is_model(name)
    with pytest.raises(ConfigError, match=name):
        build(name, 3, 10, 32)


def test_too_deep_for_the_image_is_a_config_error():
    build("ConvNetD5", 3, 10, 32)  # 32 -> 1x1 still works
    with pytest.raises(ConfigError, match="ConvNetD6 on 3x32x32"):
        build("ConvNetD6", 3, 10, 32)


def test_has_batchnorm():
    for name in list_models():
        assert has_batchnorm(build(name, 3, 10, 32)) == (name in BATCHNORM_MODELS), name


def test_convnet_works_with_torch_func_ensembles():
    # Evaluation trains many seeds as one vmapped model; the nets must be stackable as built.
    models = [build("ConvNetW32D2", 1, 10, 28) for _ in range(2)]
    params, buffers = torch.func.stack_module_state(models)

    def run(p, b, x):
        return torch.func.functional_call(models[0], (p, b), (x,))

    x = torch.randn(2, 1, 28, 28)
    out = torch.vmap(run, in_dims=(0, 0, None))(params, buffers, x)
    torch.testing.assert_close(out[1], models[1](x))
