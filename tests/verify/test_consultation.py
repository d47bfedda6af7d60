"""`comuna-verify consultation` against an honest record, and against each kind of tampering."""

from __future__ import annotations

import json
from pathlib import Path

from comuna_platform.tlog import note
from comuna_verify import cli
from tests.verify import record
from tests.verify.conftest import Published, Runner


def verify(run: Runner, published: Published, *args: str) -> tuple[int, list[str], str]:
    ran = run(cli.main, "consultation", published.base, "--json", *args)
    assert ran.status in (0, 1, 2), ran.err
    if ran.status == 2:
        return 2, [], ran.err
    report = json.loads(ran.out)
    assert report["ok"] == (ran.status == 0)
    return ran.status, report["mismatches"], ran.err


def test_an_honest_record_verifies(run: Runner, published: Published) -> None:
    ran = run(cli.main, "consultation", published.base)
    assert ran.status == 0, ran.out
    assert "communes verified  2" in ran.out and "ballots counted    21" in ran.out
    assert "mismatches         0" in ran.out and "MISMATCH" not in ran.out
    assert f"entries {published.log.size}/{published.log.size}" in ran.err  # progress on stderr
    as_json = json.loads(run(cli.main, "consultation", published.base, "--json").out)
    assert as_json["ok"] is True and as_json["communes"] == 2 and as_json["ballots"] == 21
    assert as_json["log"]["size"] == published.log.size


def test_pinned_log_key(run: Runner, published: Published) -> None:
    status, mismatches, _ = verify(run, published, "--log-key", published.signer.verifier.vkey)
    assert (status, mismatches) == (0, [])
    other = note.Signer.generate(record.ORIGIN).verifier.vkey
    status, mismatches, _ = verify(run, published, "--log-key", other)
    assert status == 1 and "checkpoint: no valid signature by a log key" in mismatches


def test_a_changed_ballot_tally_line_breaks_the_tiles(run: Runner, published: Published) -> None:
    bundle = published.file("record/tile/entries/000.p/" + str(published.log.size))
    data = bundle.read_bytes()
    old = f"tally {record.A} {record.X} 2\n".encode()
    assert old in data
    bundle.write_bytes(data.replace(old, f"tally {record.A} {record.X} 3\n".encode(), 1))
    status, mismatches, _ = verify(run, published)
    assert status == 1
    size = published.log.size
    assert f"tile 0/000.p/{size}: hash at 0 is not the hash of entry 0" in mismatches
    assert any(m.startswith(f"root: the {size} entries give root") for m in mismatches)
    assert any("commune C01: ballots in the log" in m and f"{record.X}=" in m for m in mismatches)


def test_an_altered_bulletin_note(run: Runner, published: Published) -> None:
    index = next(i for i, e in enumerate(published.log.entries) if e.startswith(b"comuna-bulletin/v1\n"))
    file = published.file(f"record/bulletins/{index}")
    text = file.read_text()
    file.write_text(
        text.replace("participations 9", "participations 7").replace("participations 6", "participations 5")
    )
    status, mismatches, _ = verify(run, published)
    assert status == 1
    assert f"bulletin {index}: signed note differs from log entry" in mismatches
    assert f"bulletin {index}: no valid signature by a log key" in mismatches


def test_an_unlisted_bulletin(run: Runner, published: Published) -> None:
    listing = published.file("record/bulletins")
    listed = json.loads(listing.read_text())
    dropped = listed["bulletins"].pop()
    listing.write_text(json.dumps(listed))
    status, mismatches, _ = verify(run, published)
    assert status == 1 and mismatches == [f"bulletin {dropped['index']}: in the log but not listed in record/bulletins"]


