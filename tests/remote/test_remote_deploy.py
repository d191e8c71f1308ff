"""deploy --to host:path over a real sshd + rsync: staged under a temporary name, compared, renamed with mv;
undeploy forgets a deployment (and with --remove deletes the copy) so that clean can free the bundle."""

from __future__ import annotations

import json
import shutil
import stat
import sys
from pathlib import Path

from click.testing import CliRunner

from conv2d_bundle import cli
from conv2d_bundle.bundle.manifest import BundleManifest
from conv2d_bundle.lifecycle.retention import deployed, deployments
from tests.remote.conftest import SshHost


def invoke(*args: str) -> tuple[int, str, str]:
    r = CliRunner().invoke(cli.main, list(args))
    return r.exit_code, r.stdout, r.stderr


def errors(stderr: str) -> list[str]:
    """The error lines (deploy's progress lines go to stderr too)."""
    return [line for line in stderr.splitlines() if line.startswith("error:")]


def deploy(bundle: Path, to: str, ssh: str, *extra: str) -> tuple[int, str, str]:
    return invoke(
        "pack", "deploy", bundle.name, "--output-dir", str(bundle.parent), "--to", to, "--ssh", ssh, *extra
    )


def test_deploy_over_ssh_stages_compares_and_renames(
    bundle_copy: Path, ssh_host: SshHost, tmp_path: Path
) -> None:
    h, device = bundle_copy.name, tmp_path / "device" / "opt" / "models"
    code, out, err = deploy(bundle_copy, ssh_host.dest(device), ssh_host.ssh)
    assert code == 0, err
    assert f"deployed to device:{device}/{h}" in out
    assert sorted(p.name for p in device.iterdir()) == [h]  # no .tmp-deploy-* left on the device
    assert BundleManifest.load(bundle_copy).verify(device / h).ok
    (record,) = deployments(bundle_copy.parent)
    assert record["destination"] == f"device:{device}/{h}" and record["verified"] is True

    code, out, err = deploy(bundle_copy, ssh_host.dest(device), ssh_host.ssh)
    assert code == 0 and "already deployed (verified intact)" in out, err
    assert len(deployments(bundle_copy.parent)) == 1  # the same deployment again is one record


def test_a_differing_remote_copy_is_replaced_only_with_force(
    bundle_copy: Path, ssh_host: SshHost, tmp_path: Path
) -> None:
    h, device = bundle_copy.name, tmp_path / "device"
    assert deploy(bundle_copy, ssh_host.dest(device), ssh_host.ssh)[0] == 0
    (device / h / "metrics.json").write_text("{}")
    (device / h / "stray.bin").write_bytes(b"x")

    code, _, err = deploy(bundle_copy, ssh_host.dest(device), ssh_host.ssh)
    assert code == 2
    assert (
        "does not match the bundle (2 file(s) differ" in err and "metrics.json" in err and "stray.bin" in err
    )
    assert (device / h / "metrics.json").read_text() == "{}"  # refused: nothing touched

    code, _, err = deploy(bundle_copy, ssh_host.dest(device), ssh_host.ssh, "--force")
    assert code == 0, err
    assert BundleManifest.load(bundle_copy).verify(device / h).ok and not (device / h / "stray.bin").exists()
    assert sorted(p.name for p in device.iterdir()) == [h]


def test_an_interrupted_copy_never_has_the_final_name_and_a_rerun_sends_what_is_missing(
    bundle_copy: Path, ssh_host: SshHost, tmp_path: Path
) -> None:
    h, device = bundle_copy.name, tmp_path / "device"
    # the link drops after 200 kB of the transfer: the receiving rsync sees the connection end mid-copy
    flaky = tmp_path / "flaky-ssh"
    flaky.write_text(
        f"#!{sys.executable}\n"
        "import os, shlex, subprocess, sys\n"
        f"ssh = shlex.split({ssh_host.ssh!r}) + sys.argv[1:]\n"
        "if 'rsync --server' not in ' '.join(sys.argv[1:]):\n"
        "    os.execvp(ssh[0], ssh)\n"
        "proc = subprocess.Popen(ssh, stdin=subprocess.PIPE)\n"
        "sent = 0\n"
        "while sent < 200_000 and (chunk := os.read(0, 65536)):\n"
        "    proc.stdin.write(chunk)\n"
        "    proc.stdin.flush()\n"
        "    sent += len(chunk)\n"
        "proc.stdin.close()\n"  # what was sent arrives, then the stream ends: deterministic, not a race
        "proc.wait(timeout=60)\n"
        "os._exit(255)\n"
    )
    flaky.chmod(flaky.stat().st_mode | stat.S_IXUSR)
    code, _, err = deploy(bundle_copy, ssh_host.dest(device), str(flaky))
    (error,) = errors(err)
    assert code == 2 and error.startswith("error: copying to") and "on device failed" in error, err
    assert not (device / h).exists()
    staged = device / f".tmp-deploy-{h}"
    kept = {  # rsync's own temporary files (.name.XXXXXX) are not copies of bundle files
        p.relative_to(staged): p.stat().st_ino for p in staged.rglob("*") if p.is_file() and p.name[0] != "."
    }
    total = sum(1 for p in bundle_copy.rglob("*") if p.is_file())
    assert 0 < len(kept) < total  # a part arrived, not all of it
    assert deployed(bundle_copy.parent) == set()

    code, _, err = deploy(bundle_copy, ssh_host.dest(device), ssh_host.ssh)
    assert code == 0, err
    assert sorted(p.name for p in device.iterdir()) == [h]
    assert BundleManifest.load(bundle_copy).verify(device / h).ok
    # what arrived the first time was not sent again: rsync left those files as they were
    assert {rel: (device / h / rel).stat().st_ino for rel in kept} == kept


