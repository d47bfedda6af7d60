"""Transparency logs in the C2SP formats, once for every service that keeps a public record.

* `merkle`: RFC 6962 hashing, tree heads, inclusion and consistency proofs (RFC 9162 checks).
* `tiles`: the C2SP tlog-tiles layout: tile paths, tiles from stored hashes, entry bundles.
* `note`: C2SP signed notes with Ed25519 keys (`vkey` strings, key ids, signing, opening).
* `checkpoint`: the C2SP tlog-checkpoint body.
* `cosignature`: C2SP tlog-cosignature/v1, what a witness adds to a checkpoint.

Pure functions over bytes: storage and serving live with the service that owns a log. Proofs are
planned first (which stored hashes they need) and computed second, so the same code serves a
database, a tile cache or a verifier's downloads.
"""