def test_a_broken_checkpoint_signature(run: Runner, published: Published) -> None:
    checkpoint = published.file("record/checkpoint")
    body, (honest,) = note.split_note(checkpoint.read_text())
    forged = note.sign_note(body, note.Signer.generate(record.ORIGIN))  # the log's name, another key
    # The log key's name and key id, another key's signature: an invalid log signature.
    checkpoint.write_text(note.format_note(body, [note.Signature(honest.name, honest.key_id, forged.signature)]))
    status, mismatches, _ = verify(run, published)
    assert status == 1
    assert f"checkpoint: invalid signature by log key {published.signer.name}" in mismatches
    assert "checkpoint: no valid signature by a log key" in mismatches
    # Only a signature by an unknown key: a cosigner, and no log signature.
    checkpoint.write_text(note.format_note(body, [forged]))
    status, mismatches, _ = verify(run, published)
    assert status == 1 and mismatches == ["checkpoint: no valid signature by a log key"]


def test_a_fork_against_saved_state(run: Runner, published: Published, tmp_path: Path) -> None:
    state = tmp_path / "state"
    assert verify(run, published, "--state", str(state))[0] == 0
    assert len(list(state.rglob("checkpoint-*"))) == 1
    texts, results, _ = record.scenario()
    texts[1] = texts[1].replace("consultation", "consultation", 1) + f"tally {record.A} {record.X} 0\n"
    published.republish(texts, results)  # same size, another root, properly signed
    status, mismatches, _ = verify(run, published, "--state", str(state))
    assert status == 1
    assert any(m.startswith(f"fork: the log signed two roots for size {published.log.size}") for m in mismatches)


def test_growth_is_consistent_and_a_shrink_is_named(run: Runner, published: Published, tmp_path: Path) -> None:
    state = tmp_path / "state"
    small = published.log.size
    assert verify(run, published, "--state", str(state))[0] == 0
    texts, results, _ = record.scenario(extra=300)  # more entries before the others: not an extension
    published.republish(texts, results)
    status, mismatches, _ = verify(run, published, "--state", str(state))
    assert status == 1 and any(
        m.startswith(f"fork: the checkpoint of size {small} is not a prefix") for m in mismatches
    )

    state2 = tmp_path / "state2"
    texts, results, _ = record.scenario()
    published.republish(texts, results)
    assert verify(run, published, "--state", str(state2))[0] == 0
    grown = [*texts, record.ballots([], {})]  # an extension of the same log
    texts_only, _, _ = record.scenario()
    assert grown[: len(texts_only)] == texts_only
    results_grown = results
    published.republish(grown, results_grown)
    status, mismatches, _ = verify(run, published, "--state", str(state2))
    assert status == 0, mismatches
    assert len(list(state2.rglob("checkpoint-*"))) == 2

    published.republish(texts, results)  # back to the smaller log
    status, mismatches, _ = verify(run, published, "--state", str(state2))
    assert status == 1
    assert f"the log shrank: it signed size {small + 1} before, now {small}" in mismatches


def test_a_big_log_with_upper_tiles(run: Runner, published: Published) -> None:
    texts, results, _ = record.scenario(extra=700)
    log = published.republish(texts, results)
    assert log.size > 512
    status, mismatches, err = verify(run, published)
    assert (status, mismatches) == (0, [])
    assert f"entries {log.size}/{log.size}" in err
    # An upper tile that disagrees with the entries is named.
    upper = published.file("record/tile/1/000.p/2")
    upper.write_bytes(upper.read_bytes()[:32] + bytes(32))
    status, mismatches, _ = verify(run, published)
    assert status == 1 and mismatches == ["tile 1/000.p/2: hash at 1 is not the root of level-0 tile 1"]


def ranks_tweak(entries: list[bytes]) -> list[bytes]:
    """C01's candidates tie at 5: the tie-break (lower cost) ranks X first; say Y."""
    out = []
    for entry in entries:
        if entry.startswith(b"comuna-result/v1\n") and f"commune {record.A} ".encode() in entry:
            text = entry.decode()
            text = text.replace(f"candidate {record.X} 5 1 ", f"candidate {record.X} 5 2 ")
            text = text.replace(f"candidate {record.Y} 5 2 ", f"candidate {record.Y} 5 1 ")
            text = text.replace(f"winner {record.X}", f"winner {record.Y}")
            out.append(text.encode())
            continue
        out.append(entry)
    return out


