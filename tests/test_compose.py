"""docker/compose.yaml and docker/Dockerfile, checked without a Docker engine.

Images are pinned; every Kindly service runs a command that exists in this project and sets only
environment variables that are Kindly settings (valid ones, with docker/.env.example's values);
the worker can be scaled; every long-running service has a health check and every dependency
exists; the Dockerfile copies only files that exist. Where the Docker CLI's compose plugin is
installed, ``docker compose config`` validates the file as well (it needs no engine).
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import json
import os
import re
import shutil
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import pytest
import typer.main
import yaml
from pydantic_settings import BaseSettings

from kindly.keyring import load_keyring
from kindly.programs.api.settings import ApiSettings
from kindly.programs.sandbox import SandboxSettings
from kindly.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
DOCKER = ROOT / "docker"
COMPOSE_FILE = DOCKER / "compose.yaml"
ENV_EXAMPLE = DOCKER / ".env.example"
SETTINGS_CLASSES: tuple[type[BaseSettings], ...] = (Settings, ApiSettings, SandboxSettings)
# ${NAME}, ${NAME:-default}, ${NAME-default}, ${NAME:?message}, ${NAME?message}
VARIABLE = re.compile(r"\$\{(?P<name>\w+)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}")


def dependencies(service: dict[str, Any]) -> dict[str, str]:
    """``depends_on`` as {service: condition}, from either of its forms."""
    depends_on = service.get("depends_on", {})
    if isinstance(depends_on, list):
        return dict.fromkeys(depends_on, "service_started")
    return {name: spec.get("condition", "service_started") for name, spec in depends_on.items()}


def environment(service: dict[str, Any]) -> dict[str, str]:
    """``environment`` as a dict, from either of its forms."""
    env = service.get("environment", {})
    if isinstance(env, list):
        return dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {name: "" if value is None else str(value) for name, value in env.items()}


COMPOSE: dict[str, Any] = yaml.safe_load(COMPOSE_FILE.read_text())
SERVICES: dict[str, dict[str, Any]] = COMPOSE["services"]
KINDLY_SERVICES = sorted(name for name, service in SERVICES.items() if "build" in service)
ONE_SHOT = sorted(
    {
        target
        for service in SERVICES.values()
        for target, condition in dependencies(service).items()
        if condition == "service_completed_successfully"
    }
)
LONG_RUNNING = sorted(set(SERVICES) - set(ONE_SHOT))


def read_env_file(path: Path) -> dict[str, str]:
    """``KEY=value`` lines as compose reads them (comments, blank lines, single or double quotes)."""
    values: dict[str, str] = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, _, value = line.partition("=")
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        values[name.strip()] = value
    return values


EXAMPLE_ENV = read_env_file(ENV_EXAMPLE)


def interpolate(value: str, variables: dict[str, str]) -> str:
    """Compose's variable substitution, enough for this file; a missing required variable fails."""

    def substitute(match: re.Match[str]) -> str:
        name, op, arg = match["name"], match["op"], match["arg"]
        present = name in variables and (variables[name] != "" or not (op or "").startswith(":"))
        if present:
            return variables[name]
        if op and op.endswith("?"):
            pytest.fail(f"{name} is required ({arg}) but docker/.env.example does not set it")
        return arg or ""

    return VARIABLE.sub(substitute, value.replace("$$", "\0")).replace("\0", "$")


def setting_names() -> dict[str, type[BaseSettings]]:
    """Every environment variable a settings class reads: its prefix plus a field name."""
    names: dict[str, type[BaseSettings]] = {}
    for cls in SETTINGS_CLASSES:
        prefix = str(cls.model_config.get("env_prefix", ""))
        for field in cls.model_fields:
            names[(prefix + field).upper()] = cls
    return names


def command_of(service: dict[str, Any]) -> list[str]:
    command = service.get("command")
    assert command, "a Kindly service names its command (the image's default is the worker)"
    if isinstance(command, str):
        return command.split()
    return [str(part) for part in command]


def check_python_code(code: str) -> None:
    """``python -c`` code compiles and everything it imports exists."""
    tree = ast.parse(code)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                assert importlib.util.find_spec(alias.name) is not None, f"no module {alias.name}"
        elif isinstance(node, ast.ImportFrom) and node.module:
            module = importlib.import_module(node.module)
            for alias in node.names:
                assert hasattr(module, alias.name), f"{node.module} has no {alias.name}"


def check_runnable_module(name: str) -> None:
    """``python -m name`` runs something: a package with ``__main__`` or a module with a main guard."""
    spec = importlib.util.find_spec(name)
    assert spec is not None and spec.origin, f"python -m {name}: no such module"
    if spec.submodule_search_locations is not None:
        assert importlib.util.find_spec(f"{name}.__main__") is not None, f"{name} has no __main__"
        return
    source = Path(spec.origin).read_text()
    assert re.search(r"^if __name__ == ['\"]__main__['\"]:", source, re.MULTILINE), f"{name}: no main"