def test_an_unreachable_host_is_one_line(bundle_copy: Path, ssh_host: SshHost, tmp_path: Path) -> None:
    code, _, err = deploy(bundle_copy, f"device:{tmp_path}", f"{ssh_host.ssh} -o Port=1 -o ConnectTimeout=5")
    (error,) = errors(err)
    assert code == 2 and error.startswith("error: cannot reach device over ssh"), err
    assert deployed(bundle_copy.parent) == set()


def test_undeploy_forgets_so_clean_can_free_and_remove_deletes_the_copy(
    bundle_copy: Path, ssh_host: SshHost, tmp_path: Path
) -> None:
    art, h = bundle_copy.parent, bundle_copy.name
    local, device = tmp_path / "local", tmp_path / "device"
    assert invoke("pack", "deploy", h, "--output-dir", str(art), "--to", str(local))[0] == 0
    assert deploy(bundle_copy, ssh_host.dest(device), ssh_host.ssh)[0] == 0
    assert len(deployments(art)) == 2

    code, out, err = invoke("pack", "clean", "--keep", "0", "--output-dir", str(art), "--json")
    assert code == 0 and json.loads(out)["removed"] == [], err  # deployed: kept

    code, _, err = invoke("pack", "undeploy", h[:6], "--output-dir", str(art), "--to", "elsewhere:/x")
    assert code == 2 and "not recorded as deployed to elsewhere:/x" in err and str(local / h) in err

    code, out, err = invoke("pack", "undeploy", h[:6], "--output-dir", str(art), "--to", str(local))
    assert code == 0 and f"undeployed {h} from {local.absolute() / h}" in out, err
    assert (local / h).is_dir()  # forgotten, not deleted
    assert [d["destination"] for d in deployments(art)] == [f"device:{device}/{h}"]

    (device / f".tmp-deploy-{h}").mkdir()  # what an interrupted deploy would have left
    code, out, err = invoke(
        "pack", "undeploy", h, "--output-dir", str(art), "--remove", "--ssh", ssh_host.ssh, "--json"
    )
    assert code == 0, err
    (gone,) = json.loads(out)["undeployed"]
    assert gone["destination"] == f"device:{device}/{h}" and gone["removed"] is True
    assert list(device.iterdir()) == [] and deployments(art) == []

    code, out, err = invoke("pack", "clean", "--keep", "0", "--output-dir", str(art), "--json")
    assert code == 0 and [r["exp_hash"] for r in json.loads(out)["removed"]] == [h], err

    code, _, err = invoke("pack", "undeploy", h, "--output-dir", str(art))
    assert code == 2 and "no deployment of it is recorded" in err


def test_undeploy_remove_refuses_what_is_not_a_bundle(bundle_copy: Path, tmp_path: Path) -> None:
    art, h = bundle_copy.parent, bundle_copy.name
    dest = tmp_path / "dest"
    assert invoke("pack", "deploy", h, "--output-dir", str(art), "--to", str(dest))[0] == 0
    shutil.rmtree(dest / h)
    (dest / h).mkdir()
    (dest / h / "notes.txt").write_text("someone else's files, under the bundle's name")
    code, _, err = invoke("pack", "undeploy", h, "--output-dir", str(art), "--remove")
    assert code == 2 and "is not a bundle; not removing it" in err
    assert (dest / h / "notes.txt").exists() and deployed(art) == {h}  # nothing lost: still recorded
