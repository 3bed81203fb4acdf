"""Core services: accounts, aliases, the mail store, delivery, events.

Invariants:
- Nothing is acknowledged before it is durable: blob written and flushed, row committed with
  ``synchronous=FULL``; only then does a store coroutine return.
- UIDs are strictly ascending per mailbox and never reused; UIDVALIDITY changes only when a
  mailbox name is created anew; every change bumps the mailbox MODSEQ.
- Events are published only after the commit that caused them; an event means "look again",
  the store holds the truth.
- Paths on disk never derive from client-supplied names.
"""
