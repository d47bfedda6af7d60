"""An outsider's verifier of a Comuna consultation's public record and of the funding ledger's journal.

Written from the published formats only (RFC 6962 / RFC 9162 Merkle trees, C2SP signed-note,
tlog-checkpoint, tlog-tiles and tlog-cosignature) and the entry formats of the record: it shares
no code with the platform that produces the record, so a bug there is not silently repeated here.

* `merkle`: hashing, streaming tree heads, proofs (computing and checking them).
* `notes`: signed notes and keys; `checkpoint`: the checkpoint body and its signatures.
* `http`, `tiles`: fetching the record; `entries`, `ranking`, `audit`: what the entries must add up to;
  `bulletins`, `certified`: the signed bulletins and the published results against the log.
* `state`: checkpoints seen before, and the consistency of a new one with them.
* `ledger_entries`, `ledger_rules`, `ledger`: the funding ledger's journal (docs/ledger.md), its
  rules, and the balances rebuilt from it against the published ones.
* `cli` (`comuna-verify`) and `witness` (`comuna-witness`): the programs.
"""