def test_ranks_that_disagree_with_the_tie_break(run: Runner, published: Published) -> None:
    texts, results, _ = record.scenario()
    published.republish(texts, results, tweak=ranks_tweak)
    status, mismatches, _ = verify(run, published)
    assert status == 1
    assert any(
        m.startswith("commune C01: ranks of result version 1") and "disagree with the tie-break" in m
        for m in mismatches
    )
    assert (
        f"commune C01: result version 1 names winner {record.Y}, the count and tie-break give {record.X}" in mismatches
    )
    # BASE/results still says X wins: the published results no longer match the log either.
    assert f"commune C01: BASE/results says winner {record.X}, the log's result entry says {record.Y}" in mismatches


def test_a_negative_remainder(run: Runner, published: Published) -> None:
    texts, results, _ = record.scenario()
    results[0].remainder = {record.Y: -1, record.X: 2}  # still sums to the same count
    a_index = next(i for i, t in enumerate(texts) if t.startswith("comuna-result/v1") and record.A in t)
    texts[a_index] = results[0].entry()
    published.republish(texts, results)
    status, mismatches, _ = verify(run, published)
    assert status == 1
    assert f"commune C01: remainder {record.Y}=-1 is negative" in mismatches


def test_certified_results_that_differ_from_the_log(run: Runner, published: Published) -> None:
    results_file = published.file("results")
    published_results = json.loads(results_file.read_text())
    published_results["communes"][1]["candidates"][0]["votes"] += 1
    published_results["communes"].pop(0)
    results_file.write_text(json.dumps(published_results))
    status, mismatches, _ = verify(run, published)
    assert status == 1
    assert f"commune C02: BASE/results says votes of {record.Z} 4, the log's result entry says 3" in mismatches
    assert "commune C01: has a result entry but is not in BASE/results" in mismatches


def test_counts_that_do_not_add_up(run: Runner, published: Published) -> None:
    """A bulletin and its result both claim one more vote than the ballots logged: signed and
    consistent, but the count is wrong."""
    texts, results, _ = record.scenario()

    def inflate(entries: list[bytes]) -> list[bytes]:
        out = []
        for entry in entries:
            text = entry.decode()
            if text.startswith("comuna-bulletin/v1") and f"commune {record.B}" in text and "channel online" in text:
                text = text.replace("participations 3", "participations 4").replace(
                    f"tally {record.W} 2", f"tally {record.W} 3"
                )
            if text.startswith("comuna-result/v1") and f"commune {record.B}" in text and "version 2" in text:
                text = text.replace(f"candidate {record.W} 4 1", f"candidate {record.W} 5 1")
                text = text.replace("participations 8", "participations 9")
            out.append(text.encode())
        return out

    published.republish(texts, results, tweak=inflate)
    status, mismatches, _ = verify(run, published)
    assert status == 1
    assert (
        f"commune C02: ballots in the log (batches and remainder) give {record.W}=2, "
        f"the online and table bulletins say 3"
    ) in mismatches
    assert "commune C02: 3 receipts in the log, the online and table bulletins count 4 ballots" in mismatches


def test_paper_and_offline_tables_must_match_their_sources(run: Runner, published: Published) -> None:
    texts, results, _ = record.scenario()

    def tables(entries: list[bytes]) -> list[bytes]:
        out = []
        for entry in entries:
            text = entry.decode()
            if text.startswith("comuna-tally-sheet/v1") and "sheet-2" in text:
                text = text.replace(f"tally {record.Z} 2", f"tally {record.Z} 1")
            if text.startswith("comuna-offline-ballots/v1") and "batch-2" in text:
                text = text.replace("blank 1", "blank 2")
            out.append(text.encode())
        return out

    published.republish(texts, results, tweak=tables)
    status, mismatches, _ = verify(run, published)
    assert status == 1
    assert f"commune C02 table P1: paper bulletin gives {record.Z}=2, the tally sheet says 1" in mismatches
    assert "commune C01 table OFF1: offline bulletin gives blank=1, its offline batches sum to 2" in mismatches


