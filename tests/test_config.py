"""The one configuration: ``face3d_core.config.Settings`` parsed from ``FACE3D_*`` variables.

Each type parses, each bad value gives a clear :class:`ConfigError` naming the variable, defaults,
the per-environment caching of :func:`get_settings`, the README table generated from the settings,
real processes (``python -m dashboard``, the ``face3d`` CLI) exiting with one line on a bad value,
and that no module but ``config`` reads the environment.
"""

from __future__ import annotations

import ast
import dataclasses
import logging
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from face3d_core import config
from face3d_core.config import Settings, get_settings, markdown_table, setting_of
from face3d_core.errors import ConfigError, Face3DError

REPO_ROOT = Path(__file__).resolve().parent.parent
SOURCE_DIRS = (REPO_ROOT / "face3d_core", REPO_ROOT / "dashboard")
ENV_NAMES = {setting_of(f).env for f in dataclasses.fields(Settings)}


def _parse(**env: str) -> Settings:
    return Settings.from_env(env)


# -- each type parses ------------------------------------------------------------------------


def test_whole_numbers_and_numbers_parse():
    settings = _parse(
        FACE3D_JOB_WORKERS=" 3 ",
        FACE3D_PORT="8080",
        FACE3D_CACHE_TTL_S="3600",
        FACE3D_CACHE_SIZE_MB="512.5",
        FACE3D_JOB_HEARTBEAT_S="0.2",
    )
    assert (settings.job_workers, settings.port, settings.cache_ttl_s) == (3, 8080, 3600)
    assert isinstance(settings.job_workers, int) and isinstance(settings.cache_ttl_s, int)
    assert settings.cache_size_mb == 512.5 and settings.job_heartbeat_s == 0.2


@pytest.mark.parametrize("word", ["1", "true", "yes", "on", "TRUE", " Yes ", "On"])
def test_yes_words(word):
    assert _parse(FACE3D_OFFLINE=word).offline is True


@pytest.mark.parametrize("word", ["0", "false", "no", "off", "False", " NO "])
def test_no_words(word):
    assert _parse(FACE3D_OFFLINE=word).offline is False


def test_paths_expand_the_home_folder(tmp_path):
    settings = _parse(FACE3D_CACHE_DIR="~/face3d-cache", FACE3D_WEIGHTS_DIR=str(tmp_path), FACE3D_YUNET_PATH="~/y.onnx")
    assert settings.cache_dir == Path.home() / "face3d-cache"
    assert settings.weights_dir == tmp_path
    assert settings.yunet_path == Path.home() / "y.onnx"


@pytest.mark.parametrize(
    ("name", "text", "attribute", "value"),
    [
        ("FACE3D_DEVICE", "cpu", "device", "cpu"),
        ("FACE3D_DEVICE", "CUDA", "device", "cuda"),
        ("FACE3D_DEVICE", "cuda:1", "device", "cuda:1"),
        ("FACE3D_DEVICE", "mps", "device", "mps"),
        ("FACE3D_PRECISION", "bf16", "precision", "bf16"),
        ("FACE3D_PRECISION", "FP16", "precision", "fp16"),
        ("FACE3D_BACKEND", "onnxruntime", "backend", "onnxruntime"),
        ("FACE3D_BACKEND", "torch", "backend", "torch"),
        ("FACE3D_HOST", "0.0.0.0", "host", "0.0.0.0"),
        ("FACE3D_REDIS_URL", "redis://:pw@10.0.0.5:6379/0", "redis_url", "redis://:pw@10.0.0.5:6379/0"),
        ("FACE3D_REDIS_URL", "unix:///run/redis.sock", "redis_url", "unix:///run/redis.sock"),
    ],
)
def test_choices_and_text(name, text, attribute, value):
    assert getattr(_parse(**{name: text}), attribute) == value


# -- bad values ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "text", "says"),
    [
        ("FACE3D_JOB_WORKERS", "abc", "is not a whole number: set it to a number such as 2, or unset it."),
        ("FACE3D_JOB_WORKERS", "1.5", "is not a whole number"),
        ("FACE3D_JOB_WORKERS", "0", "is less than 1"),
        ("FACE3D_PORT", "99999", "is more than 65535"),
        ("FACE3D_PORT", "http", "is not a whole number"),
        ("FACE3D_CACHE_TTL_S", "-5", "is less than 1"),
        ("FACE3D_CACHE_TTL_S", "a month", "is not a whole number"),
        ("FACE3D_JOB_HEARTBEAT_S", "fast", "is not a number"),
        ("FACE3D_JOB_HEARTBEAT_S", "0", "is not more than 0"),
        ("FACE3D_JOB_HEARTBEAT_S", "nan", "is not a finite number"),
        ("FACE3D_CACHE_SIZE_MB", "-5", "is not more than 0"),
        ("FACE3D_OFFLINE", "maybe", "is not yes or no"),
        ("FACE3D_DEVICE", "gpu", "is not one of auto, cpu, cuda, cuda:N, mps"),
        ("FACE3D_DEVICE", "cuda:x", "is not one of"),
        ("FACE3D_PRECISION", "int4", "is not one of auto, fp32, bf16, fp16"),
        ("FACE3D_BACKEND", "tensorrt", "is not one of auto, openvino, onnxruntime, torch"),
        ("FACE3D_REDIS_URL", "10.0.0.5:6379", "is not a Redis URL"),
    ],
)
def test_bad_values_raise_a_clear_error_naming_the_variable(name, text, says):
    with pytest.raises(ConfigError) as info:
        _parse(**{name: text})
    message = str(info.value)
    assert message.startswith(f"{name}={text!r} ")
    assert says in message
    assert message.endswith("or unset it.")
    assert info.value.variable == name
    assert isinstance(info.value, Face3DError) and info.value.title == "Configuration problem"


