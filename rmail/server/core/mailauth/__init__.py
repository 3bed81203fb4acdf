"""Mail authentication: DKIM signing of what rmail's users send, and the checks on what
arrives on port 25 (SPF, DKIM, ARC, DMARC), as small steps with one job each.

- ``dkim``: sign and verify with dkimpy; ``spf``: RFC 7208 with pyspf; ``dmarc``: RFC 7489
  record parsing, organisational domains (the public suffix list shipped by
  publicsuffixlist) and alignment; ``results``: the Authentication-Results field (authres)
  and the removal of forged ones; ``inbound``: runs the checks once per message and decides;
  ``signing``: the submission-side signer.

Invariants:

- Checks run only on mail from unauthenticated port-25 clients; submitted mail is signed,
  never checked against itself.
- Every DNS lookup goes through ``core.dns.Resolver`` (``[dns] nameserver``); the libraries
  run on worker threads with its blocking face, so the event loop never waits on them.
- A message is evaluated once; the verdicts are written as one Authentication-Results field
  with rmail's hostname as authserv-id, and the DMARC policy is applied in one place
  (``inbound.Verdict``). A temporary DNS failure never rejects mail.
"""