def check_script(path: str) -> None:
    """``python path.py``: the file is in the project and runs its main."""
    script = ROOT / path
    assert script.is_file(), f"{path} does not exist"
    assert re.search(r"^if __name__ == ['\"]__main__['\"]:", script.read_text(), re.MULTILINE)


def check_console_script(argv: list[str]) -> None:
    """``kindly <command>``: a console script of this project with that (typer) command."""
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert argv[0] in scripts, f"{argv[0]} is not a console script of this project"
    module_name, _, attribute = scripts[argv[0]].partition(":")
    app = getattr(importlib.import_module(module_name), attribute)
    group = typer.main.get_command(app)
    commands = getattr(group, "commands", {})
    assert len(argv) > 1 and argv[1] in commands, f"{argv[0]} has no command {argv[1:2]}: {sorted(commands)}"


# --- images ----------------------------------------------------------------------------------------


def image_is_pinned(image: str) -> bool:
    if "@sha256:" in image:
        return True
    name, _, tag = image.rpartition(":")
    return bool(name) and "/" not in tag and tag not in ("", "latest")


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_every_image_is_pinned(name: str) -> None:
    image = SERVICES[name].get("image")
    assert image, f"{name} names its image (Kindly's: the tag its build produces)"
    assert image_is_pinned(image), f"{name}: image {image!r} is not pinned to a version"


def test_dockerfile_base_images_are_pinned_and_copied_files_exist() -> None:
    builds = {
        (service["build"]["context"], service["build"]["dockerfile"])
        for service in SERVICES.values()
        if "build" in service
    }
    assert builds, "the Kindly services are built from docker/Dockerfile"
    for context, dockerfile in builds:
        context_dir = (DOCKER / context).resolve()
        lines = (context_dir / dockerfile).read_text().replace("\\\n", " ").splitlines()
        stages: set[str] = set()
        copied = 0
        for line in lines:
            words = line.split()
            if not words or words[0].startswith("#"):
                continue
            instruction = words[0].upper()
            if instruction == "FROM":
                args = [word for word in words[1:] if not word.startswith("--")]
                assert args[0] in stages or image_is_pinned(args[0]), f"FROM {args[0]} is not pinned"
                if len(args) == 3 and args[1].upper() == "AS":
                    stages.add(args[2])
            elif instruction in ("COPY", "ADD"):
                if any(word.startswith("--from=") for word in words[1:]):
                    continue
                sources = [word for word in words[1:] if not word.startswith("--")][:-1]
                for source in sources:
                    assert (context_dir / source).exists(), f"{dockerfile}: COPY {source}: no such file"
                    copied += 1
        assert copied, f"{dockerfile} copies the project"


# --- Kindly's services -----------------------------------------------------------------------------


@pytest.mark.parametrize("name", KINDLY_SERVICES)
def test_kindly_service_command_exists_in_the_project(name: str) -> None:
    argv = command_of(SERVICES[name])
    assert "entrypoint" not in SERVICES[name]
    if argv[0] in ("python", "python3"):
        if argv[1] == "-m":
            check_runnable_module(argv[2])
        elif argv[1] == "-c":
            check_python_code(argv[2])
        else:
            check_script(argv[1])
    else:
        check_console_script(argv)


def test_the_expected_kindly_services_are_there() -> None:
    assert {"worker", "api", "sandbox", "kindly-setup"} <= set(KINDLY_SERVICES)
    assert command_of(SERVICES["kindly-setup"]) == ["kindly", "setup"]
    # The sandbox's own entry point (kindly/sandbox/__main__.py), not a ``python -c`` one-liner.
    assert command_of(SERVICES["sandbox"]) == ["python", "-m", "kindly.programs.sandbox"]


@pytest.mark.parametrize("name", KINDLY_SERVICES)
def test_kindly_service_sets_only_real_settings(name: str) -> None:
    known = setting_names()
    unknown = sorted(set(environment(SERVICES[name])) - set(known))
    assert not unknown, f"{name}: not a setting of {[cls.__name__ for cls in SETTINGS_CLASSES]}: {unknown}"


