"""The demo's last step: check the consultation's public record with `comuna-verify`, as an
outsider would (another program, over the public REST API only), and a witness's cosignature
with `comuna-witness` when the stack has a witness key."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from comuna_devstack.client import PlatformClient, StepFailed
from comuna_devstack.residents import Progress
from comuna_devstack.stack import DevSecrets, console_script

# The checkpointer signs every 2 s in the dev stack; a size unchanged over three polls a second
# apart is final once nothing is appended any more (after the certification).
_STABLE_POLLS = 3
_POLL_SECONDS = 1.0
_WAIT_SECONDS = 60.0


@dataclass(frozen=True, slots=True)
class Witness:
    """A witness run by the demo: its signer key file and its verifier key."""

    key_file: Path
    verifier_key: str


def tool(name: str) -> str:
    """The console script of the project's environment; StepFailed saying what to do if absent."""
    script = console_script(name)
    if shutil.which(script) is None:
        raise StepFailed(f"{name} is not installed in this environment; run `make install`")
    return script


def record_url(client: PlatformClient, consultation_id: str) -> str:
    return f"{client.urls['consultations']}/v1/consultations/{consultation_id}"


def wait_for_final_checkpoint(client: PlatformClient, base: str) -> int:
    """The size of the checkpoint once it covers everything appended (see `_STABLE_POLLS`)."""
    deadline = time.monotonic() + _WAIT_SECONDS
    seen: list[int] = []
    while time.monotonic() < deadline:
        response = client.http.get(f"{base}/record/checkpoint")
        if response.status_code == 200:
            seen.append(int(response.text.split("\n")[1]))
            if len(seen) >= _STABLE_POLLS and len(set(seen[-_STABLE_POLLS:])) == 1:
                return seen[-1]
        time.sleep(_POLL_SECONDS)
    raise StepFailed(f"the record's checkpoint did not settle within {_WAIT_SECONDS:.0f} s (sizes seen: {seen[-5:]})")


def run_tool(command: list[str], what: str, progress: Progress | None) -> dict[str, Any]:
    """Run a tool with --json; its stderr (progress lines) shown as it goes; its JSON answer."""
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as process:
        assert process.stderr is not None and process.stdout is not None
        errors: list[str] = []
        for line in process.stderr:
            errors.append(line.rstrip())
            if progress is not None:
                progress(f"{what}: {line.rstrip()}")
        out = process.stdout.read()
        code = process.wait()
    try:
        answer: dict[str, Any] = json.loads(out) if out.strip() else {}
    except json.JSONDecodeError:
        answer = {}
    if code != 0:
        found = "; ".join(answer.get("mismatches", [])[:5]) or (errors[-1] if errors else f"exit status {code}")
        raise StepFailed(f"{what} failed (exit {code}): {found}")
    return answer


def cosign(
    client: PlatformClient, consultation_id: str, witness: Witness, state: Path, progress: Progress | None
) -> dict[str, Any]:
    """One round of `comuna-witness watch --once`: it checks the log's consistency with what it
    cosigned before and submits its cosignature of the latest checkpoint."""
    base = record_url(client, consultation_id)
    log_keys = client.call("GET", "consultations", f"/v1/consultations/{consultation_id}/record/keys")
    command = [tool("comuna-witness"), "watch", base, "--key", str(witness.key_file), "--state", str(state)]
    command += ["--once", "--json"]
    for key in log_keys["verifier_keys"]:
        command += ["--log-key", key]
    return run_tool(command, "comuna-witness", progress)


def verify(
    client: PlatformClient,
    consultation_id: str,
    state: Path,
    *,
    witness: Witness | None = None,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """`comuna-verify consultation` on the consultation's public URL (call it once the
    checkpoint covers the certification: `wait_for_final_checkpoint`); StepFailed naming the
    mismatches if it finds any."""
    base = record_url(client, consultation_id)
    command = [tool("comuna-verify"), "consultation", base, "--state", str(state), "--json"]
    if witness is not None:
        command += ["--witness-key", witness.verifier_key]
    return run_tool(command, "comuna-verify", progress)


def dev_witness(state_dir: Path) -> Witness:
    """The dev stack's witness (its key from `.devstack/secrets.json`), its key file written
    for `comuna-witness` (0600) next to the other secrets."""
    secrets = DevSecrets.load_or_create(state_dir / "secrets.json")
    key_file = state_dir / "witness.key"
    key_file.touch(mode=0o600)
    key_file.chmod(0o600)
    key_file.write_text(secrets.witness_signing_key + "\n")
    return Witness(key_file, secrets.witness_verifier_key)
