"""``conv2d pack verify``: run a bundle's checks for a target and say what the verdict is."""

from __future__ import annotations

import contextlib
import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from conv2d_bundle.cli.options import artifacts_option, one_line, target_option
from conv2d_bundle.cli.registry import registry_options
from conv2d_bundle.errors import BundleError


@click.command()
@click.argument("bundle_ref")
@artifacts_option
@target_option("deployment target")
@click.option("--junitxml", type=click.Path(path_type=Path), help="also write JUnit XML here")
@click.option(
    "-n",
    "numprocesses",
    help="parallel workers (pytest-xdist), e.g. 2 or auto. For one bundle it is usually slower: each worker "
    "starts its own pytest and onnxruntime, and one fuzz check holds ~99% of a --profile thorough run and is "
    "never split (2 cores, 2026-11-28: 4.4 s vs 3.3 s serial at the then-default profile, 97 s vs 81 s with "
    "--profile thorough). For many bundles, run several verifies side by side instead (README: When -n pays off).",
)
@click.option("--strict-targets", is_flag=True, help="count skipped checks as failed")
@click.option(
    "--profile", default="default", type=click.Choice(["quick", "default", "thorough"]), help="fuzzing budget"
)
@click.option("-k", "select", help="only checks matching this pytest -k expression (e.g. test_parity)")
@click.option(
    "--trusted-key",
    type=click.Path(path_type=Path),
    help="Ed25519 public key: fail unless the bundle is signed by it",
)
@click.option(
    "--tolerance-policy",
    type=click.Path(path_type=Path),
    help="the verifier's parity tolerance caps (YAML/JSON); default: the built-in policy",
)
@click.option(
    "--attest",
    is_flag=True,
    help="oci:// only: attach each target's report to the bundle in the registry (evidence)",
)
@click.option(
    "--key",
    "key_path",
    type=click.Path(path_type=Path),
    help="with --attest: sign the evidence (DSSE, Ed25519 private key as for conv2d pack sign)",
)
@click.option(
    "--require-evidence",
    metavar="TARGETS",
    help="oci:// only: pass only if each of these targets (comma list) has a complete, passed report attached "
    "from a host that ran all its checks, about this bundle's content, made under a tolerance policy no looser "
    "than --tolerance-policy (default: the built-in one) and signed by --trusted-key (without a key, only "
    "with --allow-unsigned); runs no checks here unless --target is given too",
)
@click.option(
    "--require-strict",
    is_flag=True,
    help="with --require-evidence: count only reports made with --strict-targets",
)
@click.option(
    "--allow-unsigned",
    is_flag=True,
    help="with --require-evidence and no --trusted-key: accept evidence no key vouches for (and say which)",
)
@registry_options
def verify(**params: Any) -> None:
    """Run the bundle's checks for a target; exit 0 if the run was complete and passed, 1 if a check failed or
    the run was incomplete (interrupted, a selection, a crashed worker).

    BUNDLE may be oci://HOST[:PORT]/REPO[:TAG|@DIGEST]: it is pulled into the cache ($CONV2D_CACHE) first;
    --attest then attaches the reports to it in the registry, and --require-evidence checks what is attached."""
    names = {f.name for f in dataclasses.fields(VerifyOptions)}
    options = VerifyOptions(**{k: v for k, v in params.items() if k in names})
    registry = {k: v for k, v in params.items() if k not in names}
    if (options.require_strict or options.allow_unsigned) and not options.require_evidence:
        raise click.UsageError("--require-strict and --allow-unsigned go with --require-evidence")
    if options.allow_unsigned and options.trusted_key:
        raise click.UsageError(
            "--allow-unsigned contradicts --trusted-key: a trusted key asks for signed evidence"
        )
    remote = None
    if options.bundle_ref.startswith("oci://"):
        from conv2d_bundle.cli.registry import RegistryAccess, RemoteBundle

        remote = RemoteBundle(options.bundle_ref, RegistryAccess.from_kwargs(registry))
    elif options.attest or options.require_evidence:
        raise BundleError("--attest and --require-evidence need an oci:// reference")
    with remote or contextlib.nullcontext():
        _verify(remote, options)


@dataclass(frozen=True)
class VerifyOptions:
    """What ``conv2d pack verify`` was asked, from the command line to the run (the registry's options
    travel separately, in :class:`~conv2d_bundle.cli.registry.RegistryAccess`)."""

    bundle_ref: str
    output_dir: Path
    target: str
    junitxml: Path | None = None
    numprocesses: str | None = None
    strict_targets: bool = False
    profile: str = "default"
    select: str | None = None
    trusted_key: Path | None = None
    tolerance_policy: Path | None = None
    attest: bool = False
    key_path: Path | None = None
    require_evidence: str | None = None
    require_strict: bool = False
    allow_unsigned: bool = False

    def pytest_args(self) -> list[str]:
        """The plugin's options for these choices (a bad tolerance policy is bad input: exit 2, not a failed
        check)."""
        args: list[str] = []
        if self.junitxml:
            args += ["--junitxml", str(self.junitxml.absolute())]
        if self.numprocesses:
            args += ["-n", self.numprocesses]
        if self.strict_targets:
            args.append("--conv2d-strict-targets")
        if self.select:
            args += ["-k", self.select]
        if self.trusted_key:
            args += ["--conv2d-trusted-key", str(self.trusted_key.absolute())]
        if self.tolerance_policy:
            from conv2d_bundle.parity.tolerance import TolerancePolicy

            TolerancePolicy.load(self.tolerance_policy)
            args += ["--conv2d-tolerance-policy", str(self.tolerance_policy.absolute())]
        return args