@pytest.mark.parametrize("name", KINDLY_SERVICES)
def test_kindly_service_settings_are_valid_with_the_example_env(
    name: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """With docker/.env.example's values every settings class the service reads accepts them, and
    the key ring they describe opens (no development key file is written)."""
    for variable in list(os.environ):
        if variable.startswith("COLLECTIONS_"):
            monkeypatch.delenv(variable)
    monkeypatch.chdir(tmp_path)  # no stray .env
    env = {key: interpolate(value, EXAMPLE_ENV) for key, value in environment(SERVICES[name]).items()}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    known = setting_names()
    for cls in {known[key] for key in env}:
        settings = cls()
        if isinstance(settings, Settings):
            assert settings.encryption_keys, f"{name}: set the encryption keys, not a development key ring"
            keyring = load_keyring(settings)
            assert keyring.open_text(keyring.seal_text("+8613800138000")) == "+8613800138000"
            assert settings.database_url.startswith("postgresql+psycopg://")
    assert not (tmp_path / ".data").exists()


def test_every_required_variable_is_in_the_example_env_and_every_example_is_used() -> None:
    text = COMPOSE_FILE.read_text()
    used = {match["name"] for match in VARIABLE.finditer(text)}
    required = {match["name"] for match in VARIABLE.finditer(text) if (match["op"] or "").endswith("?")}
    assert not required - set(EXAMPLE_ENV), "required by compose.yaml, missing from .env.example"
    assert not set(EXAMPLE_ENV) - used, "set in .env.example, used nowhere in compose.yaml"


def test_worker_is_scalable() -> None:
    worker = SERVICES["worker"]
    assert "container_name" not in worker, "a fixed name allows one container only"
    assert "ports" not in worker, "a host port allows one container only"
    assert dependencies(worker).get("kindly-setup") == "service_completed_successfully"


# --- health checks and dependencies ----------------------------------------------------------------


@pytest.mark.parametrize("name", LONG_RUNNING)
def test_every_long_running_service_has_a_health_check(name: str) -> None:
    healthcheck = SERVICES[name].get("healthcheck")
    assert healthcheck and healthcheck.get("test") and not healthcheck.get("disable"), name
    test = healthcheck["test"]
    if isinstance(test, list) and test[:3] == ["CMD", "python", "-c"]:
        check_python_code(test[3])


@pytest.mark.parametrize("name", ONE_SHOT)
def test_one_shot_services_are_not_restarted(name: str) -> None:
    assert SERVICES[name].get("restart", "no") in ("no", "on-failure") or str(
        SERVICES[name]["restart"]
    ).startswith("on-failure:")
    assert "healthcheck" not in SERVICES[name]


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_dependencies_exist_and_their_conditions_hold(name: str) -> None:
    for target, condition in dependencies(SERVICES[name]).items():
        assert target in SERVICES, f"{name} depends on unknown service {target}"
        assert condition in ("service_started", "service_healthy", "service_completed_successfully")
        if condition == "service_healthy":
            assert "healthcheck" in SERVICES[target], f"{name} waits for {target} to be healthy"


def test_bind_mounted_files_exist() -> None:
    for name, service in SERVICES.items():
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0] if isinstance(volume, str) else volume.get("source", "")
            if source.startswith("."):
                assert (DOCKER / source).exists(), f"{name}: {source} does not exist"


def test_web_ui_decodes_through_the_api_codec_endpoint() -> None:
    ui = environment(SERVICES["temporal-ui"])
    api = {key: interpolate(value, EXAMPLE_ENV) for key, value in environment(SERVICES["api"]).items()}
    endpoint = interpolate(ui["TEMPORAL_CODEC_ENDPOINT"], EXAMPLE_ENV)
    assert endpoint == f"http://localhost:8000/codec/ui/{api['COLLECTIONS_CODEC_UI_TOKEN']}"
    assert "127.0.0.1:8000:8000" in SERVICES["api"]["ports"]
    origins = ApiSettings.model_validate(
        {"api_key": "x", "codec_cors_origins": json.loads(api["COLLECTIONS_CODEC_CORS_ORIGINS"])}
    )
    assert "http://localhost:8080" in origins.codec_cors_origins


# --- docker compose config ---------------------------------------------------------------------------


def _docker_compose() -> list[str]:
    docker = shutil.which("docker")
    if docker is None:
        pytest.skip("docker compose config not run: no docker CLI here (the checks above ran without it)")
    probe = subprocess.run([docker, "compose", "version"], capture_output=True, text=True, timeout=60)
    if probe.returncode != 0:
        pytest.skip(
            "docker compose config not run: the docker CLI has no compose plugin "
            f"({(probe.stderr or probe.stdout).strip()[:200]})"
        )
    return [docker, "compose", "-f", str(COMPOSE_FILE)]


def _clean_environment() -> dict[str, str]:
    """This process's environment without the variables the compose file reads."""
    names = {match["name"] for match in VARIABLE.finditer(COMPOSE_FILE.read_text())}
    return {key: value for key, value in os.environ.items() if key not in names}


def test_docker_compose_config_accepts_the_file_with_the_example_env() -> None:
    compose = _docker_compose()
    result = subprocess.run(
        [*compose, "--env-file", str(ENV_EXAMPLE), "config", "--format", "json"],
        capture_output=True,
        text=True,
        timeout=60,
        env=_clean_environment(),
    )
    assert result.returncode == 0, result.stderr
    resolved = yaml.safe_load(result.stdout)
    assert set(resolved["services"]) == set(SERVICES)
    api_env = resolved["services"]["api"]["environment"]
    assert api_env["COLLECTIONS_API_KEY"] == EXAMPLE_ENV["COLLECTIONS_API_KEY"]


def test_docker_compose_config_names_a_missing_secret() -> None:
    compose = _docker_compose()
    result = subprocess.run(
        [*compose, "--env-file", os.devnull, "config", "--quiet"],
        capture_output=True,
        text=True,
        timeout=60,
        env=_clean_environment(),
    )
    assert result.returncode != 0
    assert "set it in docker/.env" in result.stderr