def test_the_secret_key_must_be_long_and_is_never_shown(monkeypatch, capsys):
    from face3d_core.config import main

    with pytest.raises(ConfigError) as info:
        _parse(FACE3D_SECRET_KEY="hunter2-too-short")
    assert "shorter than 32 characters" in str(info.value) and "hunter2" not in str(info.value)
    secret = "s3cr3t-" * 8
    assert _parse(FACE3D_SECRET_KEY=secret).secret_key == secret
    monkeypatch.setenv("FACE3D_SECRET_KEY", secret)
    assert main([]) == 0
    printed = capsys.readouterr().out
    assert "FACE3D_SECRET_KEY=*** (set)" in printed and "s3cr3t" not in printed


def test_cache_size_that_is_not_a_number_is_ignored_with_a_warning(caplog):
    # Kept from earlier versions (tests/test_cache.py relies on it); out-of-range values raise (above).
    with caplog.at_level(logging.WARNING, logger="face3d_core.config"):
        settings = _parse(FACE3D_CACHE_SIZE_MB="lots")
    assert settings.cache_size_mb == config.DEFAULT_CACHE_SIZE_MB
    assert any("FACE3D_CACHE_SIZE_MB" in record.getMessage() for record in caplog.records)


# -- defaults --------------------------------------------------------------------------------


def test_defaults_when_unset_or_empty():
    for settings in (
        _parse(),
        _parse(**{name: "" for name in ENV_NAMES}),
        _parse(**{name: "  " for name in ENV_NAMES}),
    ):
        assert settings.job_workers == 1
        assert settings.port == 8050 and settings.host == "127.0.0.1"
        assert settings.cache_size_mb == 2048
        assert settings.cache_ttl_s == 30 * 24 * 3600
        assert settings.job_heartbeat_s == 5
        assert (settings.device, settings.precision, settings.backend) == ("auto", "auto", "auto")
        assert settings.offline is False
        assert settings.weights_dir is None and settings.yunet_path is None and settings.redis_url is None
        assert settings.cache_dir == Path.home() / ".cache" / "face3d"  # no XDG_CACHE_HOME in these mappings


def test_default_cache_dir_follows_xdg(tmp_path):
    assert _parse(XDG_CACHE_HOME=str(tmp_path)).cache_dir == tmp_path / "face3d"
    assert _parse(XDG_CACHE_HOME=str(tmp_path), FACE3D_CACHE_DIR=str(tmp_path / "own")).cache_dir == tmp_path / "own"


def test_every_setting_is_described_once():
    names = [setting_of(f).env for f in dataclasses.fields(Settings)]
    assert len(names) == len(set(names))
    for f in dataclasses.fields(Settings):
        setting = setting_of(f)
        assert re.fullmatch(r"FACE3D_[A-Z0-9_]+", setting.env)
        assert setting.help and "\n" not in setting.help and setting.parser.kind
    with pytest.raises(dataclasses.FrozenInstanceError):
        _parse().job_workers = 2  # type: ignore[misc]


# -- get_settings: built once per environment -------------------------------------------------


def test_get_settings_is_rebuilt_only_when_the_environment_changes(monkeypatch):
    monkeypatch.setenv("FACE3D_JOB_WORKERS", "2")
    first = get_settings()
    assert first.job_workers == 2
    assert get_settings() is first
    monkeypatch.setenv("FACE3D_UNRELATED_TEST_KNOB_X", "1")  # another FACE3D_ item: a new snapshot ...
    assert get_settings() == first  # ... same values
    monkeypatch.setenv("SOME_OTHER_VARIABLE_OF_THE_TEST", "x")  # not a FACE3D_ item: no rebuild
    second = get_settings()
    assert get_settings() is second
    monkeypatch.setenv("FACE3D_JOB_WORKERS", "5")
    changed = get_settings()
    assert changed is not second and changed.job_workers == 5
    monkeypatch.delenv("FACE3D_JOB_WORKERS")
    assert get_settings().job_workers == 1


def test_get_settings_raises_every_time_while_a_value_is_bad(monkeypatch):
    monkeypatch.setenv("FACE3D_JOB_WORKERS", "abc")
    for _ in range(2):
        with pytest.raises(ConfigError, match="FACE3D_JOB_WORKERS='abc' is not a whole number"):
            get_settings()
    monkeypatch.setenv("FACE3D_JOB_WORKERS", "3")
    assert get_settings().job_workers == 3


