"""`comuna-witness`: key generation, and cosigning only along one growing tree."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from comuna_platform.tlog import cosignature, note
from comuna_verify import witness
from tests.verify import record
from tests.verify.conftest import Published, Runner


def test_keygen_prints_a_key_pair(run: Runner) -> None:
    ran = run(witness.main, "keygen", "witness.example")
    assert ran.status == 0
    skey, vkey = ran.out.splitlines()
    signer, verifier = note.parse_skey(skey), note.parse_vkey(vkey)
    assert signer.key_type == note.COSIGNATURE_V1 and signer.verifier == verifier
    assert skey.startswith(f"PRIVATE+KEY+witness.example+{verifier.key_id.hex()}+")
    assert vkey.startswith(f"witness.example+{verifier.key_id.hex()}+")
    assert note.key_id("witness.example", 0x04, verifier.public_key) == verifier.key_id


def test_keygen_out_writes_a_private_file(run: Runner, tmp_path: Path) -> None:
    out = tmp_path / "witness.key"
    ran = run(witness.main, "keygen", "witness.example", "--out", str(out))
    assert ran.status == 0
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    assert note.parse_skey(out.read_text().strip()).verifier.vkey == ran.out.strip()
    again = run(witness.main, "keygen", "witness.example", "--out", str(out))
    assert again.status == 2 and again.err.count("\n") == 1 and "exists" in again.err


def test_keygen_refuses_a_bad_name(run: Runner) -> None:
    ran = run(witness.main, "keygen", "two words")
    assert ran.status == 2 and ran.out == "" and ran.err.count("\n") == 1


def make_key(run: Runner, tmp_path: Path) -> tuple[Path, note.Verifier]:
    path = tmp_path / "w.key"
    vkey = run(witness.main, "keygen", "witness.example", "--out", str(path)).out.strip()
    return path, note.parse_vkey(vkey)


def watch(run: Runner, published: Published, key: Path, state: Path, *extra: str) -> tuple[int, dict[str, object], str]:
    ran = run(
        witness.main, "watch", published.base, "--key", str(key), "--state", str(state),
        "--log-key", published.signer.verifier.vkey, "--once", "--json", *extra,
    )  # fmt: skip
    if ran.status == 2:
        return 2, {}, ran.err
    return ran.status, json.loads(ran.out), ran.err


def test_cosigns_honest_growth_and_submits(run: Runner, published: Published, tmp_path: Path) -> None:
    key, verifier = make_key(run, tmp_path)
    status, report, _ = watch(run, published, key, tmp_path / "state")
    assert status == 0 and report["cosigned"] is True and report["submitted"] == 201
    (posted,) = published.server.posted
    body, (signature,) = note.split_note(posted)
    assert body == published.log.checkpoint_body()
    assert cosignature.cosignature_time(body, signature, verifier) > 1_700_000_000

    texts, results, _ = record.scenario()
    published.republish([*texts, record.ballots([], {})], results)  # the log grew
    status, report, _ = watch(run, published, key, tmp_path / "state")
    assert status == 0 and report["cosigned"] is True
    body, (signature,) = note.split_note(published.server.posted[-1])
    assert body == published.log.checkpoint_body() and cosignature.cosignature_time(body, signature, verifier)
    saved = next((tmp_path / "state").glob("*.cosigned")).read_text()
    assert saved.startswith(published.log.checkpoint_body())


def test_refuses_a_fork_and_keeps_refusing(run: Runner, published: Published, tmp_path: Path) -> None:
    key, _ = make_key(run, tmp_path)
    assert watch(run, published, key, tmp_path / "state")[0] == 0
    texts, results, _ = record.scenario()
    honest = list(texts)
    texts[1] += f"tally {record.A} {record.X} 0\n"
    published.republish(texts, results)
    status, report, _ = watch(run, published, key, tmp_path / "state")
    assert status == 1 and report["cosigned"] is False
    (why,) = report["mismatches"]  # type: ignore[misc]
    assert str(why).startswith(f"fork: the log signed two roots for size {published.log.size}")
    assert len(published.server.posted) == 1  # nothing submitted for the fork
    published.republish(honest, results)  # back to the first view: still refused, the fork was seen
    status, report, _ = watch(run, published, key, tmp_path / "state")
    assert status == 1 and "refusing this log since: fork" in str(report["mismatches"])


def test_refuses_a_shrink_and_an_unproven_growth(run: Runner, published: Published, tmp_path: Path) -> None:
    key, _ = make_key(run, tmp_path)
    texts, results, _ = record.scenario()
    published.republish([*texts, record.ballots([], {})], results)
    big = published.log.size
    assert watch(run, published, key, tmp_path / "state")[0] == 0
    published.republish(texts, results)
    status, report, _ = watch(run, published, key, tmp_path / "state")
    assert status == 1 and report["mismatches"] == [f"the log shrank: it signed size {big} before, now {big - 1}"]

    other = tmp_path / "other"
    assert watch(run, published, key, other)[0] == 0
    texts2, results2, _ = record.scenario(extra=3)  # larger, but not an extension
    published.republish(texts2, results2)
    status, report, _ = watch(run, published, key, other)
    assert status == 1 and str(report["mismatches"]).startswith(
        f"['fork: the checkpoint of size {big - 1} is not a prefix"
    )


def test_refuses_a_checkpoint_the_log_did_not_sign(run: Runner, published: Published, tmp_path: Path) -> None:
    key, _ = make_key(run, tmp_path)
    ran = run(
        witness.main, "watch", published.base, "--key", str(key), "--state", str(tmp_path / "s"),
        "--log-key", note.Signer.generate(record.ORIGIN).verifier.vkey, "--once",
    )  # fmt: skip
    assert ran.status == 1 and "checkpoint: no valid signature by a log key" in ran.out
    assert published.server.posted == [] and not list((tmp_path / "s").glob("*.cosigned"))


def test_no_submit_and_a_rejected_submission(run: Runner, published: Published, tmp_path: Path) -> None:
    key, _ = make_key(run, tmp_path)
    status, report, _ = watch(run, published, key, tmp_path / "state", "--no-submit")
    assert status == 0 and published.server.posted == [] and "submitted" not in report
    published.server.reject_cosignatures = True
    status, _, err = watch(run, published, key, tmp_path / "state")
    assert status == 2 and err.count("\n") == 1 and "refused it: 400 cosignature rejected" in err


def test_watch_usage_errors(run: Runner, published: Published, tmp_path: Path) -> None:
    key, _ = make_key(run, tmp_path)
    log_key = published.signer.verifier.vkey
    base = ["watch", published.base, "--key", str(key), "--state", str(tmp_path / "s"), "--once"]
    cases = [
        ([*base, "--log-key", "garbage"], "--log-key"),
        ([*base, "--log-key", log_key, "--interval", "0"], "--interval"),
        (["watch", published.base, "--key", str(tmp_path / "missing"), "--state", str(tmp_path),
          "--log-key", log_key], "cannot read"),
        (["watch", published.base, "--state", str(tmp_path), "--log-key", log_key], "--key"),
    ]  # fmt: skip
    for argv, says in cases:
        ran = run(witness.main, *argv)
        assert ran.status == 2 and ran.out == "" and ran.err.count("\n") == 1 and says in ran.err, (argv, ran.err)
    log_as_witness = tmp_path / "log.key"
    log_as_witness.write_text(published.signer.skey)
    ran = run(
        witness.main,
        "watch",
        published.base,
        "--key",
        str(log_as_witness),
        "--state",
        str(tmp_path),
        "--log-key",
        log_key,
    )
    assert ran.status == 2 and "not a cosignature/v1 key" in ran.err


def test_refuses_a_log_that_changes_its_origin(run: Runner, published: Published, tmp_path: Path) -> None:
    key, _ = make_key(run, tmp_path)
    assert watch(run, published, key, tmp_path / "state")[0] == 0
    body = published.log.checkpoint_body().replace(record.ORIGIN, record.ORIGIN + "-again", 1)
    published.file("record/checkpoint").write_text(note.format_note(body, [note.sign_note(body, published.signer)]))
    status, report, _ = watch(run, published, key, tmp_path / "state")
    assert status == 1 and report["cosigned"] is False
    assert f"had origin {record.ORIGIN}, now {record.ORIGIN}-again" in str(report["mismatches"])


def test_loop_mode_keeps_refusing_a_forked_log(
    run: Runner, published: Published, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key, _ = make_key(run, tmp_path)
    assert watch(run, published, key, tmp_path / "state")[0] == 0
    texts, results, _ = record.scenario()
    texts[1] += f"tally {record.A} {record.X} 0\n"
    published.republish(texts, results)
    rounds: list[float] = []

    def no_sleep(seconds: float) -> None:  # the loop's pause, replaced: stop after three rounds
        rounds.append(seconds)
        if len(rounds) == 3:
            raise KeyboardInterrupt

    monkeypatch.setattr(witness.time, "sleep", no_sleep)
    ran = run(
        witness.main, "watch", published.base, "--key", str(key), "--state", str(tmp_path / "state"),
        "--log-key", published.signer.verifier.vkey, "--interval", "7",
    )  # fmt: skip
    assert ran.status == 130 and rounds == [7.0, 7.0, 7.0]
    assert ran.out.count("MISMATCH fork: the log signed two roots") == 1
    assert ran.out.count("MISMATCH refusing this log since: fork") == 2
    assert len(published.server.posted) == 1  # only the honest round's cosignature
