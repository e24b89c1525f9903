"""Conformance tests: the peers' published optimizer tests, ported to tf_lamb.

One module per peer test file; each module's docstring names the repository, the path and the
commit that was read, and how its tests map onto tf_lamb. Where tf_lamb deliberately differs
from a peer, the test is a strict xfail whose reason points to README.md's "Differences from
the peers".
"""