def test_unknown_and_malformed_entries(run: Runner, published: Published) -> None:
    texts, results, _ = record.scenario()
    texts.append(f"comuna-mystery/v1\nconsultation {record.CID}\n")
    texts.append(f"comuna-ballots/v1\nconsultation {record.CID}\nreceipt short\n")
    texts.append("comuna-ballots/v1\nconsultation 00000000-0000-4000-8000-000000000000\n")
    published.republish(texts, results)
    size = len(texts)
    status, mismatches, _ = verify(run, published)
    assert status == 1
    assert f"unknown entry type at index {size - 3}: 'comuna-mystery/v1'" in mismatches
    assert any(m.startswith(f"entry {size - 2}: malformed comuna-ballots/v1 entry") for m in mismatches)
    assert any(m.startswith(f"entry {size - 1}: is for consultation 00000000") for m in mismatches)


def test_entries_not_public_yet_is_exit_2(run: Runner, published: Published, tmp_path: Path) -> None:
    published.server.entries_public = False
    ran = run(cli.main, "consultation", published.base, "--state", str(tmp_path / "s"))
    assert ran.status == 2 and ran.out == ""
    assert ran.err.count("\n") == 1 and "not public until voting has closed everywhere" in ran.err
    assert len(list((tmp_path / "s").rglob("checkpoint-*"))) == 1  # the checkpoint was still checked and kept


def test_cosignatures_are_listed(run: Runner, published: Published) -> None:
    from comuna_platform.tlog import cosignature

    witness = note.Signer.generate("witness.example", note.COSIGNATURE_V1)
    other = note.Signer.generate("other.example", note.COSIGNATURE_V1)
    body = published.log.checkpoint_body()
    published.log.extra_signatures = [cosignature.cosign(body, witness, 1234), cosignature.cosign(body, other, 99)]
    published.file("record/checkpoint").write_text(published.log.checkpoint())
    ran = run(cli.main, "consultation", published.base, "--witness-key", witness.verifier.vkey)
    assert ran.status == 0, ran.out
    assert "witness.example (verified, time 1234), other.example (unverified: no --witness-key for it)" in ran.out
    report = json.loads(
        run(cli.main, "consultation", published.base, "--json", "--witness-key", witness.verifier.vkey).out
    )
    assert [(c["name"], c["verified"]) for c in report["cosigners"]] == [
        ("witness.example", True),
        ("other.example", None),
    ]


def test_missing_listing_and_malformed_results_are_mismatches(run: Runner, published: Published) -> None:
    published.file("record/bulletins").unlink()
    published.file("results").write_text(
        json.dumps({"consultation_id": record.CID, "communes": [{"commune_id": record.A, "candidates": 3}]})
    )
    status, mismatches, _ = verify(run, published)
    assert status == 1
    assert any(m.startswith("bulletins: record/bulletins not served (404") for m in mismatches)
    assert any(m.startswith("results: BASE/results is malformed (TypeError") for m in mismatches)


def test_a_listing_that_misdescribes_a_bulletin(run: Runner, published: Published) -> None:
    listing = published.file("record/bulletins")
    listed = json.loads(listing.read_text())
    first = listed["bulletins"][0]
    first["channel"] = "paper"
    listed["bulletins"].append(dict(first))
    listing.write_text(json.dumps(listed))
    status, mismatches, _ = verify(run, published)
    assert status == 1
    assert f"bulletin {first['index']}: listed twice in record/bulletins" in mismatches
    assert any(m.startswith(f"bulletin {first['index']}: record/bulletins describes it as") for m in mismatches)
