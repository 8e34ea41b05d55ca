"""Any assay env over OpenEnv's protocol, and any OpenEnv server as an assay env.

- :mod:`envs.serve.protocol`: the messages and JSON shapes, as ``openenv-core`` defines them
  (``{observation, reward, done}``; the WebSocket ``reset``/``step``/``state``/``close`` messages
  and ``error`` replies with a code), plus what assay adds to an observation.
- :mod:`envs.serve.server`: ``assay serve env ID``, a FastAPI app that serves one registered env
  with a session per WebSocket connection, a cap on sessions, idle expiry, a time limit per
  request and a bound on request size.
- :mod:`envs.serve.client`: :class:`~envs.serve.client.RemoteEnv`, a :class:`~envs.core.TextEnv`
  that plays an episode on any OpenEnv-compatible server (``envs.make("openenv:http://...")``).

Nothing here is imported by ``import envs``: the server needs ``pip install 'assay[serve]'``.
"""
