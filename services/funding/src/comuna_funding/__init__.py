"""Comuna funding: the public ledger of the money behind communal projects.

Money flow (every arrow is an immutable, double-entry transfer):

    treasury:<source>:<CUR> --grant_allocation--> allocation:<id> --tranche_disbursement--> commune:<id>:<CUR>

- `consultations.commune_result.certified` (one per commune) earmarks the grant for the
  commune's winning project.
- `projects.milestone.verified` pays that milestone's tranche out of the earmark, or records
  why it could not (never more than the earmark holds), announced as `funding.tranche.disbursed`
  or `funding.tranche.rejected`.
- Everything is readable by anyone over REST (`/v1/allocations`, `/v1/accounts`,
  `/v1/transfers`, `/v1/ledger/totals`); other services read it over gRPC.
"""
