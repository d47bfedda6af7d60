"""comuna-treasury: a small reference treasury implementing `comuna.funding.source.v1`.

It stands in for a state's or a municipality's own treasury system in development and tests:
one account in one currency, reservations that are durable before they are answered, an
append-only statement of movements. It imports nothing of Comuna but the published contract.
"""