def test_modules_read_their_settings_through_config(monkeypatch, tmp_path):
    from dashboard.jobs_celery import heartbeat_interval
    from face3d_core.faces import resolve_yunet_path
    from face3d_core.weights import cache_dir, offline, weights_dir

    monkeypatch.setenv("FACE3D_CACHE_DIR", str(tmp_path / "c"))
    monkeypatch.setenv("FACE3D_WEIGHTS_DIR", str(tmp_path / "w"))
    monkeypatch.setenv("FACE3D_OFFLINE", "yes")  # "yes" was ignored by some readers before
    monkeypatch.setenv("FACE3D_JOB_HEARTBEAT_S", "0.25")
    detector = tmp_path / "yunet.onnx"
    detector.write_bytes(b"x")
    monkeypatch.setenv("FACE3D_YUNET_PATH", str(detector))
    assert cache_dir() == tmp_path / "c" and weights_dir() == tmp_path / "w" and offline() is True
    assert heartbeat_interval() == 0.25
    assert resolve_yunet_path() == detector


# -- README ----------------------------------------------------------------------------------


def _readme_configuration_table() -> str:
    text = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("\n## Configuration\n", 1)[1].split("\n## ", 1)[0]
    return "".join(line + "\n" for line in section.splitlines() if line.startswith("|"))


def test_readme_table_is_the_generated_one():
    generated = subprocess.run(
        [sys.executable, "-m", "face3d_core.config", "--markdown"],
        env=_child_env(),
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    assert generated == markdown_table()
    assert _readme_configuration_table() == generated, (
        "README.md's configuration table is out of date: replace it with the output of "
        "`python -m face3d_core.config --markdown`"
    )
    assert len(generated.splitlines()) == 2 + len(ENV_NAMES)


# -- real processes --------------------------------------------------------------------------


def _child_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FACE3D_")}
    env["PYTHONPATH"] = str(REPO_ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env.update(extra)
    return env


@pytest.mark.parametrize(
    "argv",
    [
        pytest.param(["-m", "dashboard"], id="python -m dashboard"),
        pytest.param(["-m", "face3d_core.cli", "models"], id="face3d models"),
    ],
)
def test_a_bad_value_stops_a_program_with_one_line(argv, tmp_path):
    completed = subprocess.run(
        [sys.executable, *argv],
        env=_child_env(FACE3D_JOB_WORKERS="abc", FACE3D_CACHE_DIR=str(tmp_path)),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert completed.returncode == 1
    lines = completed.stderr.strip().splitlines()
    assert len(lines) == 1, completed.stderr
    assert "error: FACE3D_JOB_WORKERS='abc' is not a whole number: set it to a number such as 2" in lines[0]
    assert "Traceback" not in completed.stderr and not completed.stdout


def test_dashboard_on_an_unusable_cache_folder_stops_with_one_line(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    completed = subprocess.run(
        [sys.executable, "-m", "dashboard"],
        env=_child_env(FACE3D_CACHE_DIR=str(blocker / "cache"), FACE3D_OFFLINE="1"),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert completed.returncode == 1
    last = completed.stderr.strip().splitlines()[-1]
    assert last.startswith("python -m dashboard: error: ") and "Set FACE3D_CACHE_DIR to a writable folder" in last
    assert "Traceback" not in completed.stderr


# -- nothing else reads the environment ----------------------------------------------------------


def _environment_reads(tree: ast.AST) -> list[int]:
    """Line numbers of ``os.environ`` / ``environ`` / ``os.getenv`` / ``getenv`` in a module."""
    lines = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr in {"environ", "getenv", "environb", "getenvb"}:
            lines.append(node.lineno)
        elif isinstance(node, ast.Name) and node.id in {"environ", "getenv"}:
            lines.append(node.lineno)
        elif isinstance(node, ast.ImportFrom) and node.module == "os":
            if any(alias.name in {"environ", "getenv"} for alias in node.names):
                lines.append(node.lineno)
    return sorted(set(lines))


def test_only_config_reads_the_environment():
    offenders = []
    for folder in SOURCE_DIRS:
        for path in sorted(folder.rglob("*.py")):
            if path == REPO_ROOT / "face3d_core" / "config.py":
                continue
            for line in _environment_reads(ast.parse(path.read_text(encoding="utf-8"))):
                offenders.append(f"{path.relative_to(REPO_ROOT)}:{line}")
    assert not offenders, f"read settings through face3d_core.config.get_settings(), not os.environ: {offenders}"


def test_the_environment_check_finds_reads():
    sample = "import os\nfrom os import getenv\nA = os.environ.get('FACE3D_X')\nB = os.getenv('FACE3D_Y')\n"
    assert _environment_reads(ast.parse(sample)) == [2, 3, 4]


def test_every_variable_the_code_mentions_is_a_setting():
    mentioned = set()
    for folder in SOURCE_DIRS:
        for path in folder.rglob("*.py"):
            mentioned |= set(re.findall(r"FACE3D_[A-Z][A-Z0-9_]*", path.read_text(encoding="utf-8")))
    assert mentioned - ENV_NAMES == set()
