"""`comuna-identity keycloak sync`: provision one Keycloak realm from identity's data.

Keycloak proves who a person or service is; identity's role assignments decide where they may
act. The realm therefore carries no territory claim: its groups mirror the register for
operators' convenience, and the only realm role ever assigned is `service`.
"""
