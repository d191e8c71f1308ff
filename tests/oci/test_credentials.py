"""Credentials and TLS against a second real registry (HTTPS with a certificate made in the test, htpasswd):
--username/--password-stdin, ~/.docker/config.json, --ca-file, refused credentials as one line, exit 2, and
no credential in any output, log, report or cached file."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from pathlib import Path

import pytest

from conv2d_bundle.oci.client import RegistryClient
from conv2d_bundle.oci.credentials import Credentials, from_docker_config
from conv2d_bundle.oci.reference import parse_ref
from tests.conftest import ROOT
from tests.oci.conftest import SecureRegistry


def run(*args: str, env: dict[str, str], stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "conv2d_bundle.cli", *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=600,
    )


def secrets_of(sec: SecureRegistry) -> list[str]:
    token = base64.b64encode(f"{sec.username}:{sec.password}".encode()).decode()
    return [sec.password, token]


def test_password_stdin_and_ca_file_push_and_pull(
    example_bundle: Path, secure_registry: SecureRegistry, cli_env: dict[str, str], tmp_path: Path
) -> None:
    sec = secure_registry
    ref = sec.registry.ref("secure/dogs:v1")
    login = ("--username", sec.username, "--password-stdin", "--ca-file", str(sec.ca_file))
    pushed = run(
        "-v", "pack", "push", str(example_bundle), ref, *login, env=cli_env, stdin=sec.password + "\n"
    )
    assert pushed.returncode == 0, pushed.stderr
    out = tmp_path / "pulled"
    pulled = run("pack", "pull", ref, "--output-dir", str(out), *login, env=cli_env, stdin=sec.password)
    assert pulled.returncode == 0, pulled.stderr
    for text in (pushed.stdout, pushed.stderr, pulled.stdout, pulled.stderr):
        assert not any(s in text for s in secrets_of(sec))


def test_docker_config_auths_are_used(
    example_bundle: Path, secure_registry: SecureRegistry, cli_env: dict[str, str], tmp_path: Path
) -> None:
    sec = secure_registry
    docker = Path(cli_env["DOCKER_CONFIG"])
    docker.mkdir(parents=True)
    auth = base64.b64encode(f"{sec.username}:{sec.password}".encode()).decode()
    (docker / "config.json").write_text(json.dumps({"auths": {sec.registry.host: {"auth": auth}}}))
    found = from_docker_config(sec.registry.host, docker / "config.json")
    assert found is not None and (found.username, found.password) == (sec.username, sec.password)
    ref = sec.registry.ref("secure/config:v1")
    pushed = run("pack", "push", str(example_bundle), ref, "--ca-file", str(sec.ca_file), env=cli_env)
    assert pushed.returncode == 0, pushed.stderr


@pytest.mark.parametrize("how", ["wrong password", "no credentials", "no ca file"])
def test_refused_is_one_line_exit_2_without_the_secret(
    how: str, example_bundle: Path, secure_registry: SecureRegistry, cli_env: dict[str, str]
) -> None:
    sec = secure_registry
    args = ["pack", "push", str(example_bundle), sec.registry.ref("secure/refused:v1")]
    stdin = None
    if how == "wrong password":
        args += ["--username", sec.username, "--password-stdin", "--ca-file", str(sec.ca_file)]
        stdin = sec.password + "-wrong"
    elif how == "no credentials":
        args += ["--ca-file", str(sec.ca_file)]
    result = run(*args, env=cli_env, stdin=stdin)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr, result.stderr
    expected = {
        "wrong password": "refused the credentials",
        "no credentials": "needs credentials",
        "no ca file": "TLS certificate not trusted",
    }[how]
    assert expected in result.stderr
    assert not any(s in result.stdout + result.stderr for s in secrets_of(sec))


def test_no_credential_reaches_a_report_the_cache_or_the_logs(
    example_bundle: Path, secure_registry: SecureRegistry, cli_env: dict[str, str]
) -> None:
    sec = secure_registry
    ref = sec.registry.ref("secure/attest:v1")
    login = ("--username", sec.username, "--password-stdin", "--ca-file", str(sec.ca_file))
    assert (
        run("pack", "push", str(example_bundle), ref, *login, env=cli_env, stdin=sec.password).returncode == 0
    )
    verified = run(
        "--debug", "pack", "verify", ref, "--target", "general", "--profile", "quick", "--attest", *login,
        env=cli_env, stdin=sec.password,
    )  # fmt: skip
    assert verified.returncode == 0, verified.stdout + verified.stderr
    shown = run("pack", "show", ref, "--json", *login, env=cli_env, stdin=sec.password)
    assert json.loads(shown.stdout)["evidence"]["general"][0]["verdict"] == "passed"
    texts = [verified.stdout, verified.stderr, shown.stdout, shown.stderr]
    texts += [p.read_text(errors="replace") for p in Path(cli_env["CONV2D_CACHE"]).rglob("*") if p.is_file()]
    assert not any(s in text for text in texts for s in secrets_of(sec))


def test_plain_http_only_for_loopback_or_insecure() -> None:
    assert parse_ref("oci://127.0.0.1:5000/a/b").is_loopback and parse_ref("oci://localhost/a/b").is_loopback
    assert parse_ref("oci://[::1]:5000/a/b").is_loopback
    remote = parse_ref("oci://registry.example.com/a/b")
    assert not remote.is_loopback
    with RegistryClient(remote) as client:
        assert not client._plain_ok
    with RegistryClient(remote, insecure=True) as client:
        assert client._plain_ok
    assert "s3cret" not in repr(Credentials("u", "s3cret"))
