"""Memory and CPU per running server, from jupyter-resource-usage (issue #18).

`figures.py` reads one answer of `api/metrics/v1` (user-controlled code: every value checked),
`board.py` keeps the last figures in memory for the pages and the API, `store.py` shares
them between replicas through the database and adds them to the open sessions, and
`sampler.py` is the leader loop that asks the servers.
"""
