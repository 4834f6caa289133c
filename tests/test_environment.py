"""Environment values are read strictly (condense.environment): one line naming the variable."""
import pytest

from condense import environment
from condense.errors import ConfigError


@pytest.mark.parametrize("address", ["auto", "local", "127.0.0.1:6379", "ray://head-node:10001", "[::1]:6379",
                                     "head_1.cluster.local:1"])
def test_ray_addresses_of_every_documented_form_are_taken_as_given(address):
    assert environment.ray_address(address, "RAY_ADDRESS") == address


@pytest.mark.parametrize("address", ["127.0.0.1:١٢٣", "host:0", "host:65536", "host", ":6379", "host:63 79",
                                     "hôst:6379", "host:6379\n", "ray://host"])
def test_a_ray_address_that_is_not_one_names_where_it_came_from(address):
    with pytest.raises(ConfigError, match=r"^RAY_ADDRESS=.*expected host:port"):
        environment.ray_address(address, "RAY_ADDRESS")
    with pytest.raises(ConfigError, match=r"^--address .*expected host:port"):
        environment.ray_address(address, "--address")


def test_folders_texts_and_counts(monkeypatch, tmp_path):
    from evaluation.reference import resolve_cache_dir

    monkeypatch.setenv("DC_CACHE", str(tmp_path))
    assert resolve_cache_dir() == tmp_path
    monkeypatch.setenv("DC_CACHE", "~nosuchuser-dc/cache")
    with pytest.raises(ConfigError, match=r"^DC_CACHE='~nosuchuser-dc/cache': cannot expand it"):
        resolve_cache_dir()
    env = {"N": "١٢", "M": "12", "T": "a\tb"}
    with pytest.raises(ConfigError, match=r"^N='١٢' is not a node count \(ASCII digits\)"):
        environment.count("N", env, "node count")
    assert environment.count("M", env) == 12 and environment.count("unset", env) is None
    with pytest.raises(ConfigError, match=r"^T='a\\tb': expected one line of printable text"):
        environment.text("T", env)


def test_a_calibration_folder_and_file_are_named(monkeypatch, tmp_path):
    from orchestrator.sweep import cost

    monkeypatch.setenv("DC_CALIBRATIONS", str(tmp_path / "none"))
    with pytest.raises(ConfigError, match=r"^DC_CALIBRATIONS=.*/none: no such folder"):
        cost.available()
    monkeypatch.setenv("DC_CALIBRATIONS", str(tmp_path))
    assert cost.choose("cpu") == (None, f"no calibration in {tmp_path} (DC_CALIBRATIONS): run benchmarks/calibrate.py")
    (tmp_path / "cut.json").write_text('{"device": "x", "probes": {"1x28')
    with pytest.raises(ConfigError, match=r"cut.json: not a calibration file \(Unterminated string"):
        cost.available()