def _verify(remote: Any, options: VerifyOptions) -> None:
    from click.core import ParameterSource

    from conv2d_bundle.bundle.store import Bundle, get_bundle
    from conv2d_bundle.cli.progress import StepDisplay
    from conv2d_bundle.errors import ValidationFailed
    from conv2d_bundle.targets import parse_target_list
    from conv2d_bundle.verify.runner import run_pytest

    bundle_ref, target, select, junitxml = (
        options.bundle_ref,
        options.target,
        options.select,
        options.junitxml,
    )
    if remote is not None and options.require_evidence:
        remote.require(
            parse_target_list(options.require_evidence),
            options.trusted_key,
            tolerance_policy=options.tolerance_policy,
            require_strict=options.require_strict,
            allow_unsigned=options.allow_unsigned,
        )
        if click.get_current_context().get_parameter_source("target") != ParameterSource.COMMANDLINE:
            return  # evidence only: nothing to run here
    bundle = (
        Bundle(remote.pull_to_cache()) if remote is not None else get_bundle(options.output_dir, bundle_ref)
    )
    extra = options.pytest_args()
    with StepDisplay() as progress:
        progress(f"running the checks of --target {target} on {bundle.exp_hash}")
        run = run_pytest(bundle.bundle_dir, target, profile=options.profile, extra=extra)
    names = target.split(",")
    shown = ["all"] if "all" in names else ([n for n in names if n != "general"] or ["general"])
    reports = {name: run.reports.get(name) for name in shown}
    ran_nothing = all(r is not None and not r["checks_run"] and not r["skipped"] for r in reports.values())
    if (run.exit_code == 5 or ran_nothing) and not run.interrupted:
        raise BundleError(f"no checks matched{f' -k {select!r}' if select else ''} for --target {target}")
    if any(r is None for r in reports.values()):
        raise BundleError(
            f"the checks could not run (pytest exit {run.exit_code}): {one_line(run.output.strip()[-400:])}"
        )
    not_passed = []
    verdicts = {}
    digest = bundle.content_digest_or_none()  # what the verdict is about: the bytes MANIFEST.json lists now
    for name, report in reports.items():
        assert report is not None  # checked above (for mypy)
        verdict = verdicts[name] = run.verdict(name, digest)
        _print_report(bundle.exp_hash, name, report, verdict, bundle.bundle_dir)
        if not verdict.passed:
            not_passed.append(f"--target {name} {verdict.describe()}")
    from conv2d_bundle.verify import step_summary

    complete_reports = {name: r for name, r in reports.items() if r is not None}
    step_summary.append(bundle_ref if remote is not None else bundle.exp_hash, verdicts, complete_reports)
    if junitxml:
        click.echo(f"  junit: {junitxml}")
    if remote is not None and options.attest and not run.interrupted:
        remote.attest(complete_reports, options.key_path)
    if run.interrupted:
        raise KeyboardInterrupt
    if not_passed:
        raise ValidationFailed(f"{bundle.exp_hash}: " + "; ".join(not_passed))


def _print_report(exp_hash: str, name: str, report: dict, verdict: Any, bundle_dir: Path) -> None:
    counts = report["counts"]
    click.echo(f"{exp_hash} --target {name}: {verdict.describe()}")  # the words show and compare use
    click.echo(
        f"  checks: {counts['passed']} passed, {counts['failed']} failed, {counts['skipped']} skipped (not verified)"
    )
    click.echo(f"  content: {report.get('content_digest') or '(MANIFEST.json unreadable)'}")
    for e in report["errors"]:
        click.echo(f"  FAILED  {e}")
    by_reason: dict[str, list[str]] = {}
    for s in report["skipped"]:
        by_reason.setdefault(s["reason"], []).append(s["id"])
    for reason, ids in by_reason.items():  # one line per reason, not one per check
        what = ids[0] if len(ids) == 1 else f"{len(ids)} checks ({ids[0]}, ...)"
        click.echo(f"  SKIPPED {what}: {reason} (not verified)")
    for w in report["warnings"]:
        click.echo(f"  WARNING {w}")
    click.echo(f"  report: {bundle_dir / 'validation' / f'{name}_validation.json'}")
