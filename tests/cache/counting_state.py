"""What the functions of ``counting.py`` count (a module of its own: a function's fingerprint
counts another module by its name, never by its contents)."""
import collections

seen: collections.Counter = collections.Counter()
fail_on: set = set()
